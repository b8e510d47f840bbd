"""Any gymnax environment (Lange 2022) as a ``ControlEnv``: ``gymnax:NAME`` in presets and on the
command line, NAME one of ``gymnax.registered_envs`` (bsuite's MemoryChain-bsuite, the MinAtar
games, classic control, ...). Needs the ``gymnax`` extra.

gymnax steps with ``step_env`` (no reset) and reports a natural end (``terminated``) apart from
its time limit (``is_truncated``: ``time >= max_steps_in_episode``); the adapter passes both on
unchanged and leaves the auto-reset to ``rtrl.envs.control.auto_reset``, which splits the key
as gymnax's own ``step`` does, so ``auto_reset(gymnax_env(NAME)).step`` returns what gymnax's
``step`` returns for the same key. Observations are flattened to vectors (MinAtar's 10 x 10 x C
grids included) in float32.

MemoryChain keeps gymnax's quirk (``../spec`` notes it too): the observation a step returns is
computed from the state *before* the step, so the cue shows in the first observation and again
in the one after the first action, and the decision is taken on the observation of time m - 1.
"""

from __future__ import annotations

import importlib.util
import math

import jax.numpy as jnp

from rtrl.envs.base import ControlEnv
from rtrl.spaces import Box, Discrete

GYMNAX_PREFIX = "gymnax:"
DEFAULT_MEMORY_LENGTH = 5  # MemoryChain-bsuite's own default


def _gymnax():
    if importlib.util.find_spec("gymnax") is None:
        raise ValueError("gymnax environments need gymnax: pip install -e '.[gymnax]'")
    import gymnax

    return gymnax


def _action_space(space) -> Discrete | Box:
    if hasattr(space, "n"):
        return Discrete(int(space.n))
    low, high = float(jnp.min(jnp.asarray(space.low))), float(jnp.max(jnp.asarray(space.high)))
    return Box(math.prod(space.shape), low, high)


def gymnax_env(name: str, memory_length: int | None = None) -> ControlEnv:
    """gymnax's ``name`` (without the prefix) with its default parameters; ``memory_length``
    sets MemoryChain's (m: the cue is asked for m steps later, an episode is m + 1 actions; the
    time limit is raised above it when m >= 1000)."""
    gymnax = _gymnax()
    if name not in gymnax.registered_envs:
        raise ValueError(
            f"unknown gymnax environment {name!r}: use gymnax:NAME with NAME one of "
            f"gymnax.registered_envs ({', '.join(gymnax.registered_envs)})"
        )
    env, params = gymnax.make(name)
    if memory_length is not None:
        if not hasattr(params, "memory_length"):
            raise ValueError(f"memory_length applies to MemoryChain-bsuite, not to {name}")
        if memory_length < 1:
            raise ValueError(f"memory_length must be at least 1, got {memory_length}")
        limit = max(params.max_steps_in_episode, memory_length + 1)
        params = params.replace(memory_length=memory_length, max_steps_in_episode=limit)
    size = math.prod(env.observation_space(params).shape)

    def flat(obs):
        return jnp.reshape(obs, (size,)).astype(jnp.float32)

    def reset(key):
        obs, state = env.reset_env(key, params)
        return state, flat(obs)

    def step(key, state, action):
        obs, state, reward, terminated, info = env.step_env(key, state, action, params)
        truncated = env.is_truncated(state, params)
        reward = jnp.asarray(reward, jnp.float32)
        return state, flat(obs), reward, jnp.asarray(terminated, bool), truncated, {}

    label = name if memory_length is None else f"{name} (memory length {memory_length})"
    return ControlEnv(label, size, _action_space(env.action_space(params)), reset, step)
