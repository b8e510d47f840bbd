"""Environments and prediction streams, JAX-native with explicit keys."""

from rtrl.envs import delayed_signal

__all__ = ["delayed_signal"]
