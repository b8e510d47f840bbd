"""Shared timing helpers for the benchmarks."""

from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np


def time_per_call(run: Callable[[], object], min_seconds: float, max_calls: int = 1000) -> float:
    """Seconds per call of ``run`` after one warm-up call (which also compiles)."""
    jax.block_until_ready(run())
    calls, start = 0, time.perf_counter()
    while True:
        jax.block_until_ready(run())
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= max_calls:
            return elapsed / calls


def fitted_exponent(sizes, times) -> float:
    """Slope of log(time) against log(size): cost grows like size**slope."""
    if len(sizes) < 2:
        return float("nan")
    slope, _ = np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float)), 1)
    return float(slope)
