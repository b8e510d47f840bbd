"""RTRL restricted to each unit's own block: exact in O(parameters) for element-wise cells;
the columnar approximation for coupled columns; SnAp-1 for dense cells.

For a unit-form cell (cells/base.py) unit k keeps only ds_k/dtheta_k, the influence of its own
parameters on its own state (a few numbers). With local Jacobians J = dF_k/ds_k,
D_u = dF_k/du_k and D_p = dF_k/dp_k from a forward-mode Jacobian over the unit's few scalars::

    T^W_k <- J T^W_k + D_u (outer) x_t      (input rows: outer product with the input)
    T^R_k <- J T^R_k + D_u (outer) v_k      (recurrent rows: outer product with the values read)
    T^p_k <- J T^p_k + D_p                  (private per-unit parameters)

and dL_t/dtheta_k = delta_k . T_k with delta_k = dL_t/ds_k. J includes the unit's reads of its
own previous state through recurrent rows (a dense cell's self-connection); reads of *other*
units are treated as constant inputs. Without coupling nothing is dropped: the gradient is exact.
Trace memory is (state size per unit) x (recurrent parameters).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rtrl.cells.base import (
    Cell,
    Params,
    contract,
    is_elementwise,
    is_unit_form,
    stream_axes_of,
    unit_inputs,
)
from rtrl.gradients.base import (
    Estimator,
    differentiable_step,
    readout_cotangents,
    where_reset,
    zero_where_reset,
)


class TraceState(NamedTuple):
    cell_state: dict[str, jax.Array]
    # traces[group][name]: (units, s, *shape of the parameter per unit, *streams), group in
    # {"inputs", "recurrent", "unit"}; s state variables per unit, in pytree (sorted-key) order;
    # stream axes trailing when several streams run at once (cells/base.py).
    traces: dict[str, dict[str, jax.Array]]


def stack_per_unit(state: dict[str, jax.Array]) -> jax.Array:
    """(units, s, *streams): each unit's state variables in pytree order."""
    return jnp.stack(jax.tree.leaves(state), axis=1)


def _per_unit_factor(factor: jax.Array, trace: jax.Array, stream_axes: int) -> jax.Array:
    """factor (units, s, *streams) shaped to broadcast against a trace (units, s, *shape,
    *streams)."""
    middle = trace.ndim - factor.ndim
    cut = factor.ndim - stream_axes
    return factor.reshape(factor.shape[:cut] + (1,) * middle + factor.shape[cut:])


def _apply_jacobian(jacobian: jax.Array, trace: jax.Array, stream_axes: int) -> jax.Array:
    """Per unit, J (s x s) times the trace (s x ...).

    Written as s broadcast multiply-adds (s is 1 or 2) rather than an einsum: XLA on CPU fuses
    these into one loop, while a batched dot over tiny matrices is markedly slower.
    """
    return sum(
        _per_unit_factor(jacobian[:, :, j], trace, stream_axes) * trace[:, j, None]
        for j in range(trace.shape[1])
    )


def contract_traces(delta: jax.Array, trace: jax.Array, stream_axes: int = 0) -> jax.Array:
    """Per unit, delta (s,) . trace (s x ...): the gradient for that unit's parameters."""
    return sum(
        _per_unit_factor(delta[:, j], trace[:, j], stream_axes) * trace[:, j]
        for j in range(trace.shape[1])
    )


def _outer(d_u: jax.Array, vector: jax.Array, stream_axes: int) -> jax.Array:
    """D_u (units, s, *gates) outer a per-unit (units, m) or shared (m,) vector."""
    if vector.ndim == 2 + stream_axes:  # per unit
        vector = vector.reshape((vector.shape[0],) + (1,) * (d_u.ndim - 1 - stream_axes)
                                + vector.shape[1:])  # fmt: skip
    return jnp.expand_dims(d_u, d_u.ndim - stream_axes) * vector


