"""Shared timing helpers for the benchmarks."""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rtrl import cells, compiled
from rtrl.gradients.base import Estimator
from rtrl.learners import online_regression


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


def measure_online_step(
    cell: cells.Cell,
    estimator: Estimator,
    inputs: int,
    streams: int,
    steps: int,
    min_seconds: float,
) -> dict:
    """Time a jitted scan of the whole online step (forward, estimator bookkeeping, gradient of a
    squared error through a linear head, SGD update) for ``streams`` vmapped learners."""
    learner = online_regression(estimator, optax.sgd(1e-3))
    keys = jax.random.split(jax.random.PRNGKey(0), streams)
    state = jax.vmap(learner.init, in_axes=(0, None))(keys, inputs)
    xs = jax.random.normal(jax.random.PRNGKey(1), (steps, streams, inputs))
    targets = jax.random.normal(jax.random.PRNGKey(2), (steps, streams))
    if learner.streams_last:  # as the runner batches independent learners
        state, xs = cells.streams_last(state), jnp.moveaxis(xs, 1, -1)
        step = learner.step
    else:
        step = jax.vmap(learner.step)

    @compiled.jit
    def run(state):
        def one_step(state, data):
            x, y = data
            state, metrics = step(state, x, y)
            return state, metrics["loss"]

        return jax.lax.scan(one_step, state, (xs, targets))

    seconds = time_per_call(lambda: run(state), min_seconds) / steps
    if learner.streams_last:
        state = jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), state)
    cell_params = jax.tree.map(lambda a: a[0], state.params["cell"])
    return {
        "estimator": estimator.name,
        "units": cell.units,
        "inputs": inputs,
        "params": cells.count_params(cell_params),
        "recurrent_params": cells.count_params(cells.recurrent_params(cell_params)),
        "streams": streams,
        "steps_per_s": 1.0 / seconds,
        "stream_steps_per_s": streams / seconds,
        "us_per_step": 1e6 * seconds,
        "backend": jax.default_backend(),
    }
