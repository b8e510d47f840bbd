"""Backpropagation through time over a whole unrolled sequence: the ground truth for every
gradient estimator (not an online method)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, Params
from rtrl.gradients.base import StepLoss, reset_then_step


def unroll(
    cell: Cell, params: Params, xs: jax.Array, resets: jax.Array | None = None, state: Any = None
) -> tuple[jax.Array, Any]:
    """Run the cell over ``xs`` (time first); returns (features per step, final state).

    ``resets[t]`` True restarts the state from ``initial_state`` before reading ``xs[t]``.
    Fully differentiable by ordinary autodiff.
    """
    if state is None:
        state = cell.initial_state(params)
    if resets is None:
        resets = jnp.zeros(xs.shape[0], dtype=bool)

    def per_step(state, inputs):
        x, reset = inputs
        return reset_then_step(cell, params, state, x, reset)

    final_state, features = jax.lax.scan(per_step, state, (xs, resets))
    return features, final_state


def sequence_loss(
    cell: Cell,
    step_loss: StepLoss,
    params: Params,
    head: Any,
    xs: jax.Array,
    resets: jax.Array,
    targets: Any,
    state: Any = None,
) -> jax.Array:
    """Sum over the sequence of ``step_loss(head, features_t, target_t)``."""
    features, _ = unroll(cell, params, xs, resets, state)
    losses = jax.vmap(step_loss, in_axes=(None, 0, 0))(head, features, targets)
    return jnp.sum(losses)


def value_and_grad(
    cell: Cell,
    step_loss: StepLoss,
    params: Params,
    head: Any,
    xs: jax.Array,
    resets: jax.Array,
    targets: Any,
    state: Any = None,
) -> tuple[jax.Array, tuple[Params, Any]]:
    """Summed loss and its exact gradient with respect to ``(params, head)``."""
    return jax.value_and_grad(sequence_loss, argnums=(2, 3))(
        cell, step_loss, params, head, xs, resets, targets, state
    )
