"""The estimator interface and its bridge to ordinary autodiff.

An estimator is a NamedTuple of pure functions (optax style), built for one cell:

- ``init(params, key=None) -> est_state``: state of one stream (recurrent state plus the
  estimator's own bookkeeping, e.g. RTRL traces). Every estimator state has a ``cell_state``
  field. ``key`` seeds stochastic estimators (UORO) and is ignored by deterministic ones.
- ``step(params, est_state, x, reset) -> (features, est_state)``: one online step. It always
  updates the bookkeeping (traces are never left stale, whether or not anything is
  differentiated). ``reset`` (a per-stream boolean) means "x starts a new episode": the state and
  all traces are zeroed before x is read, with ``jnp.where``, so one compiled function serves
  every stream.
- ``gradient(params, est_state, x, features_cotangent) -> grads``: turn a cotangent on this
  step's features into parameter gradients (same structure as ``params``), given the state
  returned by ``step`` for input ``x``.

``step`` is differentiable: under ``jax.grad`` its backward pass is ``gradient``. So a per-step
loss written on the features (through any head) yields, from ``jax.grad``, the estimator's
gradient for the recurrent parameters, exact backprop for the readout parameters and for
everything downstream, and the *immediate* (one-step) gradient for the input ``x``, so layers
upstream of the cell get a one-step-truncated gradient. The cotangent of the returned
``est_state`` is ignored: differentiate through the features only.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from rtrl.cells.base import Cell, Params, recurrent_params
from rtrl.cells.base import step as cell_step

# An estimator's state: its own NamedTuple, always with a ``cell_state`` field.
EstimatorState = Any
StepFn = Callable[[Params, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
GradientFn = Callable[[Params, Any, jax.Array, jax.Array], Params]


class Estimator(NamedTuple):
    name: str
    cell: Cell
    init: Callable[..., Any]  # (params, key=None) -> est_state
    step: StepFn
    gradient: GradientFn
    # Estimators of networks that learn in stages (rtrl.networks.staged) tell learners what may
    # change now; None means everything, always.
    # trainable(params, est_state) -> 0/1 masks (broadcastable, structure of params): which
    # recurrent parameters the learner may update.
    trainable: Callable[[Params, Any], Params] | None = None
    # active_features(est_state) -> (num_features,) bool: the features a head reads now.
    active_features: Callable[[Any], jax.Array] | None = None
    # Whether compiled loops should run many streams at once with the stream axes last in every
    # array (cells/base.py; ``step`` supports it) rather than with jax.vmap.
    streams_last: bool = False
    # run_segment(params, est_state, xs (M, d), resets (M,)) -> features (M, f): ``step`` over a
    # segment, for learners that differentiate a whole segment's loss at once: the same
    # features and the same gradient as the steps' (None: step through it).
    run_segment: Callable[[Params, Any, jax.Array, jax.Array], jax.Array] | None = None
    # For actors that need the state at every step but the traces only at a segment's end
    # (IMPALA's): ``columnar.SegmentTraces`` (None: step the traces).
    segment_traces: Any = None


def where_reset(reset: jax.Array, if_reset: Any, otherwise: Any) -> Any:
    """Per-stream select over whole pytrees (the reset flag is data, never control flow)."""
    return jax.tree.map(lambda a, b: jnp.where(reset, a, b), if_reset, otherwise)


def zero_where_reset(reset: jax.Array, tree: Any) -> Any:
    return jax.tree.map(lambda a: jnp.where(reset, jnp.zeros_like(a), a), tree)


def reset_then_step(
    cell: Cell, params: Params, state: Any, x: jax.Array, reset: jax.Array
) -> tuple[Any, jax.Array]:
    """One forward step from ``state``, restarted from the initial state if ``reset``."""
    return cell_step(cell, params, where_reset(reset, cell.initial_state(params), state), x)


def readout_cotangents(
    cell: Cell, params: Params, cell_state: Any, x: jax.Array, features_cotangent: jax.Array
) -> tuple[Any, Any]:
    """Backprop a features cotangent through the readout.

    Returns (gradient for the readout parameters, cotangent of the state)."""
    _, readout_vjp = jax.vjp(lambda r, s: cell.readout(r, s, x), params["readout"], cell_state)
    return readout_vjp(features_cotangent)


class FlatTransition(NamedTuple):
    """One step of a cell as a map between flat vectors, for estimators that work on the whole
    state and parameter vectors (full RTRL, UORO)."""

    state: jax.Array  # the (reset) previous state, raveled
    params: jax.Array  # the recurrent parameters, raveled
    apply: Callable[[jax.Array, jax.Array], jax.Array]  # (state, params) -> next state, raveled
    unravel_state: Callable[[jax.Array], Any]


def flat_transition(cell: Cell, params: Params, state: Any, x: jax.Array) -> FlatTransition:
    state_vec, unravel_state = ravel_pytree(state)
    rec_vec, unravel_rec = ravel_pytree(recurrent_params(params))

    def apply(state_vec, rec_vec):
        full_params = {**params, **unravel_rec(rec_vec)}
        return ravel_pytree(cell.transition(full_params, unravel_state(state_vec), x))[0]

    return FlatTransition(state_vec, rec_vec, apply, unravel_state)


def flat_gradient(
    cell: Cell,
    params: Params,
    cell_state: Any,
    x: jax.Array,
    features_cotangent: jax.Array,
    influence: Callable[[jax.Array], jax.Array],
) -> Params:
    """Parameter gradients from a flat influence estimate: ``influence(delta)`` maps the raveled
    state cotangent delta to the raveled recurrent-parameter gradient (delta @ M for RTRL)."""
    readout_grad, state_cotangent = readout_cotangents(
        cell, params, cell_state, x, features_cotangent
    )
    delta, _ = ravel_pytree(state_cotangent)
    _, unravel_rec = ravel_pytree(recurrent_params(params))
    return {**unravel_rec(influence(delta)), "readout": readout_grad}


def differentiable_step(
    cell: Cell,
    forward: StepFn,
    gradient: GradientFn,
    immediate: Callable[[Params, Any, jax.Array, jax.Array], jax.Array] | None = None,
) -> StepFn:
    """Wrap an estimator's forward step so that ``jax.grad`` returns the estimator's gradient.

    ``immediate(params, est_state, x, reset) -> features`` is the one-step map whose derivative
    is the input's gradient (default: one step of the cell from the previous cell state).
    """
    if immediate is None:

        def immediate(params, est_state, x, reset):
            return reset_then_step(cell, params, est_state.cell_state, x, reset)[1]

    @jax.custom_vjp
    def step(params, est_state, x, reset):
        return forward(params, est_state, x, reset)

    def step_fwd(params, est_state, x, reset):
        features, new_est_state = forward(params, est_state, x, reset)
        residuals = (params, est_state, new_est_state, x, reset)
        return (features, new_est_state), residuals

    def step_bwd(residuals, cotangents):
        params, prev_est_state, new_est_state, x, reset = residuals
        features_cotangent, _ = cotangents  # the est_state output is not differentiated
        grads = gradient(params, new_est_state, x, features_cotangent)
        # Immediate gradient for the input: one step from the (possibly reset) previous state.
        _, input_vjp = jax.vjp(lambda x_: immediate(params, prev_est_state, x_, reset), x)
        (x_cotangent,) = input_vjp(features_cotangent)
        return grads, None, x_cotangent, None

    step.defvjp(step_fwd, step_bwd)

    def checked_step(params, est_state, x, reset=False):
        return step(params, est_state, x, jnp.asarray(reset, dtype=bool))

    return checked_step


StepLoss = Callable[[Any, jax.Array, Any], jax.Array]


def online_value_and_grad(
    estimator: Estimator,
    step_loss: StepLoss,
    params: Params,
    head: Any,
    xs: jax.Array,
    resets: jax.Array,
    targets: Any,
    est_state: Any = None,
) -> tuple[jax.Array, tuple[Params, Any]]:
    """Run ``estimator`` over a sequence with parameters held fixed and sum its per-step gradients.

    ``step_loss(head, features_t, target_t)`` is the loss at one step. Returns the summed loss and
    the summed per-step gradients for ``(params, head)``. For an exact estimator this equals
    ``bptt.value_and_grad`` of the same arguments (the verification contract).
    """
    if est_state is None:
        est_state = estimator.init(params)

    def per_step(carry, inputs):
        est_state, loss_sum, grad_sum = carry
        x, reset, target = inputs

        def loss_fn(params, head, est_state):
            features, new_est_state = estimator.step(params, est_state, x, reset)
            return step_loss(head, features, target), new_est_state

        (loss, est_state), grads = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            params, head, est_state
        )
        grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
        return (est_state, loss_sum + loss, grad_sum), None

    zeros = jax.tree.map(jnp.zeros_like, (params, head))
    loss0 = jnp.zeros((), dtype=jnp.result_type(*jax.tree.leaves(params)))
    (_, loss, grads), _ = jax.lax.scan(per_step, (est_state, loss0, zeros), (xs, resets, targets))
    return loss, grads


class StatelessState(NamedTuple):
    cell_state: Any  # the cell's (empty) state


def stateless(cell: Cell) -> Estimator:
    """The estimator of a cell without state (``rtrl.cells.feedforward``): nothing is carried
    between steps, so backpropagation through the step is the exact gradient."""

    def init(params: Params, key: jax.Array | None = None) -> StatelessState:
        return StatelessState(cell.initial_state(params))

    def step(params, est_state, x, reset=False):
        return cell_step(cell, params, est_state.cell_state, x)[1], est_state

    def gradient(params, est_state, x, features_cotangent):
        _, pullback = jax.vjp(lambda p: step(p, est_state, x)[0], params)
        return pullback(features_cotangent)[0]

    return Estimator("stateless", cell, init, step, gradient)
