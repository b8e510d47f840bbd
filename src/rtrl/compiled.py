"""Compilation settings for the library's compiled online loops.

``jit`` is ``jax.jit`` with XLA options chosen for many small, sequential steps. On CPU, XLA hands
some reductions and elementwise fusions to the XNNPACK/YNNPACK libraries; for the tiny arrays of
an online step (a few units, a few streams) the library call costs far more than XLA's own
fused loop (``python -m rtrl.bench loop``: about 2x the steps/s with 32 streams when turned
off). The options apply only to the functions compiled here, not to the rest of a program.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "",
    "xla_cpu_experimental_xnn_fusion_type": "",
}


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` with the CPU options above when running on CPU."""
    if jax.default_backend() == "cpu":
        kwargs["compiler_options"] = {**CPU_OPTIONS, **kwargs.get("compiler_options", {})}
    return jax.jit(fn, **kwargs)
