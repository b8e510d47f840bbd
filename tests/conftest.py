"""Test tiers and precision.

- ``@pytest.mark.slow``: end-to-end runs (the command line, sweeps, multi-game runs, benchmarks,
  learning curves); ``make test-fast`` leaves them out, ``make test`` runs everything.
- ``@pytest.mark.float64``: the test runs with JAX's 64-bit types (gradient comparisons against
  autodiff, the verification contract); every other test runs in the library's default float32.

The suite is dominated by XLA compilation, so compiled programs are kept on disk between runs
(``.jax-cache/`` at the repository root, or ``JAX_COMPILATION_CACHE_DIR``): the first run
compiles everything, later runs compile only what changed.
"""

import os
from pathlib import Path

import jax
import pytest

from rtrl import cells

# Processes the tests start (study workers, Ray nodes) read the same settings from the
# environment.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).parents[1] / ".jax-cache"))
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # the many small ones too
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


@pytest.fixture(autouse=True)
def _precision(request):
    """float64 for tests marked so, float32 otherwise (whatever ran before)."""
    with jax.enable_x64(request.node.get_closest_marker("float64") is not None):
        yield


# Small instances of every element-wise cell, covering the options the spec names.
CELL_FACTORIES = {
    "columnar_lstm": lambda: cells.columnar_lstm(4, init_scale=0.5),
    "elstm": lambda: cells.elstm(4, init_std=0.5, forget_bias=1.0),
    "linear_rtu_tanh": lambda: cells.linear_rtu(4, "tanh"),
    "linear_rtu_identity": lambda: cells.linear_rtu(4, "identity", r_min=0.5, r_max=0.99),
    "nonlinear_rtu_tanh": lambda: cells.nonlinear_rtu(4, "tanh"),
    "nonlinear_rtu_relu": lambda: cells.nonlinear_rtu(4, "relu"),
    "online_lru": lambda: cells.online_lru(4, outputs=3),
    "online_lru_no_skip": lambda: cells.online_lru(4, skip=False, r_min=0.8),
    "online_lru_tanh_readout": lambda: cells.online_lru(4, outputs=3, nonlinearity="tanh"),
    "nonlinear_lru_tanh": lambda: cells.nonlinear_lru(4, outputs=3),
    "elementwise_rnn": lambda: cells.elementwise_rnn(4),
    "elementwise_rnn_relu": lambda: cells.elementwise_rnn(4, "relu", recurrent_range=0.9),
}


@pytest.fixture(params=sorted(CELL_FACTORIES))
def cell(request):
    return CELL_FACTORIES[request.param]()
