"""Optimisers by name: optax transformations that every learner takes.

Each receives the descent direction (for TD(lambda), -delta e) and returns the update; the step
size is always called ``step_size``. The streaming learners' ObGD and AdaptiveObGD instead take
the prediction's gradient and the TD error (``obgd``).

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
    trace: optax.Updates  # z, the eligibility trace of the prediction's gradient
    second_moment: optax.Updates  # v (AdaptiveObGD only; empty for ObGD)
    count: jax.Array  # updates made (AdaptiveObGD's bias correction)


def _check_obgd(step_size: float, kappa: float) -> None:
    if not step_size > 0:
        raise ValueError(f"ObGD's step_size must be positive, got {step_size} (the papers: 1.0)")
    if not kappa > 0:
        raise ValueError(f"ObGD's kappa must be positive, got {kappa} (the papers: 2 for values, "
                         "3 for policies)")  # fmt: skip


def _l1(tree) -> jax.Array:
    return sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree))


def obgd(step_size: float = 1.0, kappa: float = 2.0, gamma: float = 0.99,
         trace_lambda: float = 0.8, adaptive: bool = False, beta2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:  # fmt: skip
    """Overshooting-bounded gradient descent (Elsayed, Vasan and Mahmood 2024), the streaming
    learners' optimiser: it keeps the eligibility trace itself.

    ``update(g, state, params=None, *, td_error, reset=False)`` takes g, the gradient of the
    *prediction* (a value, an action value or a log-probability), and returns the change to add
    to the parameters (``optax.apply_updates``)::

        z <- gamma * trace_lambda * z + g
        M  = step_size * kappa * max(|td_error|, 1) * sum_i |z_i|
        w <- w + (step_size / max(1, M)) * td_error * z
        z <- 0 where ``reset`` (an episode ended), after the update

    so one update cannot move the prediction past its target. ``adaptive`` (AdaptiveObGD)
    divides by the square root of a bias-corrected second moment of td_error * z,
    v <- beta2 v + (1 - beta2) (td_error z)^2, in the update and in M (eps inside the root).
    """
    _check_obgd(step_size, kappa)
    decay = gamma * trace_lambda

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return ObgdState(zeros, zeros if adaptive else {}, jnp.zeros((), jnp.int32))

    def update(grads, state, params=None, *, td_error, reset=False, **extra_args):
        del params, extra_args
        trace = jax.tree.map(lambda z, g: decay * z + g, state.trace, grads)
        second, count = state.second_moment, state.count + 1
        scaled = trace
        if adaptive:
            second = jax.tree.map(lambda v, z: beta2 * v + (1 - beta2) * (td_error * z) ** 2,
                                  second, trace)  # fmt: skip
            correction = 1 - beta2 ** count.astype(jnp.result_type(float))
            scaled = jax.tree.map(lambda z, v: z / jnp.sqrt(v / correction + eps), trace, second)
        bound = step_size * kappa * jnp.maximum(jnp.abs(td_error), 1.0) * _l1(scaled)
        step = step_size / jnp.maximum(bound, 1.0)
        updates = jax.tree.map(lambda z: step * td_error * z, scaled)
        keep = 1.0 - jnp.asarray(reset, jnp.float32)
        trace = jax.tree.map(lambda z: z * keep.astype(z.dtype), trace)
        return updates, ObgdState(trace, second, count)

    return optax.GradientTransformationExtraArgs(init, update)


def adaptive_obgd(step_size: float = 1.0, kappa: float = 2.0, gamma: float = 0.99,
                  trace_lambda: float = 0.8, beta2: float = 0.999,
                  eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:  # fmt: skip
    """AdaptiveObGD: ``obgd`` with the second moment (its ``adaptive`` switch)."""
    return obgd(step_size, kappa, gamma, trace_lambda, adaptive=True, beta2=beta2, eps=eps)


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": optax.sgd,
    "adam": optax.adam,
    "rmsprop_on_update": rmsprop_on_update,
    "clipped_adam": clipped_adam,
    "clipped_rmsprop": clipped_rmsprop,
    "obgd": obgd,  # streaming learners: update(g, state, td_error=..., reset=...)
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
