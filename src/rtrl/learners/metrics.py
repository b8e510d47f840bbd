"""Prediction metrics computed in hindsight over a recorded stream."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def discounted_returns(cumulants: jax.Array, discounts: jax.Array) -> jax.Array:
    """G_t = c_{t+1} + gamma_{t+1} G_{t+1}, backwards over the stream (time first).

    ``cumulants[t]`` and ``discounts[t]`` belong to the transition into step t, as the learners
    receive them. The last step's return is 0 (the stream is cut there): returns within about
    10 / (1 - gamma) steps of the end are unreliable; exclude that tail (``unreliable_tail``)
    when scoring.
    """
    next_cumulants = jnp.concatenate([cumulants[1:], jnp.zeros_like(cumulants[:1])])
    next_discounts = jnp.concatenate([discounts[1:], jnp.zeros_like(discounts[:1])])

    def backwards(g_next, inputs):
        c, gamma = inputs
        g = c + gamma * g_next
        return g, g

    _, returns = jax.lax.scan(
        backwards, jnp.zeros_like(cumulants[0]), (next_cumulants, next_discounts), reverse=True
    )
    return returns


def unreliable_tail(gamma: float) -> int:
    """Steps at the end of a cut stream whose returns are too short to score: 10 / (1 - gamma),
    where gamma^steps < 5e-5 (gamma < 1)."""
    return math.ceil(10 / (1 - gamma))


def binned_means(values: np.ndarray, bin_size: int) -> np.ndarray:
    """Means over consecutive bins of ``bin_size`` steps (a last partial bin is dropped)."""
    values = np.asarray(values)
    count = values.shape[0] // bin_size
    return values[: count * bin_size].reshape((count, bin_size) + values.shape[1:]).mean(axis=1)
