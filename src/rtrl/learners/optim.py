"""Optimisers by name: optax transformations that every learner takes.

Each receives the descent direction (for TD(lambda), -delta e) and returns the update; the step
size is always called ``step_size``. ObGD and AdaptiveObGD, the streaming learners' optimisers,
also take the TD error (``update(direction, state, td_error=...)``; the learners pass it to
every optimiser, and the others ignore it).

``make_optimizer`` holds the step size in the optimiser's state rather than in the compiled
program (``optax.inject_hyperparams``), so one compiled step serves every step size: a sweep
runs its step sizes side by side as one batch, each row with its own value
(``with_step_size``), and gets the numbers that separate runs get.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


def rmsprop_on_update(
    step_size: float, decay: float = 0.9999, initial_scale: float = 1.0, eps: float = 1e-8
) -> optax.GradientTransformation:
    """The CCN reference's "RMSProp on the update": n <- decay n + (1 - decay) g^2 (n_0 = 1),
    step g / (sqrt(n) + eps), for the direction g the learner passes."""
    return optax.chain(
        optax.scale_by_rms(decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=False),
        optax.scale(-step_size),
    )


def clipped_adam(
    step_size: float, max_grad_norm: float = 0.5, eps: float = 1e-5
) -> optax.GradientTransformation:
    """Adam after clipping the global gradient norm (PPO's optimiser)."""
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(step_size, eps=eps))


def clipped_rmsprop(
    step_size: float, max_grad_norm: float = 40.0, eps: float = 0.01, decay: float = 0.99
) -> optax.GradientTransformation:
    """RMSProp after clipping the global gradient norm (IMPALA's, as in TorchBeast: PyTorch's
    RMSprop, eps outside the square root, no momentum)."""
    return optax.chain(
        optax.clip_by_global_norm(max_grad_norm),
        optax.rmsprop(step_size, decay=decay, eps=eps, eps_in_sqrt=False),
    )


class ObgdState(NamedTuple):
    second_moment: optax.Updates  # v (AdaptiveObGD only; empty for ObGD)
    count: jax.Array  # updates made (AdaptiveObGD's bias correction)


def _check_obgd(step_size: float, kappa: float) -> None:
    # make_optimizer's step size arrives as a traced value (it is state): checked where concrete.
    if not isinstance(step_size, jax.core.Tracer) and not step_size > 0:
        raise ValueError(f"ObGD's step_size must be positive, got {step_size} (the papers: 1.0)")
    if not kappa > 0:
        raise ValueError(f"ObGD's kappa must be positive, got {kappa} (the papers: 2 for values, "
                         "3 for policies)")  # fmt: skip


def obgd(
    step_size: float = 1.0,
    kappa: float = 2.0,
    adaptive: bool = False,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """Overshooting-bounded gradient descent (Elsayed, Vasan and Mahmood 2024), the streaming
    learners' optimiser, for a learner that keeps its eligibility trace z (as every learner here
    does) and passes the direction d = -td_error * z with the TD error::

        M = step_size * kappa * max(|td_error|, 1) * sum_i |z_i|
        update = -(step_size / max(1, M)) * d          (= step / max(1, M) * td_error * z)

    so that one update cannot move the prediction past its target. ``adaptive``
    (AdaptiveObGD) first divides d by the root of a bias-corrected second moment,
    v <- beta2 v + (1 - beta2) d^2 (eps inside the root), in the update and in M.

    ``update(d, state, params=None, *, td_error)``. The norm runs over every parameter the
    update sees: one stream's (the learners run ObGD on streams vmapped, not stacked). The trace
    restarts where the learner's discount is 0, so an episode's end needs nothing here.
    """
    _check_obgd(step_size, kappa)

    def init(params):
        moments = jax.tree.map(jnp.zeros_like, params) if adaptive else {}
        return ObgdState(moments, jnp.zeros((), jnp.int32))

    def update(direction, state, params=None, *, td_error, **extra_args):
        del params, extra_args
        second, count = state.second_moment, state.count + 1
        scaled = direction
        if adaptive:
            second = jax.tree.map(lambda v, d: beta2 * v + (1 - beta2) * d**2, second, direction)
            correction = 1 - beta2 ** count.astype(jnp.result_type(float))
            scaled = jax.tree.map(lambda d, v: d / jnp.sqrt(v / correction + eps), direction,
                                  second)  # fmt: skip
        magnitude = jnp.abs(td_error)
        # sum |z| = sum |d| / |td_error|; with no error d is 0 and so is the norm.
        tiny = jnp.finfo(jnp.result_type(magnitude)).tiny
        trace_norm = optax.tree_utils.tree_norm(scaled, ord=1) / jnp.maximum(magnitude, tiny)
        bound = step_size * kappa * jnp.maximum(magnitude, 1.0) * trace_norm
        step = step_size / jnp.maximum(bound, 1.0)
        return jax.tree.map(lambda d: -step * d, scaled), ObgdState(second, count)

    return optax.GradientTransformationExtraArgs(init, update)


def adaptive_obgd(step_size: float = 1.0, kappa: float = 2.0, beta2: float = 0.999,
                  eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:  # fmt: skip
    """AdaptiveObGD: ``obgd`` with the second moment (its ``adaptive`` switch)."""
    return obgd(step_size, kappa, adaptive=True, beta2=beta2, eps=eps)


# Optimisers whose step is bounded by a norm over one stream's parameters: their learners run
# the streams vmapped.
PER_STREAM_OPTIMIZERS = ("obgd", "adaptive_obgd")


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": optax.sgd,
    "adam": optax.adam,
    "rmsprop_on_update": rmsprop_on_update,
    "clipped_adam": clipped_adam,
    "clipped_rmsprop": clipped_rmsprop,
    "obgd": obgd,  # bounded by the trace's norm: update(direction, state, td_error=...)
    "adaptive_obgd": adaptive_obgd,
}


def make_optimizer(name: str, step_size: float, **options) -> optax.GradientTransformation:
    """An optimiser by name, e.g. ``make_optimizer("adam", 3e-4)``, its step size held in its
    state (the module docstring); the other options are constants of the program."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    factory = OPTIMIZERS[name]
    step_name, *others = inspect.signature(factory).parameters  # optax calls it learning_rate
    injected = optax.inject_hyperparams(factory, static_args=tuple(others))
    return injected(**{step_name: step_size}, **options)


def _is_injected(node: Any) -> bool:
    return isinstance(node, optax.InjectStatefulHyperparamsState)


def with_step_size(opt_state: optax.OptState, step_size: jax.Array | float) -> optax.OptState:
    """``opt_state`` of a ``make_optimizer`` optimiser with its step size replaced (an array
    broadcastable to the state's batch of rows, e.g. one value per seed)."""
    found = []

    def replace(node):
        if not _is_injected(node):
            return node
        (step_name,) = node.hyperparams  # the only injected hyperparameter
        old = node.hyperparams[step_name]
        found.append(step_name)
        new = jnp.broadcast_to(jnp.asarray(step_size, old.dtype), old.shape)
        return node._replace(hyperparams={step_name: new})

    opt_state = jax.tree.map(replace, opt_state, is_leaf=_is_injected)
    if not found:
        raise ValueError("this optimiser state holds no step size; build it with make_optimizer")
    return opt_state