def per_stream_jacobian(f, primals: tuple, stream_axes: int):
    """Forward-mode Jacobian of ``f`` (pytrees in, one array (o, *streams) out) for every stream
    at once: each tangent is one on a single per-stream entry, in every stream, so the streams'
    derivatives come out side by side. Returns (output, one (o, *leaf shape, *streams) array per
    primal leaf, as pytrees like ``primals``). With no stream axes this is ``jax.jacfwd``."""
    leaves, treedef = jax.tree.flatten(primals)
    streams = leaves[0].shape[leaves[0].ndim - stream_axes :]
    shapes = [leaf.shape[: leaf.ndim - stream_axes] for leaf in leaves]
    sizes = [int(np.prod(shape)) for shape in shapes]
    flat = jnp.concatenate([leaf.reshape((n,) + streams) for leaf, n in zip(leaves, sizes)])

    def flat_f(z):
        parts = jnp.split(z, np.cumsum(sizes)[:-1])
        args = [p.reshape(shape + streams) for p, shape in zip(parts, shapes)]
        return f(*jax.tree.unflatten(treedef, args))

    basis = jnp.broadcast_to(
        jnp.eye(flat.shape[0], dtype=flat.dtype).reshape((flat.shape[0],) * 2 + (1,) * stream_axes),
        (flat.shape[0],) + flat.shape,
    )
    output, tangents = jax.vmap(lambda t: jax.jvp(flat_f, (flat,), (t,)), out_axes=(None, 1))(basis)
    out = output.shape[0]
    blocks = jnp.split(tangents, np.cumsum(sizes)[:-1], axis=1)
    jacobians = [b.reshape((out,) + shape + streams) for b, shape in zip(blocks, shapes)]
    return output, jax.tree.unflatten(treedef, jacobians)


def _self_read_selector(cell: Cell, state: dict[str, jax.Array]) -> np.ndarray | None:
    """(units, K, s) one-hot: which of unit k's reads are its own state variables (None if none)."""
    coupling = cell.coupling
    if coupling is None:
        return None
    n, count = coupling.sources.shape
    selector = np.zeros((n, count, len(state)), dtype=np.float32)
    for i, var in enumerate(sorted(state)):  # pytree order of the state dict
        if var in coupling.reads:
            own = coupling.reads.index(var) * n + np.arange(n)
            selector[:, :, i] = coupling.sources == own[:, None]
    return selector if selector.any() else None


def _self_weights(w: jax.Array, selector: jax.Array, stream_axes: int) -> jax.Array:
    """(units, *gates, s, *streams): the weights of each unit's reads of its own state."""
    if stream_axes == 0:
        return jnp.einsum("n...k,nks->n...s", w, selector)
    gates = w.ndim - 2 - stream_axes
    w = jnp.expand_dims(w, w.ndim - stream_axes)  # (units, *gates, K, 1, *streams)
    selector = selector.reshape(selector.shape[:1] + (1,) * gates + selector.shape[1:]
                                + (1,) * stream_axes)  # fmt: skip
    return jnp.sum(w * selector, axis=-(stream_axes + 2))


def _local_jacobians(unit_step, stream_axes, unit_params, unit_state, u, self_weights):
    """For one unit: new state, J (s, s), dF/du and dF/dp (pytrees of (s, *shape)), each with
    the stream axes trailing.

    ``self_weights[name]`` (*gates, s) is the weight with which this unit's recurrent rows read
    its own previous state; it enters J but not the value (the read is already inside ``u``).
    """
    leaves, treedef = jax.tree.flatten(unit_state)

    def flat_step(state_vec, u, unit_params):
        if self_weights:
            zero_with_tangent = state_vec - jax.lax.stop_gradient(state_vec)
            u = {
                name: value + contract(self_weights[name], zero_with_tangent, stream_axes)
                if name in self_weights
                else value
                for name, value in u.items()
            }
        new = unit_step(unit_params, jax.tree.unflatten(treedef, list(state_vec)), u)
        return jnp.stack(jax.tree.leaves(new))

    new_vec, (jacobian, d_u, d_p) = per_stream_jacobian(
        flat_step, (jnp.stack(leaves), u, unit_params), stream_axes
    )
    return jax.tree.unflatten(treedef, list(new_vec)), jacobian, d_u, d_p


