"""Composition of cells into networks: staged (columnar, constructive, CCN) networks and
running-statistics normalisers."""

from rtrl.networks.normalize import (
    ExponentialMoments,
    normalize,
    normalizer_init,
    normalizer_update,
)
from rtrl.networks.staged import StagedNetwork, StagedState, staged_network, staged_rtrl

__all__ = [
    "ExponentialMoments",
    "StagedNetwork",
    "StagedState",
    "normalize",
    "normalizer_init",
    "normalizer_update",
    "staged_network",
    "staged_rtrl",
]
