"""Sequence classification with an online gradient estimator, one update per batch of sequences.

Each sequence of a batch is a stream; a linear head reads the cell's features and gives class
logits at every step. The learner runs the estimator through the sequences step by step, adding
each step's gradient of the cross-entropy (averaged over the batch's scored steps) to an
accumulator, with the parameters held fixed, and updates once at the end. With exact RTRL
(``columnar_rtrl`` on an element-wise cell) the accumulated gradient is the gradient of the
whole sequences' loss, the same as backpropagation through them; with ``truncated_bptt`` it is
truncated to the window. The head and the cell's readout get exact gradients either way.

``bptt_sequence_classifier(cell, ...)`` is the offline baseline: backpropagation through the
whole sequences, for any cell (a dense LSTM, say), at the cost of storing every step, or with
``truncation`` through segments of T steps (batch T-BPTT).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rtrl.cells.base import Cell
from rtrl.cells.base import step as cell_step
from rtrl.gradients.base import Estimator

Metrics = dict[str, jax.Array]


class SequenceState(NamedTuple):
    params: optax.Params  # {"cell": cell params, "head": {"w" (classes, features), "b"}}
    opt_state: optax.OptState


class SequenceClassifier(NamedTuple):
    init: Callable[[jax.Array, int], SequenceState]
    # (state, inputs (T, B, d), targets (T, B), scored (T, B)) -> (state, metrics)
    train: Callable[..., tuple[SequenceState, Metrics]]
    # (params, inputs, targets, scored) -> (gradient, logits (T, B, classes))
    gradient: Callable[..., tuple[optax.Params, jax.Array]]
    # (params, inputs, targets, scored) -> metrics of a forward pass (no gradient)
    evaluate: Callable[..., Metrics]
    # (params, inputs) -> logits (T, B, classes) of a forward pass
    predict: Callable[..., jax.Array]


def sequences_right(logits: jax.Array, targets: jax.Array, scored: jax.Array) -> jax.Array:
    """(B,) whether every scored step of each sequence is classified right."""
    return jnp.all((jnp.argmax(logits, axis=-1) == targets) | ~scored, axis=0)


def classification_metrics(logits: jax.Array, targets: jax.Array, scored: jax.Array) -> Metrics:
    """Cross-entropy over scored steps, per-step accuracy (per bit, for the copy task) and the
    fraction of sequences with every scored step right."""
    count = jnp.maximum(scored.sum(), 1)
    log_probs = jax.nn.log_softmax(logits)
    cross_entropy = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    right = jnp.argmax(logits, axis=-1) == targets
    return {
        "loss": jnp.sum(jnp.where(scored, cross_entropy, 0.0)) / count,
        "accuracy": jnp.sum(right & scored) / count,
        "sequence_accuracy": jnp.mean(sequences_right(logits, targets, scored)),
    }


def _logits(head, features):
    return features @ head["w"].T + head["b"]


def _forward_logits(cell: Cell, params, inputs: jax.Array, truncation: int | None = None
                    ) -> jax.Array:  # fmt: skip
    """Logits (T, B, classes) of a batch of sequences (T, B, d) from the initial state;
    ``truncation``: no gradient flows through the state carried into steps T, 2T, ..."""
    batch = inputs.shape[1]
    first = jax.vmap(lambda _: cell.initial_state(params["cell"]))(jnp.arange(batch))

    def per_step(carry, x):
        state, t = carry
        if truncation is not None:
            cut = t % truncation == 0
            state = jax.tree.map(lambda s: jnp.where(cut, jax.lax.stop_gradient(s), s), state)
        state, features = jax.vmap(lambda s, x_: cell_step(cell, params["cell"], s, x_))(state, x)
        return (state, t + 1), _logits(params["head"], features)

    return jax.lax.scan(per_step, (first, jnp.asarray(0)), inputs)[1]


def _classifier(cell: Cell, num_classes: int, optimizer: optax.GradientTransformation,
                gradient) -> SequenceClassifier:  # fmt: skip
    """The learner around ``gradient(params, inputs, targets, scored) -> (grads, logits)``."""

    def init(key: jax.Array, num_inputs: int) -> SequenceState:
        cell_params = cell.init(key, num_inputs)
        dtype = jax.tree.leaves(cell_params)[0].dtype
        head = {"w": jnp.zeros((num_classes, cell.num_features), dtype),
                "b": jnp.zeros((num_classes,), dtype)}  # fmt: skip
        params = {"cell": cell_params, "head": head}
        return SequenceState(params, optimizer.init(params))

    def train(state: SequenceState, inputs, targets, scored):
        grads, logits = gradient(state.params, inputs, targets, scored)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return SequenceState(params, opt_state), classification_metrics(logits, targets, scored)

    def predict(params, inputs):
        return _forward_logits(cell, params, inputs)

    def evaluate(params, inputs, targets, scored):
        return classification_metrics(predict(params, inputs), targets, scored)

    return SequenceClassifier(init, train, gradient, evaluate, predict)


def bptt_sequence_classifier(
    cell: Cell,
    num_classes: int,
    optimizer: optax.GradientTransformation,
    truncation: int | None = None,
) -> SequenceClassifier:
    """Backpropagation through the whole sequences of each batch; with ``truncation`` T,
    through segments of T steps (the carried state detached every T steps, as batch T-BPTT
    does: a step's loss reaches back 1 to T steps), at whole-sequence BPTT's cost."""
    if truncation is not None and truncation < 1:
        raise ValueError(f"truncation {truncation} must be at least 1")

    def gradient(params, inputs, targets, scored):
        def loss(p):
            logits = _forward_logits(cell, p, inputs, truncation)
            return classification_metrics(logits, targets, scored)["loss"], logits

        return jax.grad(loss, has_aux=True)(params)

    return _classifier(cell, num_classes, optimizer, gradient)


def sequence_classifier(
    estimator: Estimator, num_classes: int, optimizer: optax.GradientTransformation
) -> SequenceClassifier:
    """The estimator's gradient, accumulated step by step through each batch."""
    cell = estimator.cell

    def gradient(params, inputs, targets, scored):
        batch = inputs.shape[1]
        first = jax.vmap(lambda _: estimator.init(params["cell"]))(jnp.arange(batch))
        count = jnp.maximum(scored.sum(), 1)
        step = jax.vmap(estimator.step, in_axes=(None, 0, 0))

        def per_step(carry, inputs_t):
            est, total = carry
            x, y, m = inputs_t

            def loss(p):
                # The readout's gradient through a batched readout outside the estimator: under
                # vmap the estimator's own would make one full-size gradient of the shared
                # readout per sequence before summing them. Its value is the same features, and
                # the recurrent parameters still get the path through the readout.
                readout = p["cell"]["readout"]
                frozen = {**p["cell"], "readout": jax.lax.stop_gradient(readout)}
                inside, est_next = step(frozen, est, x)
                state = jax.lax.stop_gradient(est_next.cell_state)
                outside = jax.vmap(lambda s, x_: cell.readout(readout, s, x_))(state, x)
                features = inside + outside - jax.lax.stop_gradient(outside)
                logits = _logits(p["head"], features)
                log_probs = jax.nn.log_softmax(logits)
                cross_entropy = -jnp.take_along_axis(log_probs, y[:, None], axis=1)[:, 0]
                return jnp.sum(jnp.where(m, cross_entropy, 0.0)) / count, (est_next, logits)

            grads, (est, logits) = jax.grad(loss, has_aux=True)(params)
            return (est, jax.tree.map(jnp.add, total, grads)), logits

        zero = jax.tree.map(jnp.zeros_like, params)
        (_, grads), logits = jax.lax.scan(per_step, (first, zero), (inputs, targets, scored))
        return grads, logits

    return _classifier(cell, num_classes, optimizer, gradient)
