"""Policy distributions and small feed-forward heads for the control learners.

A distribution acts on the head's output vector: logits for ``Discrete`` actions, and for
``Box`` actions the concatenation [mean, log standard deviation] of a diagonal Gaussian (the
log standard deviations are a state-independent parameter appended by ``policy_output``).
Actions are sampled unbounded; environments clip them to their range.
"""

from __future__ import annotations

import math
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


def sparse_weights(key: jax.Array, fan_out: int, fan_in: int, sparsity: float) -> jax.Array:
    """Stream-x's sparse initialisation (Elsayed et al. 2024): (fan_out, fan_in) weights,
    uniform in +-1/sqrt(fan_in), with ceil(sparsity * fan_in) of each row's entries zero, chosen
    at random per row, at most fan_in - 1 so that every unit reads an input (with a 3-wide
    observation, as MemoryChain's, s = 0.9 would zero every weight)."""
    k_values, k_zeros = jax.random.split(key)
    bound = 1.0 / math.sqrt(fan_in)
    w = jax.random.uniform(k_values, (fan_out, fan_in), minval=-bound, maxval=bound)
    zeros = min(math.ceil(sparsity * fan_in), fan_in - 1)
    # each row's entries ranked by a random draw: the `zeros` lowest ranks are cut
    draw = jax.random.uniform(k_zeros, (fan_out, fan_in))
    ranks = jnp.argsort(jnp.argsort(draw, axis=1), axis=1)
    return jnp.where(ranks < zeros, 0.0, w)


# Feed-forward layers: a list of {"w", "b"}; tanh between layers, none after the last.
def mlp_init(
    key: jax.Array, sizes: Sequence[int], last_scale: float = 1.0, sparsity: float = 0.0
) -> list[dict]:
    """Layers of ``sizes`` (inputs first); the last layer's weights are scaled by ``last_scale``
    (e.g. 0.01 for a policy's output, so the initial policy is nearly uniform). Weights are
    LeCun-normal, or ``sparse_weights`` where ``sparsity`` > 0; biases zero."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    keys = jax.random.split(key, max(len(sizes) - 1, 1))
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        scale = last_scale if i == len(sizes) - 2 else 1.0
        w = (sparse_weights(keys[i], fan_out, fan_in, sparsity) if sparsity > 0
             else lecun_normal(keys[i], (fan_out, fan_in), fan_in))  # fmt: skip
        layers.append({"w": scale * w, "b": jnp.zeros((fan_out,), w.dtype)})
    return layers


def mlp_apply(layers: list[dict], x: jax.Array, activate_last: bool = False) -> jax.Array:
    for i, layer in enumerate(layers):
        x = layer["w"] @ x + layer["b"]
        if i < len(layers) - 1 or activate_last:
            x = jnp.tanh(x)
    return x
