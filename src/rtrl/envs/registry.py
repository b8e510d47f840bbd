"""Control environments by name, for presets and the command line."""

from __future__ import annotations

from rtrl.envs import popgym
from rtrl.envs.cartpole import cartpole, cartpole_p, cartpole_v
from rtrl.envs.control import ControlEnv
from rtrl.envs.mujoco import MUJOCO_LAYOUT, OBSERVED, brax_pomdp

CARTPOLE = {"cartpole": cartpole, "cartpole-p": cartpole_p, "cartpole-v": cartpole_v}
MUJOCO_TASKS = [f"{name}-{observed}" for name in MUJOCO_LAYOUT for observed in OBSERVED]


def control_env_names() -> list[str]:
    return sorted(CARTPOLE) + MUJOCO_TASKS + sorted(popgym.TASKS)


def make_control_env(name: str, mujoco_backend: str = "spring") -> ControlEnv:
    """E.g. "cartpole-p", "halfcheetah-p" (Brax, needs the control extra), "autoencode-easy"."""
    if name in CARTPOLE:
        return CARTPOLE[name]()
    if name in MUJOCO_TASKS:
        task, observed = name.rsplit("-", 1)
        return brax_pomdp(task, observed, backend=mujoco_backend)
    if name in popgym.TASKS:
        return popgym.popgym_task(name)
    raise ValueError(f"unknown environment {name!r}; choose one of {control_env_names()}")
