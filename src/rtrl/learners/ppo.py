"""PPO with a recurrent trunk: real-time PPO with RTRL traces, and recurrent PPO with BPTT.

The agent: observation -> encoder MLP (tanh) -> recurrent trunk -> actor MLP and critic MLP.
The two variants differ only in how the trunk is re-run when the loss is computed:

- ``rtrl_trunk(estimator)`` (Elelimy et al. 2024): the rollout stores, for every step, the carry
  *before* the step (recurrent state and RTRL traces). A minibatch of single steps re-runs one
  step from its stored carry, so the loss gradient reaches the recurrent parameters through the
  stored traces. ``traces="stale"`` reuses the rollout-time carries in every epoch;
  ``traces="fresh"`` re-scans the rollout with the current parameters before each epoch (from
  the rollout's first stored carry) and stores the pre-step carries again. Gradients: the
  recurrent parameters get the estimator's credit (exact RTRL with ``columnar_rtrl`` on an
  element-wise cell), the encoder gets the one-step (immediate) gradient through the trunk's
  input, the heads get exact gradients.
- ``bptt_trunk(cell)``: the rollout is cut into sequences of ``sequence_length`` steps; each
  re-runs the cell from the state stored at its first step, restarting at episode starts, and
  every parameter gets exact backpropagation through the sequence.

A step's ``reset`` flag means "this observation starts a new episode": state and traces restart
before it is read. PPO's pieces: GAE(lambda) with done masks, the clipped surrogate, value
clipping, an entropy bonus, per-minibatch advantage normalisation, global gradient-norm
clipping and Adam. Observation and reward normalisation are environment wrappers
(``rtrl.envs.control``).

Episodes cut short by a time limit (``truncated`` without ``terminated``) end the advantage
recursion like any episode end, but their last TD error bootstraps from the value of the
observation they ended in (read by the trunk before its reset), so that a time limit is not
mistaken for a terminal state. ``bootstrap_truncation=False`` treats truncation as termination,
as many PPO implementations do.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rtrl.learners.optim import clipped_adam
from rtrl.learners.trunks import (
    Carry,
    EnvCarry,
    Trunk,
    act,
    initial_envs,
    recurrent_agent,
)


class PPOConfig(NamedTuple):
    """Defaults: the reference hyperparameters (Ant-P, RTU paper)."""

    gamma: float = 0.99
    gae_lambda: float = 0.95
    rollout_length: int = 2048  # steps per environment per update
    num_envs: int = 1
    epochs: int = 4
    minibatches: int = 32
    clip: float = 0.2
    value_clip: float = 0.2  # 0: no value clipping
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    normalize_advantages: bool = True
    hidden: int = 64  # encoder and head width (0: none; the trunk reads observations)
    traces: str = "stale"  # RTRL trunks: stale | fresh
    sequence_length: int = 64  # BPTT trunks: steps per re-run sequence
    bootstrap_truncation: bool = True  # False: a time limit ends episodes like a terminal state


Metrics = dict[str, jax.Array]


class Rollout(NamedTuple):
    """One rollout, time first: leaves of shape (T, num_envs, ...)."""

    observation: jax.Array
    reset: jax.Array  # the observation starts an episode
    carry: Carry  # the trunk's carry before the step
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array  # the episode ended on this step (the next observation starts a new one)
    truncation_value: jax.Array  # V of the observation a truncated episode ended in; else 0
    episode_return: jax.Array  # of the episode that ended here (where done)


class PPOState(NamedTuple):
    params: optax.Params
    opt_state: optax.OptState
    envs: EnvCarry  # batched over num_envs
    key: jax.Array


class PPO(NamedTuple):
    init: Callable[[jax.Array], PPOState]
    iteration: Callable[[PPOState], tuple[PPOState, Metrics]]  # one rollout and its update
    # (params, carry, observation, reset) -> (policy output, value, carry)
    agent_step: Callable[
        [optax.Params, Carry, jax.Array, jax.Array], tuple[jax.Array, jax.Array, Carry]
    ]
    # (params, envs, key) -> (envs, rollout, values of the observations after it)
    collect: Callable[[optax.Params, EnvCarry, jax.Array], tuple[EnvCarry, Rollout, jax.Array]]
    # (params, rollout) -> its pre-step carries re-scanned with params
    recompute_carries: Callable[[optax.Params, Rollout], Carry]
    # (params, batch) -> (log probabilities, entropies, values)
    evaluate: Callable[[optax.Params, Rollout], tuple[jax.Array, jax.Array, jax.Array]]
    # (params, batch, advantages, returns) -> (loss, metrics)
    loss: Callable[[optax.Params, Rollout, jax.Array, jax.Array], tuple[jax.Array, Metrics]]
    # (params, opt_state, rollout, last values, key) -> (params, opt_state, metrics)
    update: Callable[
        [optax.Params, optax.OptState, Rollout, jax.Array, jax.Array],
        tuple[optax.Params, optax.OptState, Metrics],
    ]


def gae(
    rewards: jax.Array,
    values: jax.Array,
    dones: jax.Array,
    last_value: jax.Array,
    gamma: float,
    lambda_: float,
    truncation_values: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """GAE(lambda), time first. ``dones[t]``: the episode ended at step t, so neither the value
    of the next observation nor later advantages flow back into it. ``truncation_values[t]``
    (zero where the episode did not end by truncation) is the value step t's TD error
    bootstraps from instead. Returns (advantages, returns = advantages + values)."""
    if truncation_values is None:
        truncation_values = jnp.zeros_like(values)

    def backwards(carry, inputs):
        next_value, next_advantage = carry
        reward, value, done, truncation_value = inputs
        continuing = 1.0 - done.astype(value.dtype)
        delta = reward + gamma * (continuing * next_value + truncation_value) - value
        advantage = delta + gamma * lambda_ * continuing * next_advantage
        return (value, advantage), advantage

    _, advantages = jax.lax.scan(
        backwards, (last_value, jnp.zeros_like(last_value)),
        (rewards, values, dones, truncation_values), reverse=True,
    )  # fmt: skip
    return advantages, advantages + values


def check_config(config: PPOConfig, trunk: Trunk) -> None:
    samples = config.rollout_length * config.num_envs
    if config.traces not in ("stale", "fresh"):
        raise ValueError(f"traces must be 'stale' or 'fresh', not {config.traces!r}")
    if trunk.per_step and samples % config.minibatches:
        raise ValueError(
            f"rollout_length * num_envs = {samples} must divide into {config.minibatches} "
            "minibatches"
        )
    if not trunk.per_step:
        if config.rollout_length % config.sequence_length:
            raise ValueError(
                f"rollout_length {config.rollout_length} must be a multiple of "
                f"sequence_length {config.sequence_length}"
            )
        sequences = samples // config.sequence_length
        if sequences % config.minibatches:
            raise ValueError(
                f"{sequences} sequences of {config.sequence_length} steps must divide into "
                f"{config.minibatches} minibatches; change minibatches or sequence_length"
            )


def ppo(
    env,
    trunk: Trunk,
    config: PPOConfig = PPOConfig(),
    optimizer: optax.GradientTransformation | None = None,
) -> PPO:
    """PPO on a JAX ``ControlEnv`` (already wrapped with ``auto_reset`` and
    ``record_episode_returns``) with the given trunk (see the module docstring). ``optimizer``
    receives the loss gradient; None: the reference's, Adam (step size 1e-4, eps 1e-5) after
    clipping the global norm to 0.5."""
    check_config(config, trunk)
    if optimizer is None:
        optimizer = clipped_adam(1e-4, max_grad_norm=0.5, eps=1e-5)
    hidden = (config.hidden,) if config.hidden else ()
    agent = recurrent_agent(env.observation_size, env.action_space, trunk, config.hidden, hidden)
    dist, agent_step = agent.dist, agent.step

    def init(key: jax.Array) -> PPOState:
        k_params, k_envs, key = jax.random.split(key, 3)
        params = agent.init(k_params)
        envs = initial_envs(agent, env, params, k_envs, config.num_envs)
        return PPOState(params, optimizer.init(params), envs, key)

    def env_step(params, envs: EnvCarry, key):
        """One step of one environment, recording the carry before it."""
        new_envs, step = act(agent, env, params, envs, key, config.bootstrap_truncation)
        return new_envs, Rollout(carry=envs.carry, **step._asdict())

    def collect(params, envs: EnvCarry, key):
        def per_step(envs, step_key):
            keys = jax.random.split(step_key, config.num_envs)
            return jax.vmap(env_step, in_axes=(None, 0, 0))(params, envs, keys)

        envs, rollout = jax.lax.scan(per_step, envs, jax.random.split(key, config.rollout_length))
        _, last_values, _ = jax.vmap(agent_step, in_axes=(None, 0, 0, 0))(
            params, envs.carry, envs.observation, envs.reset
        )
        return envs, rollout, last_values

    def recompute_carries(params, rollout: Rollout):
        """The pre-step carries re-scanned with ``params`` from the rollout's first carry."""

        def per_step(carries, inputs):
            observation, reset = inputs
            _, _, new = jax.vmap(agent_step, in_axes=(None, 0, 0, 0))(
                params, carries, observation, reset
            )
            return new, carries  # store the carry *before* the step

        first = jax.tree.map(lambda a: a[0], rollout.carry)
        _, carries = jax.lax.scan(per_step, first, (rollout.observation, rollout.reset))
        return carries

    def evaluate(params, batch: Rollout):
        """(log pi(a), entropy, value) for a batch: single steps from stored carries (leaves of
        shape (B, ...)) for per-step trunks, else sequences (leaves (B, L, ...)) re-run from
        each sequence's first stored carry."""

        def one_step(carry, observation, reset, action):
            output, value, _ = agent_step(params, carry, observation, reset)
            return dist.log_prob(output, action), dist.entropy(output), value

        if trunk.per_step:
            return jax.vmap(one_step)(batch.carry, batch.observation, batch.reset, batch.action)

        def sequence(seq: Rollout):
            def per_step(carry, inputs):
                observation, reset, action = inputs
                output, value, carry = agent_step(params, carry, observation, reset)
                return carry, (dist.log_prob(output, action), dist.entropy(output), value)

            first = jax.tree.map(lambda a: a[0], seq.carry)
            _, out = jax.lax.scan(per_step, first, (seq.observation, seq.reset, seq.action))
            return out

        return jax.vmap(sequence)(batch)

    def loss(params, batch: Rollout, advantages, returns):
        log_prob, entropy, value = evaluate(params, batch)
        if config.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        ratio = jnp.exp(log_prob - batch.log_prob)
        clipped = jnp.clip(ratio, 1.0 - config.clip, 1.0 + config.clip)
        policy_loss = jnp.mean(jnp.maximum(-advantages * ratio, -advantages * clipped))
        value_error = (value - returns) ** 2
        if config.value_clip > 0:
            value_clipped = batch.value + jnp.clip(
                value - batch.value, -config.value_clip, config.value_clip
            )
            value_error = jnp.maximum(value_error, (value_clipped - returns) ** 2)
        value_loss = 0.5 * jnp.mean(value_error)
        entropy = jnp.mean(entropy)
        total = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
        approx_kl = jnp.mean((ratio - 1.0) - (log_prob - batch.log_prob))
        metrics = {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
                   "approx_kl": approx_kl}  # fmt: skip
        return total, metrics

    def as_samples(tree):
        """(T, E, ...) leaves as (samples, ...): single steps, or sequences of L steps."""
        if trunk.per_step:
            return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), tree)
        length = config.sequence_length

        def sequences(a):  # (T, E, ...) -> (T/L * E, L, ...)
            a = a.reshape(-1, length, *a.shape[1:])
            return jnp.moveaxis(a, 2, 1).reshape(-1, length, *a.shape[3:])

        return jax.tree.map(sequences, tree)

    def minibatch_indices(samples: int, key):
        """A random split of the samples into (minibatches, B) indices. Each minibatch gathers
        its own rows inside the loop: shuffling the whole rollout first would copy every stored
        carry twice per epoch (the permutation, then the loop's slice)."""
        return jax.random.permutation(key, samples).reshape(config.minibatches, -1)

    def update(params, opt_state, rollout: Rollout, last_values, key):
        advantages, returns = gae(
            rollout.reward, rollout.value, rollout.done, last_values,
            config.gamma, config.gae_lambda, rollout.truncation_value,
        )  # fmt: skip

        def epoch(carry, epoch_key):
            params, opt_state = carry
            data = rollout
            if trunk.per_step and config.traces == "fresh":
                data = rollout._replace(carry=recompute_carries(params, rollout))
            samples = as_samples((data, advantages, returns))
            count = jax.tree.leaves(samples)[0].shape[0]

            def minibatch(carry, indices):
                params, opt_state = carry
                batch = jax.tree.map(lambda a: a[indices], samples)
                grads, metrics = jax.grad(loss, has_aux=True)(params, *batch)
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), metrics

            return jax.lax.scan(minibatch, (params, opt_state), minibatch_indices(count, epoch_key))

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(key, config.epochs)
        )
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    def iteration(state: PPOState):
        k_collect, k_update, key = jax.random.split(state.key, 3)
        envs, rollout, last_values = collect(state.params, state.envs, k_collect)
        params, opt_state, metrics = update(
            state.params, state.opt_state, rollout, last_values, k_update
        )
        finished = rollout.done.sum()
        metrics = {
            **metrics,
            "episodes": finished,
            "episode_return": jnp.sum(jnp.where(rollout.done, rollout.episode_return, 0.0))
            / jnp.maximum(finished, 1),
        }
        return PPOState(params, opt_state, envs, key), metrics

    return PPO(init, iteration, agent_step, collect, recompute_carries, evaluate, loss, update)
