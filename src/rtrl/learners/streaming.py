"""The network of the streaming learners (stream-x, Elsayed et al. 2024; with a recurrent trunk,
Farr et al. 2026): observation -> encoder -> trunk -> linear head, with stream-x's stabilisers
as switches.

- Encoder: ``encoder_sizes`` layers, each Linear -> LayerNorm (``layer_norm``: over the layer's
  whole activation, with no gain or bias) -> LeakyReLU (slope 0.01); none: the trunk reads the
  observation.
- Trunk: an online estimator's cell (exact RTRL on an element-wise cell, or T-BPTT(1)), whose
  recurrent parameters get the estimator's credit and the encoder the immediate gradient
  through the trunk's input (``rtrl.gradients``); or a stateless cell (``feedforward``), given
  as the cell itself, which needs no estimator: backpropagation is exact.
- Head: linear, to ``outputs`` values (Q-values, or h's in QRC(lambda)).
- ``sparsity`` > 0: stream-x's sparse initialisation of the encoder and head weights: each
  unit's weights drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), then ceil(sparsity * fan_in) of
  them set to zero, at most fan_in - 1 so that every unit reads an input (with a 3-wide
  observation, as MemoryChain's, s = 0.9 would zero every weight). 0: LeCun-normal weights.
  Biases start at zero.

``epsilon_greedy_schedule`` is stream Q's exploration: epsilon falls linearly from its start to
its end over the first ``steps`` steps, then stays.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, lecun_normal
from rtrl.cells.base import step as cell_step
from rtrl.gradients.base import Estimator

LEAKY_SLOPE = 0.01  # PyTorch's LeakyReLU default, which stream-x uses
LAYER_NORM_EPS = 1e-5


def sparse_weights(key: jax.Array, fan_out: int, fan_in: int, sparsity: float) -> jax.Array:
    """(fan_out, fan_in) weights, uniform in +-1/sqrt(fan_in), with ceil(sparsity * fan_in)
    (at most fan_in - 1) of each row's entries zero, chosen at random per row."""
    k_values, k_zeros = jax.random.split(key)
    bound = 1.0 / math.sqrt(fan_in)
    w = jax.random.uniform(k_values, (fan_out, fan_in), minval=-bound, maxval=bound)
    zeros = min(math.ceil(sparsity * fan_in), fan_in - 1)
    # each row's entries ranked by a random draw: the `zeros` lowest ranks are cut
    ranks = jnp.argsort(jnp.argsort(jax.random.uniform(k_zeros, (fan_out, fan_in)), axis=1), axis=1)
    return jnp.where(ranks < zeros, 0.0, w)


def layer_norm(x: jax.Array) -> jax.Array:
    """LayerNorm without gain or bias, over the whole vector."""
    return (x - x.mean()) / jnp.sqrt(x.var() + LAYER_NORM_EPS)


def linear_init(key: jax.Array, fan_in: int, fan_out: int, sparsity: float) -> dict:
    w = (sparse_weights(key, fan_out, fan_in, sparsity) if sparsity > 0
         else lecun_normal(key, (fan_out, fan_in), fan_in))  # fmt: skip
    return {"w": w, "b": jnp.zeros((fan_out,), w.dtype)}


class StreamNetwork(NamedTuple):
    trunk: Estimator | Cell
    init: Callable[[jax.Array, int], dict]  # (key, observation size) -> params
    # (params, estimator state, observation, reset) -> (outputs, estimator state); reset: the
    # observation starts a new episode, so the trunk restarts before reading it
    step: Callable[[dict, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
    # (params, estimator state, observation) -> outputs of the observation read from that
    # state, leaving it as it is (an ended episode's final observation)
    outputs_after: Callable[[dict, Any, jax.Array], jax.Array]

    def init_state(self, params: dict) -> Any:
        return self.trunk.init(params["trunk"]) if isinstance(self.trunk, Estimator) else ()


def stream_network(
    trunk: Estimator | Cell,
    outputs: int,
    encoder_sizes: Sequence[int] = (),
    layer_norm_on: bool = True,
    sparsity: float = 0.0,
) -> StreamNetwork:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    stateless = isinstance(trunk, Cell)
    cell = trunk if stateless else trunk.cell

    def init(key: jax.Array, observation_size: int) -> dict:
        k_encoder, k_trunk, k_head = jax.random.split(key, 3)
        sizes = [observation_size, *encoder_sizes]
        keys = jax.random.split(k_encoder, max(len(encoder_sizes), 1))
        encoder = [linear_init(k, i, o, sparsity) for k, i, o in zip(keys, sizes, sizes[1:])]
        return {"encoder": encoder, "trunk": cell.init(k_trunk, sizes[-1]),
                "head": linear_init(k_head, cell.num_features, outputs, sparsity)}  # fmt: skip

    def encode(params, observation):
        x = observation
        for layer in params["encoder"]:
            x = layer["w"] @ x + layer["b"]
            x = jax.nn.leaky_relu(layer_norm(x) if layer_norm_on else x, LEAKY_SLOPE)
        return x

    def head(params, features):
        return params["head"]["w"] @ features + params["head"]["b"]

    def step(params, est_state, observation, reset):
        x = encode(params, observation)
        if stateless:
            return head(params, cell.readout(params["trunk"]["readout"], {}, x)), est_state
        features, est_state = trunk.step(params["trunk"], est_state, x, reset)
        return head(params, features), est_state

    def outputs_after(params, est_state, observation):
        if stateless:
            return step(params, est_state, observation, True)[0]
        x = encode(params, observation)
        _, features = cell_step(cell, params["trunk"], est_state.cell_state, x)
        return head(params, features)

    return StreamNetwork(trunk, init, step, outputs_after)


def epsilon_greedy_schedule(
    start: float, end: float, steps: int
) -> Callable[[jax.Array], jax.Array]:
    """epsilon at step t: linear from ``start`` to ``end`` over ``steps`` steps, then ``end``."""

    def epsilon(t):
        fraction = jnp.minimum(t / max(steps, 1), 1.0)
        return start + fraction * (end - start)

    return epsilon
