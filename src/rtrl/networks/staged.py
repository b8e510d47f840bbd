"""Staged networks: columnar, constructive and columnar-constructive (CCN) networks
(Javed et al. 2023).

N features (columns of any element-wise cell) are grown in stages of S features; a new stage
becomes active every K steps. With M = N / S stages, stage k of a feature j is ``j // S``::

    columnar      S = N   one stage, no column reads another
    constructive  S = 1   one new feature per stage
    CCN           1 < S < N

A feature of stage k reads the input x_t and the exposed state (e.g. h_{t-1}) of every feature of
earlier stages, one step delayed; there are no connections inside a stage. At time t the active
stage is min(t // K, M - 1). Only its features learn and keep RTRL traces (zeroed when the stage
becomes active); earlier stages are frozen but keep running and feeding later ones, and later
stages run too but are not yet read by the head. Because the values read from frozen stages do
not depend on the active stage's parameters and a stage has no internal connections, per-column
RTRL on the active stage is *exact*.

Each stage may normalise what it reads by running statistics (``input_norm_rate`` < 1): stage k's
statistics of [x_t; reads] are updated, with x_t before normalising it, only while k is active,
and are constants for the gradient.

Parameters (``network.cell.init``): the column cell's ``inputs`` rows over x (N, *gates, d),
``recurrent`` rows over the E*N exposed values of all features (N, *gates, E*N) with the entries
of features that are not read fixed at zero, ``unit`` (N, ...) and an empty ``readout``.
Features: the column cell's readout of all N features (f values per feature, in f blocks of N),
with features of stages not yet reached set to zero.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rtrl.cells import Cell, is_elementwise, make_cell
from rtrl.cells.base import Params, check_input, num_inputs_of, project_reads, stream_axes_of
from rtrl.gradients import columnar_rtrl
from rtrl.gradients.base import Estimator, differentiable_step, where_reset, zero_where_reset
from rtrl.gradients.columnar import TraceState, contract_traces, stack_per_unit
from rtrl.networks.normalize import DEFAULT_VARIANCE_FLOOR, ExponentialMoments, normalizer_update


class StagedNetwork(NamedTuple):
    """A staged network's static description and its cell (see the module docstring)."""

    cell: Cell  # all N features as one cell (forward runs, autodiff references)
    column: Cell  # one stage's S columns, reading [x; exposed values of all N features]
    features: int  # N
    stage_size: int  # S
    stage_steps: int  # K
    reads: np.ndarray  # (M, E*N) bool: which exposed values stage k reads
    input_norm_rate: float
    input_norm_floor: float

    @property
    def num_stages(self) -> int:
        return self.features // self.stage_size

    def exact_rtrl(self) -> Estimator:
        """``staged_rtrl(self)``: what ``make_estimator("staged_rtrl", network)`` returns."""
        return staged_rtrl(self)


def _readout_is_blockwise(cell: Cell) -> bool:
    """Whether feature b*N + j of the readout depends on unit j's state only (f blocks of N)."""
    if cell.num_features % cell.units:
        return False

    @jax.jit  # one compilation instead of one per operation run eagerly
    def readout_jacobians():
        params = cell.init(jax.random.PRNGKey(0), 1)
        state = jax.tree.map(
            lambda a: a + jnp.linspace(0.1, 0.9, cell.units, dtype=a.dtype),
            cell.initial_state(params),
        )
        return jax.jacobian(lambda s: cell.readout(params["readout"], s, jnp.zeros(1)))(state)

    jacobians = readout_jacobians()
    owner = _feature_units(cell.num_features, cell.units)[:, None] == np.arange(cell.units)
    return all(not np.any(np.asarray(j)[~owner]) for j in jax.tree.leaves(jacobians))


@functools.lru_cache(maxsize=None)
def _column_readout_is_blockwise(column: str, features: int, options: tuple) -> bool:
    """``_readout_is_blockwise`` of a named cell, remembered: planning a study builds the same
    columns many times, and each check compiles the cell's readout."""
    return _readout_is_blockwise(make_cell(column, features, **dict(options)))


