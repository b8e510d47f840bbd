"""Online normalisation by running statistics (the reference's input and feature normaliser).

Per component j, with rate rho::

    mu_j <- rho mu_j + (1 - rho) x_j
    v_j  <- max(rho v_j + (1 - rho) (x_j - mu_j)^2, floor)
    x_hat_j = (x_j - mu_j) / sqrt(v_j)

rho = 1 turns it off (x_hat = x). The statistics are constants for the gradient.
(Control environments normalise observations with a different rule, count-weighted running
moments as Gymnasium's wrappers do: ``rtrl.envs.control.RunningMoments``.)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ExponentialMoments(NamedTuple):
    mean: jax.Array
    variance: jax.Array


def normalizer_init(size: int, dtype=None) -> ExponentialMoments:
    return ExponentialMoments(jnp.zeros((size,), dtype), jnp.ones((size,), dtype))


def normalizer_update(
    state: ExponentialMoments, x: jax.Array, rate: float, floor: float = 1e-4
) -> ExponentialMoments:
    x = jax.lax.stop_gradient(x)
    mean = rate * state.mean + (1.0 - rate) * x
    variance = jnp.maximum(rate * state.variance + (1.0 - rate) * (x - mean) ** 2, floor)
    return ExponentialMoments(mean, variance)


def normalize(state: ExponentialMoments, x: jax.Array, rate: float) -> jax.Array:
    if rate >= 1.0:  # static: the normaliser is off
        return x
    mean, variance = jax.lax.stop_gradient((state.mean, state.variance))
    return (x - mean) / jnp.sqrt(variance)
