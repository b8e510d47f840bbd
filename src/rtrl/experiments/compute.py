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
