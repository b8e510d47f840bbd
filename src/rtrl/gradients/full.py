"""Full RTRL: the exact dense sensitivity matrix, for any cell (reference and small networks).

Carries M_t = ds_t/dtheta (state size x recurrent parameters) with M_t = J_t M_{t-1} + I_t,
J_t and I_t from forward-mode autodiff of the cell's transition. Cost O(S^2 P) per step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from rtrl.cells.base import Cell, Params, recurrent_params
from rtrl.gradients.base import (
    Estimator,
    differentiable_step,
    flat_gradient,
    flat_transition,
    where_reset,
    zero_where_reset,
)


class SensitivityState(NamedTuple):
    cell_state: dict[str, jax.Array]
    sensitivity: jax.Array  # (state size, number of recurrent parameters), ravel_pytree order


def full_rtrl(cell: Cell) -> Estimator:
    """Exact RTRL with a dense sensitivity matrix; works for every cell."""

    def init(params: Params, key: jax.Array | None = None) -> SensitivityState:
        state = cell.initial_state(params)
        state_vec, _ = ravel_pytree(state)
        rec_vec, _ = ravel_pytree(recurrent_params(params))
        return SensitivityState(state, jnp.zeros((state_vec.size, rec_vec.size), rec_vec.dtype))

    def forward(params, est_state: SensitivityState, x, reset):
        state = where_reset(reset, cell.initial_state(params), est_state.cell_state)
        sensitivity = zero_where_reset(reset, est_state.sensitivity)
        flat = flat_transition(cell, params, state, x)

        def with_value(state_vec, rec_vec):
            new_vec = flat.apply(state_vec, rec_vec)
            return new_vec, new_vec

        (jacobian, immediate), new_vec = jax.jacfwd(with_value, argnums=(0, 1), has_aux=True)(
            flat.state, flat.params
        )
        new_state = flat.unravel_state(new_vec)
        features = cell.readout(params["readout"], new_state, x)
        return features, SensitivityState(new_state, jacobian @ sensitivity + immediate)

    def gradient(params, est_state: SensitivityState, x, features_cotangent) -> Params:
        return flat_gradient(
            cell, params, est_state.cell_state, x, features_cotangent,
            lambda delta: delta @ est_state.sensitivity,
        )  # fmt: skip

    return Estimator(
        name="full_rtrl",
        cell=cell,
        init=init,
        step=differentiable_step(cell, forward, gradient),
        gradient=gradient,
    )
