"""The recurrent agent the batched control learners share (PPO, IMPALA-style V-trace).

The agent: observation -> encoder (an MLP, or a convolutional torso for images) -> trunk ->
policy head and value head. A trunk says
how the recurrent part runs and so which gradient its parameters get:

- ``rtrl_trunk(estimator)``: the carry between steps is the estimator's state (recurrent state and
  RTRL traces); a loss's gradient reaches the recurrent parameters through the traces (exact RTRL
  with ``columnar_rtrl`` on an element-wise cell), and the encoder gets the one-step (immediate)
  gradient through the trunk's input.
- ``bptt_trunk(cell)``: the carry is the cell state; a learner re-runs sequences from a stored
  state and backpropagates through them, so every parameter gets exact credit within the
  sequence and none across its start.
- ``feedforward_trunk(units)``: no recurrence, one tanh layer; the feed-forward baseline.

A step's ``reset`` flag means "this observation starts a new episode": state and traces restart
before it is read. ``act`` is one step of one environment with the policy, shared by the
learners' rollouts; a time-limit truncation records the value of the observation the episode
ended in (read from the carry before the reset, leaving the carry as it is), from which the
episode's last TD error bootstraps.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rtrl.cells import feedforward
from rtrl.cells.base import Cell, Params, State
from rtrl.cells.base import step as cell_step
from rtrl.gradients.base import Estimator, reset_then_step
from rtrl.learners.policies import (
    Distribution,
    distribution_for,
    mlp_apply,
    mlp_init,
    policy_output,
    policy_params,
)
from rtrl.learners.torsos import image_torso
from rtrl.spaces import ActionSpace

# The trunk's carry between steps: an estimator state (RTRL trunks) or a cell state (BPTT).
Carry = Any


class Trunk(NamedTuple):
    """How the recurrent part runs: ``step(cell_params, carry, x, reset) -> (features, carry)``.
    ``per_step`` trunks can be re-run one step from stored carries (RTRL); the others over
    sequences (BPTT). ``cell_state(carry)`` is the recurrent state inside a carry."""

    cell: Cell
    init_carry: Callable[[Params], Carry]
    step: Callable[[Params, Carry, jax.Array, jax.Array], tuple[jax.Array, Carry]]
    per_step: bool
    cell_state: Callable[[Carry], State]
    # (cell params, carry, xs (M, d), resets (M,)) -> features (M, f): ``step`` over a segment
    # with the same features and gradient, for learners that re-run whole segments (None: they
    # step through it); the estimator's ``run_segment``
    run_segment: Callable[[Params, Carry, jax.Array, jax.Array], jax.Array] | None = None
    # Actors that carry the traces across segments but read only the state within one: the
    # estimator's ``segment_traces`` (``rtrl.gradients.columnar.SegmentTraces``), or None
    segment_traces: Any = None


def rtrl_trunk(estimator: Estimator) -> Trunk:
    if estimator.trainable is not None:
        raise ValueError("the control learners train every trunk parameter; staged networks "
                         "are for TD prediction")  # fmt: skip
    return Trunk(estimator.cell, estimator.init, estimator.step, per_step=True,
                 cell_state=lambda carry: carry.cell_state,
                 run_segment=estimator.run_segment,
                 segment_traces=estimator.segment_traces)  # fmt: skip


def segment_actor_trunk(trunk: Trunk) -> Trunk:
    """The trunk as actors run it inside a segment: the state steps, the traces wait for the
    segment's end (``trunk.segment_traces``); its carry is a ``SegmentCarry``."""
    return trunk._replace(step=trunk.segment_traces.step,
                          cell_state=lambda carry: carry.trace_state.cell_state)  # fmt: skip


def bptt_trunk(cell: Cell) -> Trunk:
    def step(params, state, x, reset):
        state, features = reset_then_step(cell, params, state, x, reset)
        return features, state

    return Trunk(cell, cell.initial_state, step, per_step=False, cell_state=lambda carry: carry)


def feedforward_trunk(units: int) -> Trunk:
    trunk = bptt_trunk(feedforward(units))
    return trunk._replace(per_step=True)  # nothing is carried, so any step runs alone


# (params, carry, observation or its encoding, reset) -> (policy output, value, carry)
AgentStep = Callable[[Params, Carry, jax.Array, jax.Array], tuple[jax.Array, jax.Array, Carry]]


class Agent(NamedTuple):
    space: ActionSpace
    dist: Distribution
    trunk: Trunk
    init: Callable[[jax.Array], Params]
    step: AgentStep
    # (params, carry, observation) -> V(observation) read from carry, the carry left as it is
    value_after: Callable[[Params, Carry, jax.Array], jax.Array]
    # step = step_encoded after encode: the encoder is stateless, so a learner re-running a
    # sequence encodes all its observations in one batch before stepping the trunk
    encode: Callable[[Params, jax.Array], jax.Array]
    step_encoded: AgentStep
    # (params, features) -> (policy output, value): the heads on the trunk's features
    heads: Callable[[Params, jax.Array], tuple[jax.Array, jax.Array]]