def _feature_units(num_features: int, units: int) -> np.ndarray:
    """Unit of each feature for a blockwise readout (f blocks of ``units`` values)."""
    return np.tile(np.arange(units), num_features // units)


def staged_network(
    column: str,
    features: int,
    stage_size: int,
    stage_steps: int,
    input_norm_rate: float = 1.0,
    input_norm_floor: float = DEFAULT_VARIANCE_FLOOR,
    **column_options: Any,
) -> StagedNetwork:
    """``features`` columns of the cell named ``column``, grown ``stage_size`` at a time every
    ``stage_steps`` steps (e.g. CCN 20:4:K is ``staged_network("columnar_lstm", 20, 4, K)``)."""
    if stage_size < 1 or features % stage_size:
        raise ValueError(
            f"stage_size ({stage_size}) must divide the number of features ({features}); "
            "e.g. 20 features in stages of 4"
        )
    if stage_steps < 1:
        raise ValueError(f"stage_steps must be at least 1, got {stage_steps}")
    if not 0.0 < input_norm_rate <= 1.0:
        raise ValueError(f"input_norm_rate must be in (0, 1] (1 = off), got {input_norm_rate}")
    whole = make_cell(column, features, **column_options)
    if not is_elementwise(whole):
        raise ValueError(f"a staged network's column must be element-wise, got {whole.name!r}")
    params_shape = jax.eval_shape(lambda: whole.init(jax.random.PRNGKey(0), 1))
    options = tuple(sorted(column_options.items()))
    if params_shape["readout"] or not _column_readout_is_blockwise(column, features, options):
        raise ValueError(
            f"{whole.name!r} cannot be a staged network's column: its readout has parameters or "
            "does not give whole values per unit; use a cell whose features are functions of "
            "each unit's own state (columnar_lstm, elementwise_rnn, linear_rtu, nonlinear_rtu)"
        )
    exposed = whole.exposed
    num_stages = features // stage_size
    stage_of_feature = np.arange(features) // stage_size
    stage_of_read = np.tile(stage_of_feature, len(exposed))
    reads = stage_of_read[None, :] < np.arange(num_stages)[:, None]  # (M, E*N)
    weight_mask = reads[stage_of_feature]  # (N, E*N): feature j reads value v

    def init(key: jax.Array, num_inputs: int) -> Params:
        params = dict(whole.init(key, num_inputs + reads.shape[1]))
        rows = params["inputs"]
        params["inputs"] = {name: w[..., :num_inputs] for name, w in rows.items()}
        params["recurrent"] = {
            name: w[..., num_inputs:] * _expand(weight_mask, w.ndim).astype(w.dtype)
            for name, w in rows.items()
        }
        return params

    def transition(params: Params, state, x: jax.Array):
        check_input(network.cell, params, x)
        return _transition(network, params, state, _stage_inputs(network, state, x, None))

    cell = Cell(
        name=f"staged_{whole.name}[{features}:{stage_size}:{stage_steps}]",
        units=features,
        num_features=whole.num_features,
        init=init,
        initial_state=whole.initial_state,
        transition=transition,
        readout=whole.readout,
        exposed=exposed,
    )
    network = StagedNetwork(
        cell=cell,
        column=make_cell(column, stage_size, **column_options),
        features=features,
        stage_size=stage_size,
        stage_steps=stage_steps,
        reads=reads,
        input_norm_rate=input_norm_rate,
        input_norm_floor=input_norm_floor,
    )
    return network


def _expand(mask: np.ndarray, ndim: int) -> np.ndarray:
    """(N, V) mask broadcast against rows of shape (N, *gates, V)."""
    return mask.reshape(mask.shape[:1] + (1,) * (ndim - 2) + mask.shape[1:])


def _exposed_values(network: StagedNetwork, state) -> jax.Array:
    return jnp.concatenate([state[r] for r in network.cell.exposed])


def _read_vector(network: StagedNetwork, state, x: jax.Array) -> jax.Array:
    """[x_t; exposed values at t-1]: everything any stage may read."""
    return jnp.concatenate([x, _exposed_values(network, state)])


def _kept(network: StagedNetwork, num_inputs: int) -> np.ndarray:
    """(M, d + E*N) bool: the entries of the read vector each stage reads."""
    return np.concatenate([np.ones((network.num_stages, num_inputs), bool), network.reads], 1)


def _kept_per_stream(network: StagedNetwork, num_inputs: int, stream_axes: int) -> np.ndarray:
    kept = _kept(network, num_inputs)
    return kept.reshape(kept.shape + (1,) * stream_axes)


def _stage_inputs(
    network: StagedNetwork, state, x: jax.Array, stats: ExponentialMoments | None
) -> jax.Array:
    """(M, d + E*N): what each stage reads, [x_t; exposed values at t-1], normalised by the stage's
    statistics (if given) and with values the stage does not read set to zero."""
    z = _read_vector(network, state, x)
    z = jnp.broadcast_to(z, (network.num_stages,) + z.shape)
    kept = _kept_per_stream(network, x.shape[0], stream_axes_of(x))
    if stats is None:
        return jnp.where(kept, z, 0.0)
    mean, variance = jax.lax.stop_gradient((stats.mean, stats.variance))
    # A division last, by a select rather than by a square root (which XLA would turn into a
    # multiplication by its reciprocal): XLA counts a division as expensive and so computes the
    # normalised inputs once, instead of fusing them into the projection and recomputing them
    # for every gate and feature of the stage (a third of CCN's step with 32 seeds).
    return jnp.where(kept, z - mean, 0.0) / jnp.where(kept, jnp.sqrt(variance), 1.0)


def _full_rows(params: Params, stream_axes: int) -> dict[str, jax.Array]:
    """Each feature's rows over [x; exposed values]: inputs and recurrent rows side by side."""
    return {
        name: jnp.concatenate([w, params["recurrent"][name]], axis=w.ndim - 1 - stream_axes)
        for name, w in params["inputs"].items()
    }


def _transition(network: StagedNetwork, params: Params, state, stage_inputs: jax.Array, rows=None):
    """All N features' next state, feature j reading its stage's row of ``stage_inputs`` through
    its ``rows`` (``_full_rows``, computed here unless given)."""
    if rows is None:
        rows = _full_rows(params, stage_inputs.ndim - 2)
    per_feature = jnp.repeat(stage_inputs, network.stage_size, axis=0)
    u = project_reads(rows, per_feature)
    return jax.vmap(network.column.unit_step)(params["unit"], state, u)


class StagedState(NamedTuple):
    cell_state: dict[str, jax.Array]  # all N features
    traces: dict[str, dict[str, jax.Array]]  # the active stage's RTRL traces (S features)
    stage: jax.Array  # the stage the traces belong to
    steps: jax.Array  # observations read so far (not reset at episode ends)
    input_stats: ExponentialMoments  # per stage, (M, d + E*N)


def _stage_one_hot(stage: jax.Array, num_stages: int, ndim: int) -> jax.Array:
    """(M, 1, ..., 1, *streams): which stage is ``stage`` in each stream, against arrays with
    ``ndim`` per-stage axes after the stage axis."""
    one_hot = jnp.arange(num_stages).reshape((-1,) + (1,) * jnp.ndim(stage)) == stage
    return one_hot.reshape(one_hot.shape[:1] + (1,) * ndim + one_hot.shape[1:])


def _slice_stage(tree: Any, stage: jax.Array, size: int) -> Any:
    """Rows ``stage * size`` to ``(stage + 1) * size`` of every leaf (the stage axis first).

    With streams last each stream has its own stage: a selection by one-hot weights over the
    stages, elementwise, instead of a gather."""
    if jnp.ndim(stage) == 0:
        return jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, stage * size, size), tree)

    def select(a: jax.Array) -> jax.Array:
        blocks = a.reshape((a.shape[0] // size, size) + a.shape[1:])
        one_hot = _stage_one_hot(stage, blocks.shape[0], a.ndim - jnp.ndim(stage))
        return jnp.sum(jnp.where(one_hot, blocks, 0), axis=0)

    return jax.tree.map(select, tree)


def _place_stage(full: jax.Array, part: jax.Array, stage: jax.Array) -> jax.Array:
    """An array like ``full``, zero but for ``part`` in ``stage``'s rows."""
    part = part.astype(full.dtype)
    size = part.shape[0]
    if jnp.ndim(stage) == 0:
        return jax.lax.dynamic_update_slice_in_dim(jnp.zeros_like(full), part, stage * size, 0)
    one_hot = _stage_one_hot(stage, full.shape[0] // size, part.ndim - jnp.ndim(stage))
    return jnp.where(one_hot, part, 0).reshape(full.shape)


def _stage_row(table: jax.Array, stage: jax.Array) -> jax.Array:
    """``table[stage]`` per stream (table (M, ...) for all streams, or (M, ..., *streams))."""
    return _slice_stage(table, stage, 1)[0]


def active_stage(network: StagedNetwork, steps: jax.Array) -> jax.Array:
    """The stage that learns while observation number ``steps`` (0-based) is read."""
    return jnp.minimum(steps // network.stage_steps, network.num_stages - 1)


def feature_mask(network: StagedNetwork, stage: jax.Array) -> jax.Array:
    """(num_features, *streams) bool: features of stages up to ``stage`` (those the head
    reads)."""
    units = _feature_units(network.cell.num_features, network.features)
    return jnp.asarray(units // network.stage_size).reshape((-1,) + (1,) * jnp.ndim(stage)) <= stage


def staged_rtrl(network: StagedNetwork) -> Estimator:
    """Exact RTRL for the active stage of a staged network; frozen stages get zero gradient.

    The estimator also tells learners what may change: ``trainable(est_state)`` masks the
    recurrent parameters to the active stage and ``active_features(est_state)`` the head's inputs
    to the stages reached so far.
    """
    cell, column = network.cell, network.column
    stage_estimator = columnar_rtrl(column)
    size = network.stage_size

    def stage_params(params: Params, rows, stage: jax.Array) -> Params:
        return {
            "inputs": _slice_stage(rows, stage, size),
            "unit": _slice_stage(params["unit"], stage, size),
            "readout": {},
        }

    def init(params: Params, key: jax.Array | None = None) -> StagedState:
        state = cell.initial_state(params)
        width = num_inputs_of(params) + network.reads.shape[1]
        dtype = jax.tree.leaves(state)[0].dtype
        traces = stage_estimator.init(stage_params(params, _full_rows(params, 0), jnp.int32(0)))
        traces = traces.traces
        stats = ExponentialMoments(
            jnp.zeros((network.num_stages, width), dtype),
            jnp.ones((network.num_stages, width), dtype),
        )
        return StagedState(state, traces, jnp.int32(0), jnp.int32(0), stats)

    def forward(params: Params, est: StagedState, x: jax.Array, reset):
        check_input(cell, params, x)
        b = stream_axes_of(x)
        stage = active_stage(network, est.steps)
        state = where_reset(reset, cell.initial_state(params), est.cell_state)
        new_stage = stage != est.stage
        traces = zero_where_reset(reset | new_stage, est.traces)
        stats = est.input_stats
        if network.input_norm_rate < 1.0:  # static
            kept = _kept_per_stream(network, x.shape[0], b)
            raw = jnp.where(_stage_row(kept, stage), _read_vector(network, state, x), 0.0)
            updated = normalizer_update(
                jax.tree.map(lambda a: _stage_row(a, stage), stats), raw,
                network.input_norm_rate, network.input_norm_floor,
            )  # fmt: skip
            stats = jax.tree.map(
                lambda a, row: jnp.where(_stage_one_hot(stage, a.shape[0], a.ndim - 1 - b), row, a),
                stats, updated,
            )  # fmt: skip
            inputs = _stage_inputs(network, state, x, stats)
        else:
            inputs = _stage_inputs(network, state, x, None)
        rows = _full_rows(params, b)
        new_state = _transition(network, params, state, inputs, rows)
        _, stage_state = stage_estimator.step(
            stage_params(params, rows, stage),
            TraceState(_slice_stage(state, stage, size), traces),
            _stage_row(inputs, stage),
        )
        features = cell.readout(params["readout"], new_state, x)
        features = jnp.where(feature_mask(network, stage), features, 0.0)
        new_est = StagedState(new_state, stage_state.traces, stage, est.steps + 1, stats)
        return features, new_est

    def gradient(params: Params, est: StagedState, x: jax.Array, features_cotangent) -> Params:
        cotangent = jnp.where(feature_mask(network, est.stage), features_cotangent, 0.0)
        _, readout_vjp = jax.vjp(lambda s: cell.readout(params["readout"], s, x), est.cell_state)
        (state_cotangent,) = readout_vjp(cotangent)
        b = stream_axes_of(x)
        delta = _slice_stage(stack_per_unit(state_cotangent), est.stage, size)
        stage_grads = jax.tree.map(lambda t: contract_traces(delta, t, b), est.traces)

        def place(full: jax.Array, part: jax.Array) -> jax.Array:
            return _place_stage(full, part, est.stage)

        def columns(a: jax.Array, start: int, stop: int | None) -> jax.Array:
            axis = a.ndim - 1 - b  # the rows' last per-stream axis: [x; exposed values]
            return jax.lax.slice_in_dim(a, start, a.shape[axis] if stop is None else stop,
                                        axis=axis)  # fmt: skip

        num_inputs = num_inputs_of(params, b)
        rows = stage_grads["inputs"]
        return {
            "inputs": {
                n: place(w, columns(rows[n], 0, num_inputs)) for n, w in params["inputs"].items()
            },
            "recurrent": {
                n: place(w, columns(rows[n], num_inputs, None))
                for n, w in params["recurrent"].items()
            },
            "unit": jax.tree.map(place, params["unit"], stage_grads["unit"]),
            "readout": {},
        }

    return Estimator(
        name="staged_rtrl",
        cell=cell,
        init=init,
        step=differentiable_step(
            cell, forward, gradient, immediate=lambda *args: forward(*args)[0]
        ),
        gradient=gradient,
        trainable=lambda params, est: _trainable_mask(network, params, est.stage),
        active_features=lambda est: feature_mask(network, est.stage),
        streams_last=network.column.streams_last_fast,
    )


def _trainable_mask(network: StagedNetwork, params: Params, stage: jax.Array) -> Params:
    """1 on the rows of ``stage``'s features in every recurrent parameter, 0 elsewhere."""
    rows = (jnp.arange(network.features) // network.stage_size).reshape(
        (-1,) + (1,) * jnp.ndim(stage)
    ) == stage  # (N, *streams)

    def mask(a: jax.Array) -> jax.Array:
        per_row = a.ndim - 1 - jnp.ndim(stage)
        return rows.reshape(rows.shape[:1] + (1,) * per_row + rows.shape[1:]).astype(a.dtype)

    return {k: jax.tree.map(mask, v) for k, v in params.items()}
