"""Control environments as pure functions (gymnax style), and the wrappers every agent uses.

A ``ControlEnv`` is a NamedTuple of functions over an explicit state:

- ``reset(key) -> (state, observation)``
- ``step(key, state, action) -> (state, observation, reward, done, info)``

``done`` ends the episode (termination or time limit alike). ``info`` is a dict of arrays; the
``record_episode_returns`` wrapper adds ``info["episode_return"]``, the undiscounted, unnormalised
return of the episode that ended on this step (valid where ``done``).

``auto_reset`` makes an environment continuing: on ``done`` the returned observation is already
the first observation of the next episode, so an agent reads ``done`` as "this observation
starts a new episode" (the reset flag of the estimators) and as a zero discount for the
transition into it. Wrap in this order (``wrap_for_agents`` does it)::

    env -> keep_observations (POMDP) -> auto_reset -> record_episode_returns
        -> normalize_observations -> scale_rewards

so the statistics of the normalisers survive episode ends and the recorded returns are raw.
Every wrapper keeps its statistics in the environment state: under ``jax.vmap`` each stream has
its own, and they are per feature (a vector the size of the observation), never one scalar
shared by all features.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rtrl.envs.base import ControlEnv


def keep_observations(env: ControlEnv, indices: Sequence[int], name: str) -> ControlEnv:
    """Observe only ``env``'s entries at ``indices`` (a partially observable variant)."""
    indices = np.asarray(indices, dtype=int)
    if indices.size == 0 or indices.min() < 0 or indices.max() >= env.observation_size:
        raise ValueError(
            f"kept indices {indices.tolist()} must be within 0..{env.observation_size - 1} "
            f"of {env.name}'s observation"
        )

    def reset(key):
        state, obs = env.reset(key)
        return state, obs[indices]

    def step(key, state, action):
        state, obs, reward, done, info = env.step(key, state, action)
        return state, obs[indices], reward, done, info

    return env._replace(name=name, observation_size=int(indices.size), reset=reset, step=step)


def auto_reset(env: ControlEnv) -> ControlEnv:
    """Start the next episode on the step that ends one (see the module docstring)."""

    def step(key, state, action):
        step_key, reset_key = jax.random.split(key)
        state, obs, reward, done, info = env.step(step_key, state, action)
        fresh_state, fresh_obs = env.reset(reset_key)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh_state, state)
        return state, jnp.where(done, fresh_obs, obs), reward, done, info

    return env._replace(step=step)


class EpisodeRecord(NamedTuple):
    inner: Any
    episode_return: jax.Array  # of the episode in progress


def record_episode_returns(env: ControlEnv) -> ControlEnv:
    """Add ``info["episode_return"]`` (put it inside the normalisers: it records raw rewards)."""

    def reset(key):
        state, obs = env.reset(key)
        return EpisodeRecord(state, jnp.zeros(())), obs

    def step(key, state, action):
        inner, obs, reward, done, info = env.step(key, state.inner, action)
        total = state.episode_return + reward
        info = {**info, "episode_return": total}
        return EpisodeRecord(inner, jnp.where(done, 0.0, total)), obs, reward, done, info

    return env._replace(reset=reset, step=step)


class Moments(NamedTuple):
    """Running mean and variance with a count (parallel-update form, as gym's normalisers)."""

    count: jax.Array
    mean: jax.Array
    variance: jax.Array


def moments_init(shape: tuple[int, ...]) -> Moments:
    return Moments(jnp.asarray(1e-4), jnp.zeros(shape), jnp.ones(shape))


def moments_update(m: Moments, x: jax.Array) -> Moments:
    """Add one sample ``x`` (of the statistics' shape)."""
    count = m.count + 1.0
    delta = x - m.mean
    mean = m.mean + delta / count
    variance = (m.variance * m.count + delta**2 * m.count / count) / count
    return Moments(count, mean, variance)


class NormalizedState(NamedTuple):
    inner: Any
    moments: Moments  # of the observations


class ScaledRewardState(NamedTuple):
    inner: Any
    moments: Moments  # of the discounted return
    discounted_return: jax.Array


def normalize_observations(env: ControlEnv, clip: float = 10.0, eps: float = 1e-8) -> ControlEnv:
    """Observations standardised per feature by their running moments, clipped to +-clip."""

    def normalized(moments, obs):
        return jnp.clip((obs - moments.mean) / jnp.sqrt(moments.variance + eps), -clip, clip)

    def reset(key):
        state, obs = env.reset(key)
        moments = moments_update(moments_init((env.observation_size,)), obs)
        return NormalizedState(state, moments), normalized(moments, obs)

    def step(key, state, action):
        inner, obs, reward, done, info = env.step(key, state.inner, action)
        moments = moments_update(state.moments, obs)
        return NormalizedState(inner, moments), normalized(moments, obs), reward, done, info

    return env._replace(reset=reset, step=step)


def scale_rewards(
    env: ControlEnv, gamma: float, clip: float = 10.0, eps: float = 1e-8
) -> ControlEnv:
    """Rewards divided by the running standard deviation of the discounted return."""

    def reset(key):
        state, obs = env.reset(key)
        return ScaledRewardState(state, moments_init(()), jnp.zeros(())), obs

    def step(key, state, action):
        inner, obs, reward, done, info = env.step(key, state.inner, action)
        discounted = state.discounted_return * gamma + reward
        moments = moments_update(state.moments, discounted)
        scaled = jnp.clip(reward / jnp.sqrt(moments.variance + eps), -clip, clip)
        discounted = jnp.where(done, 0.0, discounted)
        return ScaledRewardState(inner, moments, discounted), obs, scaled, done, info

    return env._replace(reset=reset, step=step)


def wrap_for_agents(
    env: ControlEnv,
    normalize_obs: bool = False,
    scale_reward: bool = False,
    gamma: float = 0.99,
) -> ControlEnv:
    """The standard stack (see the module docstring) around an episodic environment."""
    env = record_episode_returns(auto_reset(env))
    if normalize_obs:
        env = normalize_observations(env)
    if scale_reward:
        env = scale_rewards(env, gamma)
    return env


class TimeLimitState(NamedTuple):
    inner: Any
    t: jax.Array


def time_limit(env: ControlEnv, max_steps: int) -> ControlEnv:
    """End every episode after at most ``max_steps`` steps."""

    def reset(key):
        state, obs = env.reset(key)
        return TimeLimitState(state, jnp.zeros((), jnp.int32)), obs

    def step(key, state, action):
        inner, obs, reward, done, info = env.step(key, state.inner, action)
        t = state.t + 1
        return TimeLimitState(inner, t), obs, reward, done | (t >= max_steps), info

    return env._replace(reset=reset, step=step)