def _unit_block_rtrl(cell: Cell, name: str) -> Estimator:
    if not is_unit_form(cell):
        raise ValueError(
            f"{name} needs a unit-form cell (every cell in rtrl.cells is one), but {cell.name!r} "
            "only provides a transition; use full_rtrl (exact, small networks only)"
        )

    def init(params: Params, key: jax.Array | None = None) -> TraceState:
        state = cell.initial_state(params)
        s = len(jax.tree.leaves(state))

        def zeros_for(p: jax.Array) -> jax.Array:
            return jnp.zeros((cell.units, s) + p.shape[1:], p.dtype)

        groups = [g for g in ("inputs", "recurrent", "unit") if g in params]
        return TraceState(state, {g: jax.tree.map(zeros_for, params[g]) for g in groups})

    def local_step(params, est_state: TraceState, x, reset):
        """The new state and this step's local terms (J, D_u, D_p, the values read)."""
        state = where_reset(reset, cell.initial_state(params), est_state.cell_state)
        u, reads = unit_inputs(cell, params, state, x)
        b = stream_axes_of(x)
        selector = _self_read_selector(cell, state)
        self_weights = (
            {}
            if selector is None
            else {
                name: _self_weights(w, selector.astype(w.dtype), b)
                for name, w in params["recurrent"].items()
            }
        )
        new_state, jacobian, d_u, d_p = jax.vmap(
            partial(_local_jacobians, cell.unit_step, b), in_axes=(0, 0, 0, 0)
        )(params["unit"], state, u, self_weights)
        return new_state, jacobian, d_u, d_p, reads

    def forward(params, est_state: TraceState, x, reset):
        traces = zero_where_reset(reset, est_state.traces)
        new_state, jacobian, d_u, d_p, reads = local_step(params, est_state, x, reset)
        b = stream_axes_of(x)
        immediate = {
            "inputs": lambda name: _outer(d_u[name], x, b),
            "recurrent": lambda name: _outer(d_u[name], reads, b),
            "unit": lambda name: d_p[name],
        }
        new_traces = {
            group: {
                name: _apply_jacobian(jacobian, trace, b) + immediate[group](name)
                for name, trace in group_traces.items()
            }
            for group, group_traces in traces.items()
        }
        features = cell.readout(params["readout"], new_state, x)
        return features, TraceState(new_state, new_traces)

    def gradient(params, est_state: TraceState, x, features_cotangent) -> Params:
        readout_grad, state_cotangent = readout_cotangents(
            cell, params, est_state.cell_state, x, features_cotangent
        )
        delta = stack_per_unit(state_cotangent)
        b = stream_axes_of(x)
        grads = jax.tree.map(lambda t: contract_traces(delta, t, b), est_state.traces)
        return {**grads, "readout": readout_grad}

    return Estimator(
        name=name,
        cell=cell,
        init=init,
        step=differentiable_step(cell, forward, gradient),
        gradient=gradient,
        streams_last=cell.streams_last_fast,
        run_segment=segment_rtrl(cell) if is_elementwise(cell) else None,
        segment_traces=segment_traces(cell, local_step) if is_elementwise(cell) else None,
    )


class StepTerms(NamedTuple):
    """What one step contributes to the traces of an element-wise cell: its state Jacobian
    J (units, s, s), D_u and D_p (per parameter name), its input x and its reset flag."""

    jacobian: jax.Array
    d_u: dict[str, jax.Array]
    d_p: dict[str, jax.Array]
    x: jax.Array
    reset: jax.Array


class SegmentCarry(NamedTuple):
    """An actor's carry inside a segment: the cell state now with the traces of the segment's
    start, and the terms of the last step (collected per step, applied at the segment's end)."""

    trace_state: TraceState
    terms: StepTerms


class SegmentTraces(NamedTuple):
    """Exact RTRL for actors that step through a segment and need the traces only at its end:
    ``step(params, carry, x, reset) -> (features, SegmentCarry)`` advances the state alone
    (``carry`` a ``TraceState`` or ``SegmentCarry``), and ``advance(params, traces, terms)``
    applies the segment's steps (``terms`` stacked time first) to its start traces at once:

        T_M = Phi_M0 T_0 + sum_t Phi_Mt I_t,   Phi_Mt = J_M ... J_{t+1} (0 across a reset),

    the per-step recursion T_t = J_t T_{t-1} + I_t summed in another order. The input rows'
    sum is one matrix product over the segment's steps, (units x s x gates, M) by (M, inputs),
    where stepping rewrites every trace at every step."""

    step: Callable[..., tuple[jax.Array, SegmentCarry]]
    advance: Callable[[Params, dict, StepTerms], dict]


