"""Policy distributions and small feed-forward heads for the control learners.

A distribution acts on the head's output vector: logits for ``Discrete`` actions, and for
``Box`` actions the concatenation [mean, log standard deviation] of a diagonal Gaussian (the
log standard deviations are a state-independent parameter appended by ``policy_output``).
Actions are sampled unbounded; environments clip them to their range.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rtrl.cells.base import lecun_normal
from rtrl.spaces import ActionSpace, Discrete


class Distribution(NamedTuple):
    output_size: int  # length of the head's output vector (before appending log stds)
    sample: Callable[[jax.Array, jax.Array], jax.Array]  # (key, output) -> action
    log_prob: Callable[[jax.Array, jax.Array], jax.Array]  # (output, action) -> scalar
    entropy: Callable[[jax.Array], jax.Array]  # output -> scalar


def categorical(n: int) -> Distribution:
    def log_prob(logits, action):
        return jax.nn.log_softmax(logits)[action]

    def entropy(logits):
        logp = jax.nn.log_softmax(logits)
        return -jnp.sum(jnp.exp(logp) * logp)

    return Distribution(n, lambda key, logits: jax.random.categorical(key, logits), log_prob,
                        entropy)  # fmt: skip


def diagonal_gaussian(size: int) -> Distribution:
    def split(output):
        return output[:size], output[size:]

    def sample(key, output):
        mean, log_std = split(output)
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    def log_prob(output, action):
        mean, log_std = split(output)
        z = (action - mean) / jnp.exp(log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi))

    def entropy(output):
        _, log_std = split(output)
        return jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e))

    return Distribution(size, sample, log_prob, entropy)


def distribution_for(space: ActionSpace) -> Distribution:
    return categorical(space.n) if isinstance(space, Discrete) else diagonal_gaussian(space.size)


def policy_output(space: ActionSpace, head_output: jax.Array, params: dict) -> jax.Array:
    """The distribution's input: logits, or [mean, log_std] with the learned log stds."""
    if isinstance(space, Discrete):
        return head_output
    return jnp.concatenate([head_output, params["log_std"]])


def policy_params(space: ActionSpace, dtype=jnp.float32) -> dict:
    """Extra policy parameters: the Gaussian's log standard deviations (start at 0)."""
    return {} if isinstance(space, Discrete) else {"log_std": jnp.zeros((space.size,), dtype)}


# Feed-forward layers: a list of {"w", "b"}; tanh between layers, none after the last.
def mlp_init(key: jax.Array, sizes: Sequence[int], last_scale: float = 1.0) -> list[dict]:
    """Layers of ``sizes`` (inputs first); the last layer's weights are scaled by ``last_scale``
    (e.g. 0.01 for a policy's output, so the initial policy is nearly uniform)."""
    keys = jax.random.split(key, max(len(sizes) - 1, 1))
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        scale = last_scale if i == len(sizes) - 2 else 1.0
        w = scale * lecun_normal(keys[i], (fan_out, fan_in), fan_in)
        layers.append({"w": w, "b": jnp.zeros((fan_out,), w.dtype)})
    return layers


def mlp_apply(layers: list[dict], x: jax.Array, activate_last: bool = False) -> jax.Array:
    for i, layer in enumerate(layers):
        x = layer["w"] @ x + layer["b"]
        if i < len(layers) - 1 or activate_last:
            x = jnp.tanh(x)
    return x


# Convolutional torsos for pixel observations: (height, width, channels) images, channels last,
# to a ReLU layer of ``width`` features. Convolution weights start with He's scale.
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
