"""Exact RTRL for element-wise (columnar) cells in O(parameters) per step.

Unit k's state s_k (a few numbers) depends only on its own parameters, so the sensitivity
matrix ds/dtheta is block-diagonal and each unit keeps only ds_k/dtheta_k. With the cell's
factorization (cells/base.py), for one unit with local Jacobians J = dF/ds_k, D_u = dF/du_k and
D_p = dF/dp_k (from a forward-mode Jacobian over the unit's few scalars)::

    T^W_k <- J T^W_k + D_u (outer) x_t      (input-projection rows: outer product with the input)
    T^p_k <- J T^p_k + D_p                  (private per-unit parameters)

and the gradient of a loss at step t is dL/dtheta_k = delta_k . T_k with delta_k = dL_t/ds_k.
Trace memory is (state size per unit) x (recurrent parameters).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, Params, check_input, is_elementwise, project_inputs
from rtrl.gradients.base import (
    Estimator,
    differentiable_step,
    readout_cotangents,
    where_reset,
    zero_where_reset,
)


class TraceState(NamedTuple):
    cell_state: dict[str, jax.Array]
    # traces["inputs"][name]: (units, s, *gates, d); traces["unit"][name]: (units, s, *shape)
    # where s is the number of state variables per unit (ordered as jax.tree.leaves of a state).
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


def _contract(delta: jax.Array, trace: jax.Array) -> jax.Array:
    """Per unit, delta (s,) . trace (s x ...): the gradient for that unit's parameters."""
    delta = delta.reshape(delta.shape + (1,) * (trace.ndim - 2))
    return sum(delta[:, j] * trace[:, j] for j in range(trace.shape[1]))


def _local_jacobians(unit_step, unit_params, unit_state, u):
    """For one unit: new state (s,), J (s, s), dF/du and dF/dp (pytrees of (s, *shape))."""
    leaves, treedef = jax.tree.flatten(unit_state)

    def flat_step(state_vec, u, unit_params):
        new = unit_step(unit_params, jax.tree.unflatten(treedef, list(state_vec)), u)
        new_vec = jnp.stack(jax.tree.leaves(new))
        return new_vec, new_vec

    (jacobian, d_u, d_p), new_vec = jax.jacfwd(flat_step, argnums=(0, 1, 2), has_aux=True)(
        jnp.stack(leaves), u, unit_params
    )
    return jax.tree.unflatten(treedef, list(new_vec)), jacobian, d_u, d_p


def columnar_rtrl(cell: Cell) -> Estimator:
    """Exact, O(p) real-time recurrent learning for an element-wise cell."""
    if not is_elementwise(cell):
        raise ValueError(
            f"columnar_rtrl needs an element-wise cell, but {cell.name!r} couples its units; "
            "use full_rtrl (exact, small networks only) or an approximate estimator"
        )

    def init(params: Params) -> TraceState:
        state = cell.initial_state(params)
        s = len(jax.tree.leaves(state))
        n = cell.units

        def zeros_for(p: jax.Array) -> jax.Array:
            return jnp.zeros((n, s) + p.shape[1:], p.dtype)

        traces = {
            "inputs": jax.tree.map(zeros_for, params["inputs"]),
            "unit": jax.tree.map(zeros_for, params["unit"]),
        }
        return TraceState(state, traces)

    def forward(params, est_state: TraceState, x, reset):
        state = where_reset(reset, cell.initial_state(params), est_state.cell_state)
        traces = zero_where_reset(reset, est_state.traces)
        check_input(cell, params, x)
        u = project_inputs(params["inputs"], x)
        new_state, jacobian, d_u, d_p = jax.vmap(_local_jacobians, in_axes=(None, 0, 0, 0))(
            cell.unit_step, params["unit"], state, u
        )
        new_traces = {
            "inputs": {
                name: _apply_jacobian(jacobian, trace) + d_u[name][..., None] * x
                for name, trace in traces["inputs"].items()
            },
            "unit": {
                name: _apply_jacobian(jacobian, trace) + d_p[name]
                for name, trace in traces["unit"].items()
            },
        }
        features = cell.readout(params["readout"], new_state, x)
        return features, TraceState(new_state, new_traces)

    def gradient(params, est_state: TraceState, x, features_cotangent) -> Params:
        readout_grad, state_cotangent = readout_cotangents(
            cell, params, est_state.cell_state, x, features_cotangent
        )
        delta = stack_per_unit(state_cotangent)
        return {
            "inputs": jax.tree.map(lambda t: _contract(delta, t), est_state.traces["inputs"]),
            "unit": jax.tree.map(lambda t: _contract(delta, t), est_state.traces["unit"]),
            "readout": readout_grad,
        }

    return Estimator(
        name="columnar_rtrl",
        cell=cell,
        init=init,
        step=differentiable_step(cell, forward, gradient),
        gradient=gradient,
    )


def trace_size(est_state: Any) -> int:
    """Number of trace entries an estimator state carries (memory of the credit assignment)."""
    return sum(int(t.size) for t in jax.tree.leaves(est_state.traces))
