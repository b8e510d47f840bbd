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


# The convolutional torso for pixel observations (Mnih et al. 2015's "Nature" network): 32 8x8
# filters with stride 4, 64 4x4 with stride 2, 64 3x3 with stride 1, ReLU after each, then a
# ReLU layer of ``width`` units. Observations are (height, width, channels), channels last.
NATURE_CONVOLUTIONS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))


def conv_torso_init(key: jax.Array, shape: Sequence[int], width: int) -> dict:
    height, breadth, channels = shape
    keys = jax.random.split(key, len(NATURE_CONVOLUTIONS) + 1)
    convolutions = []
    for k, (filters, size, stride) in zip(keys, NATURE_CONVOLUTIONS):
        fan_in = size * size * channels
        w = lecun_normal(k, (size, size, channels, filters), fan_in) * jnp.sqrt(2.0)  # He
        convolutions.append({"w": w, "b": jnp.zeros((filters,), w.dtype)})
        height, breadth = (height - size) // stride + 1, (breadth - size) // stride + 1
        channels = filters
        if height < 1 or breadth < 1:
            raise ValueError(f"observations of shape {tuple(shape)} are too small for the "
                             "convolutional torso (at least 36 x 36)")  # fmt: skip
    (dense,) = mlp_init(keys[-1], [height * breadth * channels, width])
    return {"convolutions": convolutions, "dense": dense}


def conv_torso_apply(params: dict, observation: jax.Array) -> jax.Array:
    """(height, width, channels) -> (width,) features."""
    x = observation[None]
    for layer, (_, _, stride) in zip(params["convolutions"], NATURE_CONVOLUTIONS):
        x = jax.lax.conv_general_dilated(x, layer["w"], (stride, stride), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
        x = jax.nn.relu(x + layer["b"])
    return jax.nn.relu(params["dense"]["w"] @ x.reshape(-1) + params["dense"]["b"])
