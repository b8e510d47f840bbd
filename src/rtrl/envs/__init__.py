"""Environments and prediction streams, JAX-native with explicit keys."""

from rtrl.envs import animal_learning, delayed_signal

__all__ = ["animal_learning", "delayed_signal"]
