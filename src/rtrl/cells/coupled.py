"""Columnar networks whose columns are sparsely coupled (Javed et al. 2021).

Each column also reads other columns' previous-step outputs (the cell's ``exposed`` state, e.g.
h_{t-1} of a columnar LSTM) through a fixed random sparse pattern: column k reads
K = round(density * (values of other columns)) of them, chosen without replacement, through
extra rows added to each of its gates' input projections. A column never reads itself this way
(its self-recurrence stays a private parameter), so at density 0 the network is element-wise.
"""

from __future__ import annotations

import numpy as np

from rtrl.cells.base import Cell, Coupling, is_elementwise, with_unit_transition


def random_sources(units: int, exposed: int, density: float, seed: int) -> np.ndarray:
    """(units, K) indices into v = concat(exposed state variables), never a unit's own values."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    count = round(density * exposed * (units - 1))
    rng = np.random.default_rng(seed)
    sources = np.empty((units, count), dtype=np.int32)
    for k in range(units):
        others = [r * units + j for r in range(exposed) for j in range(units) if j != k]
        sources[k] = np.sort(rng.choice(others, size=count, replace=False))
    return sources


def coupled_columns(cell: Cell, density: float, seed: int = 0) -> Cell:
    """``cell``'s columns, each also reading a random ``density`` fraction of the others' outputs.

    The coupling weights live in ``params["recurrent"]`` (same names as the input rows they add
    to) and are initialised like the input rows (the cell's own init over d + K inputs).
    The pattern is fixed by ``seed``.
    """
    if not is_elementwise(cell):
        raise ValueError(f"coupled_columns needs an element-wise cell, got {cell.name!r}")
    sources = random_sources(cell.units, len(cell.exposed), density, seed)
    count = sources.shape[1]

    def init(key, num_inputs: int):
        params = dict(cell.init(key, num_inputs + count))
        rows = params["inputs"]
        params["inputs"] = {name: w[..., :num_inputs] for name, w in rows.items()}
        params["recurrent"] = {name: w[..., num_inputs:] for name, w in rows.items()}
        return params

    return with_unit_transition(
        cell._replace(
            name=f"coupled_{cell.name}[{density:g}]",
            init=init,
            coupling=Coupling(cell.exposed, sources),
        )
    )
