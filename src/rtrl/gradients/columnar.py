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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rtrl.cells.base import Cell, Params, is_unit_form, unit_inputs
from rtrl.gradients.base import (
    Estimator,
    differentiable_step,
    readout_cotangents,
    where_reset,
    zero_where_reset,
)


class TraceState(NamedTuple):
    cell_state: dict[str, jax.Array]
    # traces[group][name]: (units, s, *shape of the parameter per unit), group in
    # {"inputs", "recurrent", "unit"}; s state variables per unit, in pytree (sorted-key) order.
    traces: dict[str, dict[str, jax.Array]]


def stack_per_unit(state: dict[str, jax.Array]) -> jax.Array:
    """(units, s): each unit's state variables in pytree order."""
    return jnp.stack(jax.tree.leaves(state), axis=-1)


def _apply_jacobian(jacobian: jax.Array, trace: jax.Array) -> jax.Array:
    """Per unit, J (s x s) times the trace (s x ...).

    Written as s broadcast multiply-adds (s is 1 or 2) rather than an einsum: XLA on CPU fuses
    these into one loop, while a batched dot over tiny matrices is markedly slower.
    """
    jacobian = jacobian.reshape(jacobian.shape + (1,) * (trace.ndim - 2))
    return sum(jacobian[:, :, j] * trace[:, j, None] for j in range(trace.shape[1]))


def contract_traces(delta: jax.Array, trace: jax.Array) -> jax.Array:
    """Per unit, delta (s,) . trace (s x ...): the gradient for that unit's parameters."""
    delta = delta.reshape(delta.shape + (1,) * (trace.ndim - 2))
    return sum(delta[:, j] * trace[:, j] for j in range(trace.shape[1]))


def _outer(d_u: jax.Array, vector: jax.Array) -> jax.Array:
    """D_u (units, s, *gates) outer a per-unit (units, m) or shared (m,) vector."""
    if vector.ndim == 2:
        vector = vector.reshape((vector.shape[0],) + (1,) * (d_u.ndim - 1) + vector.shape[1:])
    return d_u[..., None] * vector


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


def _local_jacobians(unit_step, unit_params, unit_state, u, self_weights):
    """For one unit: new state, J (s, s), dF/du and dF/dp (pytrees of (s, *shape)).

    ``self_weights[name]`` (*gates, s) is the weight with which this unit's recurrent rows read
    its own previous state; it enters J but not the value (the read is already inside ``u``).
    """
    leaves, treedef = jax.tree.flatten(unit_state)

    def flat_step(state_vec, u, unit_params):
        if self_weights:
            zero_with_tangent = state_vec - jax.lax.stop_gradient(state_vec)
            u = {
                name: value + jnp.tensordot(self_weights[name], zero_with_tangent, axes=1)
                if name in self_weights
                else value
                for name, value in u.items()
            }
        new = unit_step(unit_params, jax.tree.unflatten(treedef, list(state_vec)), u)
        new_vec = jnp.stack(jax.tree.leaves(new))
        return new_vec, new_vec

    (jacobian, d_u, d_p), new_vec = jax.jacfwd(flat_step, argnums=(0, 1, 2), has_aux=True)(
        jnp.stack(leaves), u, unit_params
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

    def forward(params, est_state: TraceState, x, reset):
        state = where_reset(reset, cell.initial_state(params), est_state.cell_state)
        traces = zero_where_reset(reset, est_state.traces)
        u, reads = unit_inputs(cell, params, state, x)
        selector = _self_read_selector(cell, state)
        self_weights = (
            {}
            if selector is None
            else {
                name: jnp.einsum("n...k,nks->n...s", w, selector.astype(w.dtype))
                for name, w in params["recurrent"].items()
            }
        )
        new_state, jacobian, d_u, d_p = jax.vmap(_local_jacobians, in_axes=(None, 0, 0, 0, 0))(
            cell.unit_step, params["unit"], state, u, self_weights
        )
        immediate = {
            "inputs": lambda name: _outer(d_u[name], x),
            "recurrent": lambda name: _outer(d_u[name], reads),
            "unit": lambda name: d_p[name],
        }
        new_traces = {
            group: {
                name: _apply_jacobian(jacobian, trace) + immediate[group](name)
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
        grads = jax.tree.map(lambda t: contract_traces(delta, t), est_state.traces)
        return {**grads, "readout": readout_grad}

    return Estimator(
        name=name,
        cell=cell,
        init=init,
        step=differentiable_step(cell, forward, gradient),
        gradient=gradient,
    )


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
