"""Meta-gradients through online head updates (the meta-learning variant of the Javed et al.
2021 test-bed).

The linear head learns inside the sequence: with features h_t (after reading x_t),
delta_t = y_t - w_{t-1} . h_t, loss_t = delta_t^2 / 2 and w_t = w_{t-1} + alpha delta_t h_t. The
meta-gradient d(sum_t loss_t)/d theta for the recurrent parameters includes theta's influence on
the head weights. An estimator provides H_t ~ dh_t/d theta (its gradient for each basis cotangent);
the influence W_t = dw_t/d theta is carried alongside::

    d delta_t / d theta = -(w_{t-1} H_t + h_t W_{t-1})
    W_t = W_{t-1} + alpha (h_t (outer) d delta_t/d theta + delta_t H_t)

Per-column estimators (columnar RTRL, SnAp-1) keep only W[k, theta_k], the influence of column
k's parameters on its own head weight (an approximation even without coupling); the others carry
all of W. The truth is autodiff through the unrolled computation, head updates included.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from rtrl.cells.base import Cell, Params, recurrent_params
from rtrl.gradients import bptt
from rtrl.gradients.base import Estimator

PER_COLUMN = ("columnar_rtrl", "snap1")


def meta_bptt_grad(cell: Cell, params: Params, head, xs, targets, step_size: float) -> Params:
    """Exact meta-gradient (all parameters) by autodiff through features and head updates."""

    def total_loss(params):
        features, _ = bptt.unroll(cell, params, xs)

        def head_step(w, inputs):
            h, y = inputs
            delta = y - w @ h
            return w + step_size * delta * h, 0.5 * delta**2

        _, losses = jax.lax.scan(head_step, head, (features, targets))
        return jnp.sum(losses)

    return jax.grad(total_loss)(params)


def _column_mask(cell: Cell, params: Params) -> np.ndarray:
    """(features, recurrent parameters): feature k may depend on parameters of unit k only."""
    if cell.num_features != cell.units:
        raise ValueError(f"per-column head influence needs one feature per unit ({cell.name})")
    owner = np.concatenate(
        [
            np.repeat(np.arange(cell.units), leaf.size // cell.units)
            for leaf in jax.tree.leaves(recurrent_params(params))
        ]
    )
    return (np.arange(cell.units)[:, None] == owner[None, :]).astype(np.float32)


def meta_online_grad(
    estimator: Estimator, params: Params, head, xs, targets, step_size: float, est_state=None
) -> Params:
    """The estimator's meta-gradient (recurrent parameters only), summed over the sequence."""
    cell = estimator.cell
    rec_vec, unravel = ravel_pytree(recurrent_params(params))
    num_features = cell.num_features
    mask = _column_mask(cell, params) if estimator.name in PER_COLUMN else None
    if est_state is None:
        est_state = estimator.init(params)

    def per_step(carry, inputs):
        est_state, w, influence, total = carry
        x, y = inputs
        h, est_state = estimator.step(params, est_state, x, False)
        jacobian = jax.vmap(
            lambda c: ravel_pytree(recurrent_params(estimator.gradient(params, est_state, x, c)))[0]
        )(jnp.eye(num_features, dtype=h.dtype))
        delta = y - w @ h
        d_delta = -(w @ jacobian + h @ influence)
        influence = influence + step_size * (jnp.outer(h, d_delta) + delta * jacobian)
        if mask is not None:
            influence = influence * mask
        return (est_state, w + step_size * delta * h, influence, total + delta * d_delta), None

    zeros = jnp.zeros((num_features, rec_vec.size), rec_vec.dtype)
    carry = (est_state, head, zeros, jnp.zeros_like(rec_vec))
    (_, _, _, total), _ = jax.lax.scan(per_step, carry, (xs, targets))
    return unravel(total)
