"""Optimisers by name: optax transformations that every learner takes.

Each receives the descent direction (for TD(lambda), -delta e) and returns the update; the step
size is always called ``step_size``.

``make_optimizer`` holds the step size in the optimiser's state rather than in the compiled
program (``optax.inject_hyperparams``), so one compiled step serves every step size: a sweep
runs its step sizes side by side as one batch, each row with its own value
(``with_step_size``), and gets the numbers that separate runs get.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

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


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": optax.sgd,
    "adam": optax.adam,
    "rmsprop_on_update": rmsprop_on_update,
    "clipped_adam": clipped_adam,
    "clipped_rmsprop": clipped_rmsprop,
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
