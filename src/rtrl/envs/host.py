"""Any Gymnasium environment for the host-loop learners.

``HostEnvs`` steps ``num_envs`` copies from Python with the same conventions as the JAX
environments after ``rtrl.envs.control.auto_reset``: when an episode ends (terminated or
truncated) the returned observation is the first of the next one and ``done`` is True, so
learners treat ``done`` as the reset flag of the next step. The undiscounted return of each
episode that ended is reported alongside.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

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
        self.envs = [make() for _ in range(num_envs)]
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

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Returns (observations, rewards, dones, episode returns: NaN where not done)."""
        actions = np.asarray(actions)
        observations, rewards, dones = [], np.zeros(len(self.envs)), np.zeros(len(self.envs), bool)
        finished = np.full(len(self.envs), np.nan)
        for i, env in enumerate(self.envs):
            action = actions[i]
            if isinstance(self.action_space, Discrete):
                action = int(action)
            else:
                action = np.clip(action, env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards[i] = reward
            self.returns[i] += reward
            if terminated or truncated:
                dones[i] = True
                finished[i] = self.returns[i]
                self.returns[i] = 0.0
                obs, _ = env.reset()
            observations.append(self._observe(obs))
        return np.stack(observations), rewards, dones, finished

    def close(self) -> None:
        for env in self.envs:
            env.close()
