"""Unbiased Online Recurrent Optimization, UORO (Tallec & Ollivier 2018).

Keeps a rank-one estimate of the influence matrix, M_t ~ s_t theta_t^T, unbiased over the random
signs nu drawn at every step::

    s_t     = rho0 J_t s_{t-1} + rho1 nu
    theta_t = theta_{t-1} / rho0 + (nu^T dF/dtheta) / rho1

with rho0 = sqrt(|theta_{t-1}| / |J s_{t-1}|), rho1 = sqrt(|nu^T dF/dtheta| / |nu|) minimising the
variance. One JVP and one VJP of the transition per step: O(parameters). Any cell.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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

_EPS = 1e-7


class UOROState(NamedTuple):
    cell_state: Any
    state_factor: jax.Array  # s~ (state size,)
    param_factor: jax.Array  # theta~ (number of recurrent parameters,), ravel_pytree order
    key: jax.Array


def uoro(cell: Cell, seed: int = 0) -> Estimator:
    """UORO for any cell. ``init(params, key=None)``: each stream needs its own key (the
    default derives one from ``seed``); vmap ``init`` over keys for independent estimates."""

    def init(params: Params, key: jax.Array | None = None) -> UOROState:
        state = cell.initial_state(params)
        state_vec, _ = ravel_pytree(state)
        rec_vec, _ = ravel_pytree(recurrent_params(params))
        key = jax.random.PRNGKey(seed) if key is None else key
        return UOROState(state, jnp.zeros_like(state_vec), jnp.zeros_like(rec_vec), key)

    def forward(params, est_state: UOROState, x, reset):
        state = where_reset(reset, cell.initial_state(params), est_state.cell_state)
        state_factor, param_factor = zero_where_reset(
            reset, (est_state.state_factor, est_state.param_factor)
        )
        key, sign_key = jax.random.split(est_state.key)
        flat = flat_transition(cell, params, state, x)
        new_vec, propagated = jax.jvp(
            lambda s: flat.apply(s, flat.params), (flat.state,), (state_factor,)
        )
        _, params_vjp = jax.vjp(lambda r: flat.apply(flat.state, r), flat.params)
        nu = jax.random.rademacher(sign_key, flat.state.shape, dtype=flat.state.dtype)
        (nu_immediate,) = params_vjp(nu)
        norm = jnp.linalg.norm
        rho0 = jnp.sqrt((norm(param_factor) + _EPS) / (norm(propagated) + _EPS))
        rho1 = jnp.sqrt((norm(nu_immediate) + _EPS) / (norm(nu) + _EPS))
        new_state = flat.unravel_state(new_vec)
        features = cell.readout(params["readout"], new_state, x)
        return features, UOROState(
            new_state,
            rho0 * propagated + rho1 * nu,
            param_factor / rho0 + nu_immediate / rho1,
            key,
        )

    def gradient(params, est_state: UOROState, x, features_cotangent) -> Params:
        return flat_gradient(
            cell, params, est_state.cell_state, x, features_cotangent,
            lambda delta: (delta @ est_state.state_factor) * est_state.param_factor,
        )  # fmt: skip

    return Estimator(
        name="uoro",
        cell=cell,
        init=init,
        step=differentiable_step(cell, forward, gradient),
        gradient=gradient,
    )
