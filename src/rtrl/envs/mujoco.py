"""Partially observable MuJoCo locomotion: "-P" keeps positions only, "-V" velocities only.

The observations of Ant, HalfCheetah, Hopper and Walker2d are the generalised positions (without
the root's x, and for Ant also y) followed by the generalised velocities, in Brax and in
Gymnasium's v5 environments alike (Ant-v5 built without contact forces). So -P keeps the first
``p`` entries and -V the last ``v``:

    env          p   v   P keeps   V keeps
    ant          13  14  0..12     13..26
    halfcheetah   8   9  0..7      8..16
    hopper        5   6  0..4      5..10
    walker2d      8   9  0..7      8..16

(The public -P/-V wrapper splits HalfCheetah 9/8, which puts the root's x-velocity into -P; here
the split follows the physics, checked against the simulator's q and qd in the tests.)

Reacher-P is Brax's Reacher (a two-joint arm reaching for a target placed at random each
episode) without the fingertip's velocity: it keeps cos and sin of the joint angles, the target's
position and the fingertip-to-target vector (entries 0..5 and 8..10 of 11), and ends after 50
steps, as Gymnasium's Reacher. Its -P rule is this library's: the RTU paper's Reacher variant is
not specified in the sources the library follows.

Brax runs the whole training loop compiled. Its ``spring`` backend is the default: on this
project's 2-core CPU reference machine it steps HalfCheetah about 3x faster than ``positional``
or ``generalized`` (``python -m rtrl.bench control``; figures in benchmarks/README.md).
Gymnasium's MuJoCo environments run through the host-loop adapter (``rtrl.envs.host``).
"""

from __future__ import annotations

import jax.numpy as jnp

from rtrl.envs.control import ControlEnv, keep_observations, time_limit
from rtrl.spaces import Box, clip_action

# name -> (position entries, velocity entries) of the full observation.
MUJOCO_LAYOUT = {"ant": (13, 14), "halfcheetah": (8, 9), "hopper": (5, 6), "walker2d": (8, 9)}
GYMNASIUM_IDS = {"ant": "Ant-v5", "halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5",
                 "walker2d": "Walker2d-v5"}  # fmt: skip
OBSERVED = ("p", "v")
EPISODE_LENGTH = 1000
# Reacher-P: Brax's reacher observation without the fingertip velocity (entries 6 and 7).
REACHER_P_KEEPS = [0, 1, 2, 3, 4, 5, 8, 9, 10]
REACHER_EPISODE_LENGTH = 50


def kept_indices(name: str, observed: str) -> list[int]:
    """The observation entries the "-P" (observed="p") or "-V" ("v") variant keeps."""
    if name not in MUJOCO_LAYOUT:
        raise ValueError(f"unknown MuJoCo task {name!r}; choose one of {sorted(MUJOCO_LAYOUT)}")
    if observed not in OBSERVED:
        raise ValueError(f"observed must be 'p' (positions) or 'v' (velocities), not {observed!r}")
    positions, velocities = MUJOCO_LAYOUT[name]
    if observed == "p":
        return list(range(positions))
    return list(range(positions, positions + velocities))


def brax_env(name: str, backend: str = "spring", episode_length: int = EPISODE_LENGTH):
    """A fully observed Brax locomotion task as a ``ControlEnv`` (needs the ``control`` extra)."""
    try:
        from brax import envs as brax_envs
    except ImportError:
        raise ImportError(
            "Brax MuJoCo tasks need brax: pip install 'rtrl[control]' (or pip install brax)"
        ) from None
    env = brax_envs.get_environment(name, backend=backend)
    space = Box(env.action_size)

    def reset(key):
        state = env.reset(key)
        return state, state.obs

    def step(key, state, action):  # Brax dynamics are deterministic: the key is unused
        state = env.step(state, clip_action(space, action))
        return state, state.obs, state.reward, state.done > 0, jnp.zeros((), bool), {}

    full = ControlEnv(name, env.observation_size, space, reset, step)
    return time_limit(full, episode_length)


def brax_pomdp(name: str, observed: str, backend: str = "spring", **options) -> ControlEnv:
    """``name``-P or ``name``-V on Brax, e.g. ``brax_pomdp("halfcheetah", "p")``."""
    indices = kept_indices(name, observed)
    return keep_observations(brax_env(name, backend, **options), indices, f"{name}-{observed}")


def brax_reacher_p(backend: str = "spring") -> ControlEnv:
    """Reacher-P on Brax: positions and the target, no velocities, 50-step episodes."""
    full = brax_env("reacher", backend, episode_length=REACHER_EPISODE_LENGTH)
    return keep_observations(full, REACHER_P_KEEPS, "reacher-p")


def gymnasium_pomdp(name: str, observed: str, num_envs: int = 1, seed: int = 0):
    """``name``-P or -V on Gymnasium's MuJoCo v5, stepped from Python (``rtrl.envs.host``)."""
    from rtrl.envs.host import HostEnvs

    indices = kept_indices(name, observed)
    options = {"include_cfrc_ext_in_observation": False} if name == "ant" else {}
    return HostEnvs(GYMNASIUM_IDS[name], num_envs, seed, keep=indices, **options)