def recurrent_agent(
    observation_shape: int | tuple[int, ...],
    space: ActionSpace,
    trunk: Trunk,
    encoder_width: int = 64,
    head_widths: tuple[int, ...] = (64,),
    torso: str = "resnet",
) -> Agent:
    """Encoder -> trunk -> policy and value MLPs with ``head_widths`` hidden tanh layers (():
    linear heads). The encoder is an MLP of ``encoder_width`` tanh units for vector observations
    (``observation_shape`` an int; 0: none, the trunk reads observations), and for images (a
    (height, width, channels) shape) the convolutional ``torso`` (``torsos.TORSOS``: IMPALA's
    ``resnet`` or the ``nature`` network) ending in ``encoder_width`` ReLU units. The policy's
    last layer starts at 1% scale."""
    image = not isinstance(observation_shape, int)
    if image and not encoder_width:
        raise ValueError("image observations need the convolutional torso: set hidden > 0")
    image_encoder = image_torso(torso) if image else None
    dist = distribution_for(space)
    cell = trunk.cell

    def init(key):
        k_enc, k_cell, k_actor, k_critic = jax.random.split(key, 4)
        cell_inputs = encoder_width or observation_shape
        if image:
            encoder = image_encoder.init(k_enc, observation_shape, encoder_width)
        else:
            encoder = mlp_init(k_enc, [observation_shape, encoder_width]) if encoder_width else []
        params = {
            "encoder": encoder,
            "cell": cell.init(k_cell, cell_inputs),
            "actor": mlp_init(
                k_actor, [cell.num_features, *head_widths, dist.output_size], last_scale=0.01
            ),
            "critic": mlp_init(k_critic, [cell.num_features, *head_widths, 1]),
        }
        dtype = params["critic"][0]["w"].dtype
        return {**params, **policy_params(space, dtype)}

    def encode(params, observation):
        if image:
            return image_encoder.apply(params["encoder"], observation)
        return mlp_apply(params["encoder"], observation, activate_last=True)

    def heads(params, features):
        output = policy_output(space, mlp_apply(params["actor"], features), params)
        return output, mlp_apply(params["critic"], features)[0]

    def step_encoded(params, carry, x, reset):
        features, carry = trunk.step(params["cell"], carry, x, reset)
        return *heads(params, features), carry

    def step(params, carry, observation, reset):
        return step_encoded(params, carry, encode(params, observation), reset)

    def value_after(params, carry, observation):
        x = encode(params, observation)
        _, features = cell_step(cell, params["cell"], trunk.cell_state(carry), x)
        return mlp_apply(params["critic"], features)[0]

    return Agent(space, dist, trunk, init, step, value_after, encode, step_encoded, heads)


class EnvCarry(NamedTuple):
    """Per environment, between steps."""

    env_state: Any  # the environment's own
    observation: jax.Array
    reset: jax.Array  # the observation starts an episode
    carry: Carry  # the trunk's


def initial_envs(agent: Agent, env, params: Params, key: jax.Array, num_envs: int) -> EnvCarry:
    """``num_envs`` environments just reset, each with the trunk's initial carry."""
    env_states, observations = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    carry = agent.trunk.init_carry(params["cell"])
    carries = jax.tree.map(lambda a: jnp.broadcast_to(a, (num_envs, *a.shape)), carry)
    return EnvCarry(env_states, observations, jnp.ones((num_envs,), bool), carries)


class Step(NamedTuple):
    """What one step of one environment records (rollouts stack them time first)."""

    observation: jax.Array
    reset: jax.Array  # the observation starts an episode
    action: jax.Array
    log_prob: jax.Array  # of the action under the policy that chose it
    value: jax.Array
    reward: jax.Array
    done: jax.Array  # the episode ended on this step (the next observation starts a new one)
    truncation_value: jax.Array  # V of the observation a truncated episode ended in; else 0
    episode_return: jax.Array  # of the episode that ended here (where done)


def act(
    agent: Agent, env, params: Params, envs: EnvCarry, key: jax.Array,
    bootstrap_truncation: bool = True,
) -> tuple[EnvCarry, Step]:  # fmt: skip
    """One step of one environment (wrapped with ``auto_reset`` and ``record_episode_returns``)
    with the policy of ``params``."""
    k_act, k_env = jax.random.split(key)
    output, value, carry = agent.step(params, envs.carry, envs.observation, envs.reset)
    action = agent.dist.sample(k_act, output)
    env_state, observation, reward, terminated, truncated, info = env.step(
        k_env, envs.env_state, action
    )
    done = terminated | truncated
    truncation_value = jnp.zeros_like(value)
    if bootstrap_truncation:
        final_value = agent.value_after(params, carry, info["final_observation"])
        truncation_value = jnp.where(truncated & ~terminated, final_value, 0.0)
    record = Step(
        envs.observation, envs.reset, action, agent.dist.log_prob(output, action), value,
        reward, done, truncation_value, info["episode_return"],
    )  # fmt: skip
    return EnvCarry(env_state, observation, done, carry), record
