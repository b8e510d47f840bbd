"""A noisy delayed-signal stream: predict what was seen ``delay`` steps ago.

Observation x_t = [s_t, 1] with s_t ~ N(0, 1) i.i.d.; target y_t = s_{t-delay} + noise * eps_t.
The best possible mean squared error is noise^2; a predictor without memory cannot beat
1 + noise^2 (for t >= delay). Explicit keys, no hidden state: ``reset(key, params)`` and
``step(key, state, params) -> (state, observation, target)`` in the gymnax style.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class DelayedSignalParams(NamedTuple):
    delay: int = 4
    noise: float = 0.1


class DelayedSignalState(NamedTuple):
    history: jax.Array  # the last `delay` signal values, oldest first


NUM_OBSERVATIONS = 2


def reset(key: jax.Array, params: DelayedSignalParams) -> DelayedSignalState:
    if params.delay < 1:
        raise ValueError(f"delay must be at least 1, got {params.delay}")
    del key
    return DelayedSignalState(jnp.zeros((params.delay,)))


def step(
    key: jax.Array, state: DelayedSignalState, params: DelayedSignalParams
) -> tuple[DelayedSignalState, jax.Array, jax.Array]:
    k_signal, k_noise = jax.random.split(key)
    signal = jax.random.normal(k_signal, ())
    target = state.history[0] + params.noise * jax.random.normal(k_noise, ())
    history = jnp.concatenate([state.history[1:], signal[None]])
    observation = jnp.stack([signal, jnp.ones_like(signal)])
    return DelayedSignalState(history), observation, target
