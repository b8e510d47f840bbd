"""The network of the streaming learners (stream-x, Elsayed et al. 2024; with a recurrent trunk,
Farr et al. 2026): observation -> encoder -> trunk -> linear head, with stream-x's stabilisers
as switches.

- Encoder: ``encoder_sizes`` layers, each Linear -> LayerNorm (``layer_norm``: over the layer's
  whole activation, with no gain or bias) -> LeakyReLU (slope 0.01); none: the trunk reads the
  observation.
- Trunk: an online estimator's cell (exact RTRL on an element-wise cell, T-BPTT(1), or
  ``stateless`` on the ``feedforward`` cell), whose recurrent parameters get the estimator's
  credit and the encoder the immediate gradient through the trunk's input (``rtrl.gradients``).
- Head: linear, to ``outputs`` values (Q-values, or h's in QRC(lambda)).
- ``sparsity`` > 0: stream-x's sparse initialisation of the encoder and head weights
  (``rtrl.learners.policies.sparse_weights``); 0: LeCun-normal weights. Biases start at zero.

``epsilon_greedy_schedule`` is stream Q's exploration: epsilon falls linearly from its start to
its end over the first ``steps`` steps, then stays.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rtrl.cells.base import step as cell_step
from rtrl.gradients.base import Estimator
from rtrl.learners.policies import mlp_apply, mlp_init

LEAKY_SLOPE = 0.01  # PyTorch's LeakyReLU default, which stream-x uses
LAYER_NORM_EPS = 1e-5


def layer_norm(x: jax.Array) -> jax.Array:
    """LayerNorm without gain or bias, over the whole vector."""
    return (x - x.mean()) / jnp.sqrt(x.var() + LAYER_NORM_EPS)


def encoder_init(key: jax.Array, observation_size: int, sizes: Sequence[int],
                 sparsity: float = 0.0) -> list[dict]:  # fmt: skip
    """The encoder's layers (none where ``sizes`` is empty)."""
    return mlp_init(key, [observation_size, *sizes], sparsity=sparsity)


def encode(layers: list[dict], x: jax.Array, layer_norm_on: bool) -> jax.Array:
    """Each layer: Linear -> LayerNorm (``layer_norm_on``) -> LeakyReLU."""
    for layer in layers:
        x = layer["w"] @ x + layer["b"]
        x = jax.nn.leaky_relu(layer_norm(x) if layer_norm_on else x, LEAKY_SLOPE)
    return x


class StreamNetwork(NamedTuple):
    estimator: Estimator
    init: Callable[[jax.Array, int], dict]  # (key, observation size) -> params
    # (params, estimator state, observation, reset) -> (outputs, estimator state); reset: the
    # observation starts a new episode, so the trunk restarts before reading it
    step: Callable[[dict, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
    # (params, estimator state, observation) -> outputs of the observation read from that
    # state, leaving it as it is (an ended episode's final observation)
    outputs_after: Callable[[dict, Any, jax.Array], jax.Array]

    def init_state(self, params: dict) -> Any:
        return self.estimator.init(params["trunk"])


def stream_network(
    estimator: Estimator,
    outputs: int,
    encoder_sizes: Sequence[int] = (),
    layer_norm_on: bool = True,
    sparsity: float = 0.0,
) -> StreamNetwork:
    cell = estimator.cell

    def init(key: jax.Array, observation_size: int) -> dict:
        k_encoder, k_trunk, k_head = jax.random.split(key, 3)
        encoder = encoder_init(k_encoder, observation_size, encoder_sizes, sparsity)
        inputs = encoder_sizes[-1] if encoder_sizes else observation_size
        head = mlp_init(k_head, [cell.num_features, outputs], sparsity=sparsity)
        return {"encoder": encoder, "trunk": cell.init(k_trunk, inputs), "head": head}

    def head(params, features):
        return mlp_apply(params["head"], features)

    def step(params, est_state, observation, reset):
        x = encode(params["encoder"], observation, layer_norm_on)
        features, est_state = estimator.step(params["trunk"], est_state, x, reset)
        return head(params, features), est_state

    def outputs_after(params, est_state, observation):
        x = encode(params["encoder"], observation, layer_norm_on)
        _, features = cell_step(cell, params["trunk"], est_state.cell_state, x)
        return head(params, features)

    return StreamNetwork(estimator, init, step, outputs_after)


def epsilon_greedy_schedule(
    start: float, end: float, steps: int
) -> Callable[[jax.Array], jax.Array]:
    """epsilon at step t: linear from ``start`` to ``end`` over ``steps`` steps, then ``end``."""

    def epsilon(t):
        fraction = jnp.minimum(t / max(steps, 1), 1.0)
        return start + fraction * (end - start)

    return epsilon
