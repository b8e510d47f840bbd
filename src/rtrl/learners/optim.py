"""Optimisers by name: optax transformations that every learner takes.

Each receives the descent direction (for TD(lambda), -delta e) and returns the update; the step
size is always called ``step_size``.
"""

from __future__ import annotations

from typing import Callable

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
    """An optimiser by name, e.g. ``make_optimizer("adam", 3e-4)``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](step_size, **options)
