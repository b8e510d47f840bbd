"""Convolutional torsos for pixel observations, by name (``TORSOS``): (height, width, channels)
images, channels last, to a ReLU layer of ``width`` features. IMPALA's residual network
(``resnet``) and Mnih et al. 2015's Nature network (``nature``). Convolution weights start with
He's scale.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rtrl.cells.base import lecun_normal
from rtrl.learners.policies import mlp_init


def _conv_init(key: jax.Array, size: int, channels: int, filters: int) -> dict:
    w = lecun_normal(key, (size, size, channels, filters), size * size * channels) * jnp.sqrt(2.0)
    return {"w": w, "b": jnp.zeros((filters,), w.dtype)}


def _conv(layer: dict, x: jax.Array, stride: int, padding: str) -> jax.Array:
    y = jax.lax.conv_general_dilated(x, layer["w"], (stride, stride), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
    return y + layer["b"]


def _dense_features(dense: dict, x: jax.Array) -> jax.Array:
    return jax.nn.relu(dense["w"] @ x.reshape(-1) + dense["b"])


# Mnih et al. 2015's "Nature" network: 32 8x8 filters with stride 4, 64 4x4 with stride 2, 64 3x3
# with stride 1, ReLU after each ('VALID' padding).
NATURE_CONVOLUTIONS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))


def nature_torso_init(key: jax.Array, shape: Sequence[int], width: int) -> dict:
    height, breadth, channels = shape
    keys = jax.random.split(key, len(NATURE_CONVOLUTIONS) + 1)
    convolutions = []
    for k, (filters, size, stride) in zip(keys, NATURE_CONVOLUTIONS):
        convolutions.append(_conv_init(k, size, channels, filters))
        height, breadth = (height - size) // stride + 1, (breadth - size) // stride + 1
        channels = filters
        if height < 1 or breadth < 1:
            raise ValueError(f"observations of shape {tuple(shape)} are too small for the "
                             "Nature torso (at least 36 x 36): use torso=resnet")  # fmt: skip
    (dense,) = mlp_init(keys[-1], [height * breadth * channels, width])
    return {"convolutions": convolutions, "dense": dense}


def nature_torso_apply(params: dict, observation: jax.Array) -> jax.Array:
    """(height, width, channels) -> (width,) features."""
    x = observation[None]
    for layer, (_, _, stride) in zip(params["convolutions"], NATURE_CONVOLUTIONS):
        x = jax.nn.relu(_conv(layer, x, stride, "VALID"))
    return _dense_features(params["dense"], x)


# IMPALA's deep residual network (Espeholt et al. 2018): sections of 16, 32 and 32 channels, each a
# 3x3 convolution, a 3x3 max-pool with stride 2 and two residual blocks (ReLU, 3x3 convolution,
# ReLU, 3x3 convolution, plus the block's input), 'SAME' padding throughout; then a ReLU.
RESNET_SECTIONS = (16, 32, 32)
RESNET_BLOCKS = 2


def resnet_torso_init(key: jax.Array, shape: Sequence[int], width: int) -> dict:
    height, breadth, channels = shape
    k_sections, k_dense = jax.random.split(key)
    sections = []
    for k, filters in zip(jax.random.split(k_sections, len(RESNET_SECTIONS)), RESNET_SECTIONS):
        k_conv, *k_blocks = jax.random.split(k, 1 + 2 * RESNET_BLOCKS)
        blocks = [_conv_init(kb, 3, filters, filters) for kb in k_blocks]
        sections.append({"conv": _conv_init(k_conv, 3, channels, filters), "blocks": blocks})
        height, breadth, channels = -(-height // 2), -(-breadth // 2), filters  # pool, stride 2
    (dense,) = mlp_init(k_dense, [height * breadth * channels, width])
    return {"sections": sections, "dense": dense}


def resnet_torso_apply(params: dict, observation: jax.Array) -> jax.Array:
    """(height, width, channels) -> (width,) features."""
    x = observation[None]
    for section in params["sections"]:
        x = _conv(section["conv"], x, 1, "SAME")
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")
        blocks = section["blocks"]
        for first, second in zip(blocks[::2], blocks[1::2]):
            inner = _conv(first, jax.nn.relu(x), 1, "SAME")
            x = x + _conv(second, jax.nn.relu(inner), 1, "SAME")
    return _dense_features(params["dense"], jax.nn.relu(x))


class Torso(NamedTuple):
    """``init(key, (height, width, channels), width) -> params``; ``apply(params, image) ->
    (width,) features``."""

    init: Callable[[jax.Array, Sequence[int], int], dict]
    apply: Callable[[dict, jax.Array], jax.Array]


TORSOS = {
    "resnet": Torso(resnet_torso_init, resnet_torso_apply),
    "nature": Torso(nature_torso_init, nature_torso_apply),
}


def image_torso(name: str) -> Torso:
    if name not in TORSOS:
        raise ValueError(f"unknown torso {name!r}: use one of {', '.join(TORSOS)}")
    return TORSOS[name]
