"""Per-step compute estimates (multiply-adds), so that results can be compared at equal compute.

Counts the recurrent network and its gradient estimator, not the head or the optimiser (a few
operations per parameter for every method alike). With p the recurrent parameters that are used
(connections that exist), n the units and s the state values per unit:

- forward step: p + n (one multiply-add per weight, including a readout's, and a few
  element-wise operations per unit);
- T-BPTT(T): (1 + T) forward steps, as in the CCN paper: (1 + T)(4H(H + d) + 5H) for an LSTM;
- per-unit RTRL (columnar, SnAp-1, a staged network's active stage): forward, plus per learning
  parameter s*s (Jacobian times trace) + s (immediate term) + s (gradient);
- full RTRL: forward, plus the (ns x ns) Jacobian times the (ns x p) sensitivity;
- UORO: about three forward steps (the forward, forward-mode and reverse-mode passes).

For a staged network the figure is the cost once every stage runs and the last one learns (its
largest); earlier in the run it is lower.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jax
import numpy as np

from rtrl.cells.base import recurrent_params
from rtrl.experiments.builders import build_estimator, observation_count, staged_network_of


def _shapes(cell, num_inputs: int):
    return jax.eval_shape(lambda: cell.init(jax.random.PRNGKey(0), num_inputs))


def _size(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def multiply_adds(config: dict[str, Any]) -> int:
    """Estimated multiply-adds per step of the configuration's network and estimator."""
    num_inputs = observation_count(config)
    estimator = build_estimator(config)
    cell = estimator.cell
    shapes = _shapes(cell, num_inputs)
    units = cell.units
    per_unit = len(cell.initial_state(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)))
    name = config["estimator"]
    if name == "staged_rtrl":
        network = staged_network_of(config)
        stage_of = np.arange(units) // network.stage_size
        connected = network.reads[stage_of]  # (N, E*N) reads that exist
        # Per feature: every gate's row over x and the reads that exist, plus private scalars.
        gates = sum(int(np.prod(w.shape[1:-1])) for w in shapes["inputs"].values())
        rows = gates * (num_inputs + connected.sum(axis=1)) + _size(shapes["unit"]) // units
        forward = rows.sum() + units
        learning = rows[stage_of == stage_of[-1]].sum()
        return int(forward + learning * (per_unit * per_unit + 2 * per_unit))
    params = _size(recurrent_params(shapes))
    forward = _size(shapes) + units  # the readout (eLSTM's gate, the LRU's C) runs too
    if name == "tbptt":
        return int((1 + config["truncation"]) * forward)
    if name in ("columnar_rtrl", "snap1"):
        return int(forward + params * (per_unit * per_unit + 2 * per_unit))
    if name == "full_rtrl":
        state = units * per_unit
        return int(forward + state * state * params)
    return int(3 * forward)  # uoro


def network_parameters(config: dict[str, Any]) -> int:
    """The parameters of the configuration's network (its cell, readout included; not the
    head), the x-axis of comparisons at equal parameters."""
    cell = build_estimator(config).cell
    return _size(_shapes(cell, observation_count(config)))


MEASURES = {"compute": multiply_adds, "parameters": network_parameters}
# Keys that never change a network's size or cost: set to their defaults in the memo's key, so
# that a study's runs over step sizes, intervals and budgets are measured once.
_NOT_SIZE = {"step_size", "optimizer", "lambda", "steps", "paper_steps", "chunk", "bin_size",
             "final_window", "seed", "isi", "match_compute", "match_parameters"}  # fmt: skip


def _sizing(config: dict[str, Any]) -> str:
    from rtrl.experiments.kinds.prediction_kind import DEFAULTS

    canonical = {k: DEFAULTS[k] if k in _NOT_SIZE else v for k, v in config.items()}
    return json.dumps(canonical, sort_keys=True)


_LARGEST_UNITS = 4096


@functools.lru_cache(maxsize=None)
def _matched_units(frozen: str, measure: str, target: int) -> int:
    config = json.loads(frozen)
    count = MEASURES[measure]
    if count({**config, "units": 1}) > target:
        raise ValueError(f"{config['cell']} with {config['estimator']} costs more than the "
                         f"matched {measure} ({target:,}) even with 1 unit; match a larger "
                         "preset")  # fmt: skip
    low, high = 1, _LARGEST_UNITS  # the measure grows with the units: bisect for the largest fit
    while low < high:
        middle = (low + high + 1) // 2
        if count({**config, "units": middle}) <= target:
            low = middle
        else:
            high = middle - 1
    return low


def matched_units(config: dict[str, Any], measure: str, target: int) -> int:
    """The most units whose ``measure`` (``compute``: multiply-adds per step; ``parameters``:
    the network's parameters) stays within ``target``."""
    return _matched_units(_sizing(config), measure, target)


def measure_of(config: dict[str, Any], measure: str) -> int:
    """``compute`` or ``parameters`` of a configuration, remembered (studies ask often)."""
    return _measure(_sizing(config), measure)


@functools.lru_cache(maxsize=None)
def _measure(frozen: str, measure: str) -> int:
    return MEASURES[measure](json.loads(frozen))
