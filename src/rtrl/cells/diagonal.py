"""Shared pieces of the complex-diagonal cells (RTU, online LRU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Keeps log(-log r) and log(theta) finite when a uniform draw lands on an end of its range.
_EPS = 1e-6


def ring_init(
    key: jax.Array, units: int, r_min: float, r_max: float, max_phase: float
) -> tuple[jax.Array, jax.Array]:
    """Eigenvalues spread uniformly over the ring r_min <= |lambda| <= r_max.

    r = sqrt(u), u ~ U[r_min^2, r_max^2]; theta = max_phase * u', u' ~ U[0, 1].
    Returns the exp-exp parameters (nu_log, theta_log) with r = exp(-exp(nu_log)),
    theta = exp(theta_log).
    """
    if not 0.0 <= r_min <= r_max <= 1.0:
        raise ValueError(f"need 0 <= r_min <= r_max <= 1, got r_min={r_min}, r_max={r_max}")
    if max_phase <= 0.0:
        raise ValueError(f"max_phase must be positive, got {max_phase}")
    k_r, k_theta = jax.random.split(key)
    u = jax.random.uniform(k_r, (units,), minval=r_min**2, maxval=r_max**2)
    r = jnp.sqrt(jnp.clip(u, _EPS, 1.0 - _EPS))
    theta = max_phase * jnp.clip(jax.random.uniform(k_theta, (units,)), _EPS, 1.0)
    return jnp.log(-jnp.log(r)), jnp.log(theta)


def modulus_and_phase(nu_log: jax.Array, theta_log: jax.Array) -> tuple[jax.Array, jax.Array]:
    """r = exp(-exp(nu_log)) in (0, 1) and theta = exp(theta_log) > 0."""
    return jnp.exp(-jnp.exp(nu_log)), jnp.exp(theta_log)
