"""Online normalisation by running statistics (the reference's input and feature normaliser).

Per component j, with rate rho::

    mu_j <- rho mu_j + (1 - rho) x_j
    v_j  <- max(rho v_j + (1 - rho) (x_j - mu_j)^2, floor)
    x_hat_j = (x_j - mu_j) / sqrt(v_j)

rho = 1 turns it off (x_hat = x). The statistics are constants for the gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class NormalizerState(NamedTuple):
    mean: jax.Array
    variance: jax.Array


def normalizer_init(size: int, dtype=None) -> NormalizerState:
    return NormalizerState(jnp.zeros((size,), dtype), jnp.ones((size,), dtype))


def normalizer_update(
    state: NormalizerState, x: jax.Array, rate: float, floor: float = 1e-4
) -> NormalizerState:
    x = jax.lax.stop_gradient(x)
    mean = rate * state.mean + (1.0 - rate) * x
    variance = jnp.maximum(rate * state.variance + (1.0 - rate) * (x - mean) ** 2, floor)
    return NormalizerState(mean, variance)


def normalize(state: NormalizerState, x: jax.Array, rate: float) -> jax.Array:
    if rate >= 1.0:  # static: the normaliser is off
        return x
    mean, variance = jax.lax.stop_gradient((state.mean, state.variance))
    return (x - mean) / jnp.sqrt(variance)
