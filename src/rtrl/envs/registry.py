"""Prediction streams and control environments by name, for presets and the command line."""

from __future__ import annotations

from typing import Any, Callable

from rtrl.envs import animal_learning, atari, popgym
from rtrl.envs.base import PredictionStream
from rtrl.envs.cartpole import cartpole, cartpole_p, cartpole_v
from rtrl.envs.control import ControlEnv
from rtrl.envs.gymnax_envs import GYMNAX_PREFIX, gymnax_env
from rtrl.envs.mujoco import MUJOCO_LAYOUT, OBSERVED, brax_pomdp, brax_reacher_p

# Each stream constructor takes the options it needs from a common set (isi, num_distractors,
# game, frame_size, resize, gamma) and ignores the rest.
STREAMS: dict[str, Callable[..., PredictionStream]] = {
    "trace_conditioning": lambda isi, num_distractors, **_: animal_learning.trace_conditioning(
        isi=isi, num_distractors=num_distractors
    ),
    "trace_patterning": lambda isi, num_distractors, **_: animal_learning.trace_patterning(
        isi=isi, num_distractors=num_distractors
    ),
    "noisy_patterning": lambda num_distractors, **_: animal_learning.noisy_patterning(
        num_distractors=num_distractors
    ),
    "javed_trace_patterning": lambda isi, **_: animal_learning.javed_trace_patterning(isi=isi),
    # Recorded expert play, replayed once and cached; the directory is $RTRL_DATA (rtrl --data).
    "atari": lambda game, frame_size, gamma, resize="area", **_: atari.recorded_stream(
        atari.load_recording(game, frame_size=frame_size, progress=True, resize=resize), gamma
    ),
}


def _check_stream(name: str) -> None:
    if name not in STREAMS:
        raise ValueError(f"unknown stream {name!r}; choose one of {sorted(STREAMS)}")


def make_stream(name: str, **options: Any) -> PredictionStream:
    """A prediction stream by name, e.g. ``make_stream("trace_patterning", isi=10,
    num_distractors=10)``."""
    _check_stream(name)
    return STREAMS[name](**options)


def stream_observation_count(name: str, **options: Any) -> int:
    """The size of a stream's observations, without loading recorded data."""
    _check_stream(name)
    if name == "atari":
        return atari.observation_size(options["frame_size"])
    return make_stream(name, **options).num_observations


CARTPOLE = {"cartpole": cartpole, "cartpole-p": cartpole_p, "cartpole-v": cartpole_v}
MUJOCO_TASKS = [f"{name}-{observed}" for name in MUJOCO_LAYOUT for observed in OBSERVED]
REACHER = "reacher-p"  # Brax's Reacher without velocities (rtrl.envs.mujoco)
BRAX_TASKS = [*MUJOCO_TASKS, REACHER]


def control_env_names() -> list[str]:
    return sorted(CARTPOLE) + BRAX_TASKS + sorted(popgym.TASKS) + [f"{GYMNAX_PREFIX}NAME"]


def make_control_env(
    name: str, mujoco_backend: str = "spring", memory_length: int | None = None
) -> ControlEnv:
    """E.g. "cartpole-p", "halfcheetah-p" or "reacher-p" (Brax, needs the control extra),
    "autoencode-easy",
    "gymnax:MemoryChain-bsuite" (any of gymnax's names; ``memory_length`` is MemoryChain's)."""
    if name.startswith(GYMNAX_PREFIX):
        return gymnax_env(name[len(GYMNAX_PREFIX) :], memory_length)
    if memory_length is not None:
        raise ValueError(f"memory_length applies to gymnax:MemoryChain-bsuite, not to {name}")
    if name in CARTPOLE:
        return CARTPOLE[name]()
    if name in MUJOCO_TASKS:
        task, observed = name.rsplit("-", 1)
        return brax_pomdp(task, observed, backend=mujoco_backend)
    if name == REACHER:
        return brax_reacher_p(backend=mujoco_backend)
    if name in popgym.TASKS:
        return popgym.popgym_task(name)
    raise ValueError(f"unknown environment {name!r}; choose one of {control_env_names()}")


# Where a control environment's name says where it runs: in JAX (no prefix, or gymnax:), stepped
# from Python (gym:), or in EnvPool's C++ batches (atari:, procgen:).
HOST_PREFIX = "gym:"  # "gym:<Gymnasium id>" or "gym:<mujoco task>-p|v": stepped from Python
ENVPOOL_PREFIXES = ("atari:", "procgen:")  # EnvPool's pixel games (rtrl.envs.envpool_games)


def is_host_env(name: str) -> bool:
    return name.startswith(HOST_PREFIX)


def is_envpool_env(name: str) -> bool:
    return name.startswith(ENVPOOL_PREFIXES)


def make_host_envs(name: str, num_envs: int, seed: int):
    """``num_envs`` Gymnasium environments stepped from Python (``rtrl.envs.host``); ``name``
    without the ``gym:`` prefix."""
    from rtrl.envs.host import HostEnvs
    from rtrl.envs.mujoco import gymnasium_pomdp

    task, _, observed = name.rpartition("-")
    if task in MUJOCO_LAYOUT and observed in ("p", "v"):
        return gymnasium_pomdp(task, observed, num_envs=num_envs, seed=seed)
    return HostEnvs(name, num_envs=num_envs, seed=seed)
