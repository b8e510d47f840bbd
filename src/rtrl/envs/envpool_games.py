"""Pixel control through EnvPool's C++ batched engines: Atari 2600 and ProcGen's memory games.

``make_envpool_envs(name, num_envs, seed)`` with ``name`` ``atari:GAME`` (e.g. ``atari:Pong``) or
``procgen:GAME`` (``caveflyer``, ``dodgeball``, ``heist``, ``jumper``, ``maze``, ``miner``: the
``...Memory-v0`` distribution). The batch steps inside EnvPool; this adapter only gives it the
conventions of ``rtrl.envs.host.HostEnvs``: when an episode ends (terminated or truncated) the
observation returned is the first of the next episode (EnvPool itself would return it on the
following step, ignoring that step's action), the one it ended in is ``final_observation``, and
the undiscounted return of each episode that ended is reported. Observations are float32 in
[0, 1], channels last: (84, 84, 1) for Atari, (64, 64, 3) for ProcGen.

Atari settings (Machado et al. 2018, the R2AC paper's "standard settings"): frame skip 4 (max over
the last two frames), sticky actions with probability 0.25, the full action set of 18, no
end-of-life episodes, 84 x 84 grey frames (area resize), no frame stacking (the agents are
recurrent), episodes cut at 27,000 steps (108k frames), rewards unclipped (learners clip them in
the loss). EnvPool's own reset rules are kept: up to 30 no-op steps and FIRE at the start of
games that need it.

ProcGen needs the system Qt 5 runtime (on Debian: ``apt-get install libqt5gui5``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtrl.envs.host import HostStep
from rtrl.spaces import Discrete

ATARI_SETTINGS: dict[str, Any] = {
    "frame_skip": 4,
    "repeat_action_probability": 0.25,
    "full_action_space": True,
    "episodic_life": False,
    "img_height": 84,
    "img_width": 84,
    "gray_scale": True,
    "stack_num": 1,
    "max_episode_steps": 27_000,
    "reward_clip": False,
}
PROCGEN_MEMORY_GAMES = ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner")
QT_PACKAGE = "libqt5gui5"


def _envpool():
    try:
        import envpool
    except ImportError:
        message = "EnvPool environments need envpool: pip install 'rtrl[envpool]'"
        raise ImportError(message) from None
    return envpool


def envpool_task(name: str) -> tuple[str, dict[str, Any]]:
    """EnvPool's task id and options for ``atari:GAME`` or ``procgen:GAME``."""
    family, _, game = name.partition(":")
    if family == "atari" and game:
        return f"{game}-v5", dict(ATARI_SETTINGS)
    if family == "procgen" and game in PROCGEN_MEMORY_GAMES:
        return f"{game.capitalize()}Memory-v0", {}
    raise ValueError(
        f"unknown EnvPool environment {name!r}: use atari:GAME (e.g. atari:Pong) or "
        f"procgen:GAME with GAME one of {', '.join(PROCGEN_MEMORY_GAMES)}"
    )


class EnvPoolEnvs:
    """``num_envs`` environments of one EnvPool task, stepped as one batch (see the module
    docstring for the conventions). Environment i is seeded from ``seed``, as EnvPool does."""

    def __init__(self, name: str, num_envs: int = 1, seed: int = 0, **options: Any):
        task, settings = envpool_task(name)
        envpool = _envpool()
        if task not in envpool.list_all_envs():
            raise ValueError(
                f"unknown EnvPool game {name!r} (EnvPool has no {task}); the games are listed by "
                "python -c 'import envpool; print(envpool.list_all_envs())' (ids GAME-v5)"
            )
        try:
            self.env = envpool.make(task, env_type="gymnasium", num_envs=num_envs, seed=seed,
                                    **{**settings, **options})  # fmt: skip
        except ImportError as error:
            if "Qt" in str(error):
                raise ImportError(f"ProcGen needs the system Qt 5 runtime: apt-get install "
                                  f"{QT_PACKAGE}") from None  # fmt: skip
            raise
        self.name, self.num_envs = name, num_envs
        self.frames_per_step = settings.get("frame_skip", 1)  # emulator frames per agent step
        channels, height, width = self.env.observation_space.shape
        self.observation_shape = (height, width, channels)
        self.action_space = Discrete(int(self.env.action_space.n))
        self.returns = np.zeros(num_envs)

    @staticmethod
    def _observe(frames: np.ndarray) -> np.ndarray:
        """(E, C, H, W) uint8 -> (E, H, W, C) float32 in [0, 1]."""
        return np.moveaxis(frames, 1, -1).astype(np.float32) / 255.0

    def reset(self) -> np.ndarray:
        self.returns[:] = 0.0
        frames, info = self.env.reset()
        return self._observe(frames[np.argsort(info["env_id"])])

    def step(self, actions) -> HostStep:
        frames, rewards, terminated, truncated, info = self.env.step(np.asarray(actions))
        order = np.argsort(info["env_id"])  # sync mode returns every env; keep the id order
        frames, rewards = frames[order], rewards[order].astype(np.float64)
        terminated, truncated = terminated[order], truncated[order]
        final = self._observe(frames)
        observations = final.copy()
        self.returns += rewards
        done = terminated | truncated
        finished = np.where(done, self.returns, np.nan)
        self.returns[done] = 0.0
        if done.any():
            first, reset_info = self.env.reset(np.nonzero(done)[0])
            observations[reset_info["env_id"]] = self._observe(first)
        return HostStep(observations, rewards, terminated, truncated, final, finished)

    def close(self) -> None:
        self.env.close()
