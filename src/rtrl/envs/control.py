"""Control environments as pure functions (gymnax style), and the wrappers every agent uses.

A ``ControlEnv`` (``rtrl.envs.base``) is a NamedTuple of functions over an explicit state:

- ``reset(key) -> (state, observation)``
- ``step(key, state, action) -> (state, observation, reward, terminated, truncated, info)``

``terminated`` (a terminal state: no value beyond it) and ``truncated`` (cut short by a time
limit: the state still has a value) each end the episode; ``done = terminated | truncated``.
``info`` is a dict of arrays; the ``record_episode_returns`` wrapper adds
``info["episode_return"]``, the undiscounted, unnormalised return of the episode that ended on
this step (valid where done).

``auto_reset`` makes an environment continuing: on done the returned observation is already
the first observation of the next episode, so an agent reads done as "this observation starts a
new episode" (the reset flag of the estimators) and as a zero discount for the transition into
it. The observation the episode ended in is kept in ``info["final_observation"]`` (equal to the
returned observation on other steps), so that agents can bootstrap from its value at a
truncation. Wrap in this order (``wrap_for_agents`` does it)::

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
        state, obs, reward, terminated, truncated, info = env.step(key, state, action)
        return state, obs[indices], reward, terminated, truncated, info

    return env._replace(name=name, observation_size=int(indices.size), reset=reset, step=step)


def auto_reset(env: ControlEnv) -> ControlEnv:
    """Start the next episode on the step that ends one (see the module docstring)."""

    def step(key, state, action):
        step_key, reset_key = jax.random.split(key)
        state, obs, reward, terminated, truncated, info = env.step(step_key, state, action)
        done = terminated | truncated
        fresh_state, fresh_obs = env.reset(reset_key)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh_state, state)
        info = {**info, "final_observation": obs}
        return state, jnp.where(done, fresh_obs, obs), reward, terminated, truncated, info

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
        inner, obs, reward, terminated, truncated, info = env.step(key, state.inner, action)
        total = state.episode_return + reward
        info = {**info, "episode_return": total}
        state = EpisodeRecord(inner, jnp.where(terminated | truncated, 0.0, total))
        return state, obs, reward, terminated, truncated, info

    return env._replace(reset=reset, step=step)


class RunningMoments(NamedTuple):
    """Running mean and variance weighted by a count (parallel-update form, as Gymnasium's
    normalisers; the networks' normaliser uses exponential moments instead,
    ``rtrl.networks.normalize``)."""

    count: jax.Array
    mean: jax.Array
    variance: jax.Array


def running_moments_init(shape: tuple[int, ...]) -> RunningMoments:
    return RunningMoments(jnp.asarray(1e-4), jnp.zeros(shape), jnp.ones(shape))


def running_moments_update(m: RunningMoments, x: jax.Array) -> RunningMoments:
    """Add one sample ``x`` (of the statistics' shape)."""
    count = m.count + 1.0
    delta = x - m.mean
    mean = m.mean + delta / count
    variance = (m.variance * m.count + delta**2 * m.count / count) / count
    return RunningMoments(count, mean, variance)


class ObservationNormalizerState(NamedTuple):
    inner: Any
    moments: RunningMoments  # of the observations


class ScaledRewardState(NamedTuple):
    inner: Any
    moments: RunningMoments  # of the discounted return
    discounted_return: jax.Array


def normalize_observations(env: ControlEnv, clip: float = 10.0, eps: float = 1e-8) -> ControlEnv:
    """Observations standardised per feature by their running moments, clipped to +-clip."""

    def normalized(moments, obs):
        return jnp.clip((obs - moments.mean) / jnp.sqrt(moments.variance + eps), -clip, clip)

    def reset(key):
        state, obs = env.reset(key)
        moments = running_moments_update(running_moments_init((env.observation_size,)), obs)
        return ObservationNormalizerState(state, moments), normalized(moments, obs)

    def step(key, state, action):
        inner, obs, reward, terminated, truncated, info = env.step(key, state.inner, action)
        moments = running_moments_update(state.moments, obs)
        if "final_observation" in info:  # seen through the same statistics as observations
            info = {**info, "final_observation": normalized(moments, info["final_observation"])}
        state = ObservationNormalizerState(inner, moments)
        return state, normalized(moments, obs), reward, terminated, truncated, info

    return env._replace(reset=reset, step=step)


def scale_rewards(
    env: ControlEnv, gamma: float, clip: float = 10.0, eps: float = 1e-8
) -> ControlEnv:
    """Rewards divided by the running standard deviation of the discounted return."""

    def reset(key):
        state, obs = env.reset(key)
        return ScaledRewardState(state, running_moments_init(()), jnp.zeros(())), obs

    def step(key, state, action):
        inner, obs, reward, terminated, truncated, info = env.step(key, state.inner, action)
        discounted = state.discounted_return * gamma + reward
        moments = running_moments_update(state.moments, discounted)
        scaled = jnp.clip(reward / jnp.sqrt(moments.variance + eps), -clip, clip)
        discounted = jnp.where(terminated | truncated, 0.0, discounted)
        state = ScaledRewardState(inner, moments, discounted)
        return state, obs, scaled, terminated, truncated, info

    return env._replace(reset=reset, step=step)


def append_previous_reward(env: ControlEnv, clip: float = 1.0) -> ControlEnv:
    """Observations followed by the reward of the step that led to them, clipped to +-clip, as
    the R2AC reference's agents read it (0 on an episode's first observation). Wrap an
    ``auto_reset`` environment: the final observation of a finished episode gets that step's
    reward, the next episode's first observation 0."""

    def with_reward(obs, reward):
        return jnp.concatenate([obs, jnp.clip(reward, -clip, clip)[None].astype(obs.dtype)])

    def reset(key):
        state, obs = env.reset(key)
        return state, with_reward(obs, jnp.zeros(()))

    def step(key, state, action):
        state, obs, reward, terminated, truncated, info = env.step(key, state, action)
        done = terminated | truncated
        info = {**info, "final_observation": with_reward(info["final_observation"], reward)}
        obs = with_reward(obs, jnp.where(done, 0.0, reward))
        return state, obs, reward, terminated, truncated, info

    return env._replace(observation_size=env.observation_size + 1, reset=reset, step=step)


def wrap_for_agents(
    env: ControlEnv,
    normalize_obs: bool = False,
    scale_reward: bool = False,
    gamma: float = 0.99,
    previous_reward: bool = False,
) -> ControlEnv:
    """The standard stack (see the module docstring) around an episodic environment;
    ``previous_reward`` appends the last (clipped) reward to the observations."""
    env = record_episode_returns(auto_reset(env))
    if previous_reward:
        env = append_previous_reward(env)
    if normalize_obs:
        env = normalize_observations(env)
    if scale_reward:
        env = scale_rewards(env, gamma)
    return env


class TimeLimitState(NamedTuple):
    inner: Any
    t: jax.Array


def time_limit(env: ControlEnv, max_steps: int) -> ControlEnv:
    """Truncate every episode after ``max_steps`` steps (a step that also terminates reports
    both flags, as Gymnasium's ``TimeLimit`` does)."""

    def reset(key):
        state, obs = env.reset(key)
        return TimeLimitState(state, jnp.zeros((), jnp.int32)), obs

    def step(key, state, action):
        inner, obs, reward, terminated, truncated, info = env.step(key, state.inner, action)
        t = state.t + 1
        return TimeLimitState(inner, t), obs, reward, terminated, truncated | (t >= max_steps), info

    return env._replace(reset=reset, step=step)
