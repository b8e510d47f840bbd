"""Environments and prediction streams, JAX-native with explicit keys."""

from rtrl.envs import animal_learning, cartpole, control, delayed_signal, popgym, registry
from rtrl.envs.registry import control_env_names, make_control_env

__all__ = ["animal_learning", "cartpole", "control", "control_env_names", "delayed_signal",
           "make_control_env", "popgym", "registry"]  # fmt: skip
