"""Composition of cells into networks: heads and normalisers (columnar, constructive and CCN
networks build on these)."""

from rtrl.networks.normalize import NormalizerState, normalize, normalizer_init, normalizer_update

__all__ = ["NormalizerState", "normalize", "normalizer_init", "normalizer_update"]
