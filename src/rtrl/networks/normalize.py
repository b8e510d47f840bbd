"""Online normalisation by running statistics (the reference's input and feature normaliser).

Per component j, with rate rho::

    mu_j <- rho mu_j + (1 - rho) x_j
    v_j  <- max(rho v_j + (1 - rho) (x_j - mu_j)^2, floor)
    x_hat_j = (x_j - mu_j) / sqrt(v_j)

rho = 1 turns it off (x_hat = x). The statistics are constants for the gradient. Configurations give
the rate as an effective window in steps, rho = 1 - 1/window (``rate_of_window``), so that it can be
chosen against the stream's length: the CCN reference's 0.999998 is a 500k-step window for 30M-step
streams. The mean starts at 0 and the variance at 1, as in the reference, and after W steps of a
window W the initial values still weigh exp(-1) = 37%.
(Control environments normalise observations with a different rule, count-weighted running
moments as Gymnasium's wrappers do: ``rtrl.envs.control.RunningMoments``.)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# The CCN reference's variance floor (its ``std_cap``, applied to the variance).
DEFAULT_VARIANCE_FLOOR = 1e-3


def rate_of_window(window: int) -> float:
    """The rate of a normaliser that forgets over ``window`` steps (0: off, rate 1)."""
    if window < 0:
        raise ValueError(f"a normalisation window is 0 (off) or a number of steps, got {window}")
    return 1.0 if window == 0 else 1.0 - 1.0 / window


class ExponentialMoments(NamedTuple):
    mean: jax.Array
    variance: jax.Array


def normalizer_init(size: int, dtype=None) -> ExponentialMoments:
    return ExponentialMoments(jnp.zeros((size,), dtype), jnp.ones((size,), dtype))


def normalizer_update(
    state: ExponentialMoments, x: jax.Array, rate: float, floor: float = DEFAULT_VARIANCE_FLOOR
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
