"""Truncated backpropagation through time for online learning.

``truncated_bptt(cell, T)``: at every step, the gradient of the current loss through the last T
steps, from a stop-gradient state. The estimator state keeps the last T inputs and reset flags
and the state *before* the oldest of them (so the window's oldest step reads the right state);
every step re-runs the window with the current parameters. Cost O(T) steps per step.

``block_value_and_grad``: the "every T steps" variant, one BPTT update per block of T steps from
the stop-gradient state at the block's start.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, Params, num_inputs_of
from rtrl.gradients.base import Estimator, StepLoss, reset_then_step, where_reset
from rtrl.gradients.bptt import unroll

MAX_UNROLLED_WINDOW = 16


class WindowState(NamedTuple):
    cell_state: Any  # state after the newest step (the end of the window)
    start_state: Any  # state before the oldest step of the window
    xs: jax.Array  # (T, d) the window's inputs, right-aligned: the newest last
    resets: jax.Array  # (T,) their reset flags
    filled: jax.Array  # how many of the T slots hold real steps (the rest precede the stream)


def _run_window(cell: Cell, params: Params, window: WindowState):
    """Re-run the window from its stop-gradient start state (slots before the stream: skipped)."""
    truncation = window.xs.shape[0]
    slots = jnp.arange(truncation).reshape((-1,) + (1,) * window.filled.ndim)
    valid = slots >= truncation - window.filled  # (T, *streams)

    def per_slot(state, inputs):
        x, reset, is_valid = inputs
        stepped, _ = reset_then_step(cell, params, state, x, reset)
        return where_reset(is_valid, stepped, state), None

    start = jax.lax.stop_gradient(window.start_state)
    # Short windows unrolled: a loop inside every online step (and another in its gradient)
    # costs more in loop overhead than its few tiny steps.
    unroll = truncation <= MAX_UNROLLED_WINDOW
    final, _ = jax.lax.scan(per_slot, start, (window.xs, window.resets, valid), unroll=unroll)
    return final


def truncated_bptt(cell: Cell, truncation: int, num_inputs: int | None = None) -> Estimator:
    """Online T-BPTT with window ``truncation`` (T >= stream length gives full BPTT).

    ``num_inputs`` is needed only for cells without ``params["inputs"]``.
    """
    if truncation < 1:
        raise ValueError(f"truncation must be at least 1, got {truncation}")

    def init(params: Params, key: jax.Array | None = None) -> WindowState:
        d = num_inputs if num_inputs is not None else num_inputs_of(params)
        state = cell.initial_state(params)
        dtype = jax.tree.leaves(state)[0].dtype
        return WindowState(
            cell_state=state,
            start_state=state,
            xs=jnp.zeros((truncation, d), dtype),
            resets=jnp.zeros((truncation,), bool),
            filled=jnp.zeros((), jnp.int32),
        )

    def advance(params, est_state: WindowState, x, reset) -> WindowState:
        """Slide the window one step: the oldest step leaves, its effect moves into start_state."""
        full = est_state.filled >= truncation
        after_oldest, _ = reset_then_step(
            cell, params, est_state.start_state, est_state.xs[0], est_state.resets[0]
        )
        start_state = where_reset(full, after_oldest, est_state.start_state)
        return est_state._replace(
            start_state=jax.lax.stop_gradient(start_state),
            xs=jnp.concatenate([est_state.xs[1:], x[None].astype(est_state.xs.dtype)]),
            resets=jnp.concatenate(
                [
                    est_state.resets[1:],
                    jnp.broadcast_to(jnp.asarray(reset, bool), est_state.resets.shape[1:])[None],
                ]
            ),  # fmt: skip
            filled=jnp.minimum(est_state.filled + 1, truncation),
        )

    def features_of(params, window: WindowState, x):
        final = _run_window(cell, params, window)
        return cell.readout(params["readout"], final, x), final

    def step(params, est_state: WindowState, x, reset=False):
        window = advance(params, est_state, x, reset)
        features, final = features_of(params, window, x)
        return features, window._replace(cell_state=final)

    def gradient(params, est_state: WindowState, x, features_cotangent) -> Params:
        _, features_vjp = jax.vjp(lambda p: features_of(p, est_state, x)[0], params)
        (grads,) = features_vjp(features_cotangent)
        return grads

    return Estimator(
        name=f"tbptt[{truncation}]", cell=cell, init=init, step=step, gradient=gradient,
        streams_last=cell.streams_last_fast,
    )  # fmt: skip


def block_value_and_grad(
    cell: Cell,
    step_loss: StepLoss,
    params: Params,
    head: Any,
    state: Any,
    xs: jax.Array,
    resets: jax.Array,
    targets: Any,
) -> tuple[jax.Array, tuple[Params, Any], Any]:
    """T-BPTT "every T steps": summed loss over the block, its gradient with respect to
    ``(params, head)`` through the block from the stop-gradient ``state``, and the state at the
    block's end (to start the next block)."""

    def block_loss(params, head):
        features, final = unroll(cell, params, xs, resets, jax.lax.stop_gradient(state))
        losses = jax.vmap(step_loss, in_axes=(None, 0, 0))(head, features, targets)
        return jnp.sum(losses), final

    (loss, final), grads = jax.value_and_grad(block_loss, argnums=(0, 1), has_aux=True)(
        params, head
    )
    return loss, grads, final