def segment_traces(cell: Cell, local_step) -> SegmentTraces:
    def step(params, carry, x, reset):
        trace_state = carry.trace_state if isinstance(carry, SegmentCarry) else carry
        new_state, jacobian, d_u, d_p, _ = local_step(params, trace_state, x, reset)
        features = cell.readout(params["readout"], new_state, x)
        terms = StepTerms(jacobian, d_u, d_p, x, jnp.asarray(reset, bool))
        return features, SegmentCarry(trace_state._replace(cell_state=new_state), terms)

    def advance(params, traces, terms: StepTerms):
        s = terms.jacobian.shape[-1]
        identity = jnp.broadcast_to(jnp.eye(s, dtype=terms.jacobian.dtype),
                                    terms.jacobian.shape[1:])  # fmt: skip

        def backwards(product, step_terms):  # product = Phi_Mt, then Phi_M(t-1)
            jacobian, reset = step_terms
            earlier = jnp.where(reset, 0.0, jnp.einsum("iab,ibc->iac", product, jacobian))
            return earlier, product

        start, products = jax.lax.scan(
            backwards, identity, (terms.jacobian, terms.reset), reverse=True
        )  # start = Phi_M0; products[t] = Phi_Mt

        def carried(trace):  # Phi_M0 T_0, per unit (s x s) times (s x ...)
            return jnp.einsum("iab,ib...->ia...", start, trace)

        def steps_sum(d):  # sum_t Phi_Mt D_t: (units, s, *shape)
            return jnp.einsum("tiab,tib...->ia...", products, d)

        def input_rows(d):  # sum_t (Phi_Mt D_u,t) outer x_t, as one product over t
            a = jnp.einsum("tiab,tib...->tia...", products, d)
            return jnp.tensordot(jnp.moveaxis(a, 0, -1), terms.x, axes=1)

        new = {}
        for group, group_traces in traces.items():
            if group == "recurrent":
                raise ValueError("segment traces are for element-wise cells (no recurrent rows)")
            update = input_rows if group == "inputs" else steps_sum
            source = terms.d_u if group == "inputs" else terms.d_p
            new[group] = {name: carried(t) + update(source[name]) for name, t in
                          group_traces.items()}  # fmt: skip
        return new

    return SegmentTraces(step, advance)


def segment_rtrl(cell: Cell):
    """Exact RTRL's features and gradient over a whole segment, without a trace per step.

    For an element-wise cell the RTRL gradient of a segment's loss, sum_t delta_t . T_t, is
    backpropagation through the segment plus the credit of the segment's start state through
    the traces carried in: eps_0 . T_0, with eps_0 the loss's gradient with respect to that
    state. So the segment runs as plain autodiff from the start state s_0 + T_0 (theta -
    theta), whose value is s_0 and whose gradient brings T_0 in, while the input x_t reaches
    only the features of its own step (the estimators' one-step input gradient): the carried
    state reads x_t held constant, and the features add a one-step term from x_t whose value is
    zero. A learner that re-runs a segment and differentiates its loss (IMPALA's) then stores
    no traces per step."""

    def run(params: Params, est_state: TraceState, xs: jax.Array, resets: jax.Array):
        held = jax.lax.stop_gradient(params)
        leaves, treedef = jax.tree.flatten(est_state.cell_state)
        credit = sum(
            jnp.sum(
                trace * jnp.expand_dims(params[group][name] - held[group][name], 1),
                axis=tuple(range(2, trace.ndim)),
            )  # fmt: skip
            for group, traces in est_state.traces.items()
            for name, trace in traces.items()
        )  # (units, s), zero in value
        start = jax.tree.unflatten(treedef, [v + credit[:, i] for i, v in enumerate(leaves)])

        def per_step(state, inputs):
            x, reset = inputs
            state = where_reset(reset, cell.initial_state(params), state)
            new = cell.transition(params, state, jax.lax.stop_gradient(x))
            one_step = cell.transition(held, jax.lax.stop_gradient(state), x)
            read = jax.tree.map(lambda n, o: n + (o - jax.lax.stop_gradient(o)), new, one_step)
            return new, cell.readout(params["readout"], read, x)

        _, features = jax.lax.scan(per_step, start, (xs, resets))
        return features

    return run


def columnar_rtrl(cell: Cell) -> Estimator:
    """Per-unit RTRL in O(parameters): exact for element-wise cells; for coupled columns, the
    columnar approximation (other columns' outputs treated as constants), exact at density 0."""
    return _unit_block_rtrl(cell, "columnar_rtrl")


def snap1(cell: Cell) -> Estimator:
    """SnAp-1 (Menick et al. 2021): keep the influence of each parameter on the unit it drives
    within one step, propagated with that unit's block of the Jacobian. For unit-form cells this
    is the same computation as ``columnar_rtrl``; it is exact when units are not coupled."""
    return _unit_block_rtrl(cell, "snap1")


def trace_size(est_state: Any) -> int:
    """Number of trace entries an estimator state carries (memory of the credit assignment)."""
    return sum(int(t.size) for t in jax.tree.leaves(est_state.traces))
