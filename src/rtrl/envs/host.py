"""Any Gymnasium environment for the host-loop learners.

``HostEnvs`` steps ``num_envs`` copies from Python with the same conventions as the JAX
environments after ``rtrl.envs.control.auto_reset``: when an episode ends (terminated or
truncated) the returned observation is the first of the next one, so learners treat
``terminated | truncated`` as the reset flag of the next step, and the observation the episode
ended in is reported as ``final_observation``. The undiscounted return of each episode that
ended is reported alongside.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from rtrl.spaces import ActionSpace, Box, Discrete


def action_space_of(space: Any) -> ActionSpace:
    """The ``ActionSpace`` of a Gymnasium space (Discrete, or a 1-D Box)."""
    import gymnasium

    if isinstance(space, gymnasium.spaces.Discrete):
        return Discrete(int(space.n))
    if isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1:
        return Box(int(space.shape[0]), float(np.min(space.low)), float(np.max(space.high)))
    raise ValueError(f"unsupported action space {space}: use a Discrete or a 1-D Box space")


class HostStep(NamedTuple):
    """One step of every environment (arrays with a leading environment axis)."""

    observation: np.ndarray  # the first of the next episode where one ended
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_observation: np.ndarray  # the observation the step reached, before any reset
    episode_return: np.ndarray  # of the episode that ended on this step; NaN where none did


class HostEnvs:
    """``num_envs`` Gymnasium environments with same-step auto-reset.

    ``env`` is a Gymnasium id (made with ``gymnasium.make(env, **options)``) or a function that
    makes one environment. ``keep`` selects observation entries (a partially observable
    variant). Environment i is seeded with ``seed + i`` at its first reset.
    """

    def __init__(
        self,
        env: str | Callable[[], Any],
        num_envs: int = 1,
        seed: int = 0,
        keep: Sequence[int] | None = None,
        **options: Any,
    ):
        try:
            import gymnasium
        except ImportError:
            raise ImportError(
                "Gymnasium environments need gymnasium: pip install 'rtrl[control]'"
            ) from None
        make = (lambda: gymnasium.make(env, **options)) if isinstance(env, str) else env
        try:
            self.envs = [make() for _ in range(num_envs)]
        except gymnasium.error.Error as error:  # unknown id, version or missing dependency
            reason = str(error).rstrip(".")
            raise ValueError(
                f"cannot make Gymnasium environment {env!r}: {reason}; the registered ids are "
                "listed by python -c 'import gymnasium; gymnasium.pprint_registry()'"
            ) from None
        space = self.envs[0].observation_space
        if len(space.shape) != 1:
            raise ValueError(f"observations must be vectors; this one has shape {space.shape}")
        self.keep = None if keep is None else np.asarray(keep, dtype=int)
        full_size = int(space.shape[0])
        if self.keep is not None and (self.keep.min() < 0 or self.keep.max() >= full_size):
            raise ValueError(f"kept indices {self.keep.tolist()} exceed 0..{full_size - 1}")
        self.observation_size = full_size if self.keep is None else int(self.keep.size)
        self.action_space = action_space_of(self.envs[0].action_space)
        self.seed = seed
        self.returns = np.zeros(num_envs)

    def _observe(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        return obs if self.keep is None else obs[self.keep]

    def reset(self) -> np.ndarray:
        self.returns[:] = 0.0
        return np.stack(
            [self._observe(env.reset(seed=self.seed + i)[0]) for i, env in enumerate(self.envs)]
        )

    def step(self, actions) -> HostStep:
        actions = np.asarray(actions)
        count = len(self.envs)
        observations, final_observations = [], []
        rewards, finished = np.zeros(count), np.full(count, np.nan)
        terminated, truncated = np.zeros(count, bool), np.zeros(count, bool)
        for i, env in enumerate(self.envs):
            action = actions[i]
            if isinstance(self.action_space, Discrete):
                action = int(action)
            else:
                action = np.clip(action, env.action_space.low, env.action_space.high)
            obs, rewards[i], terminated[i], truncated[i], _ = env.step(action)
            self.returns[i] += rewards[i]
            final_observations.append(self._observe(obs))
            if terminated[i] or truncated[i]:
                finished[i] = self.returns[i]
                self.returns[i] = 0.0
                obs, _ = env.reset()
            observations.append(self._observe(obs))
        return HostStep(np.stack(observations), rewards, terminated, truncated,
                        np.stack(final_observations), finished)  # fmt: skip

    def close(self) -> None:
        for env in self.envs:
            env.close()
