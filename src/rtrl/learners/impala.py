"""IMPALA-style actor-critic with V-trace, and RTRL in it (R2AC, Irie et al. 2023).

Actors step ``num_envs`` environments for a segment of M steps with the behaviour policy,
carrying each environment's trunk carry (recurrent state **and RTRL traces**) from one segment to
the next. For every segment they keep the carry before its first step. The learner re-runs each
segment from that stored carry with the current parameters, continuing the stored traces, and
computes the V-trace targets and the IMPALA loss:

    policy gradient  -sum_t rho_t^pg (r_t + gamma v_{t+1} - V(x_t)) log pi(a_t | x_t)
    baseline         1/2 sum_t (v_t - V(x_t))^2          (times ``baseline_coef``)
    entropy          -sum_t H(pi(. | x_t))               (times ``entropy_coef``)

summed over the segment and over the batch of segments (as IMPALA's reference learners do; the
step size, RMSProp's eps and the gradient clip assume that scale), then updates once per batch.

Which parameter gets which gradient (the agent is ``rtrl.learners.trunks.recurrent_agent``):

- RTRL trunk (``rtrl_trunk``, e.g. an eLSTM with ``columnar_rtrl``): the recurrent parameters get
  the loss's gradient through the traces, so credit reaches back to the episode's start, not just
  to the segment's. The traces carried in from earlier segments were computed with the
  parameters of their time (the actors'); within the segment they continue with the current
  ones. The encoder gets the one-step (immediate) gradient through the trunk's input at every
  step; the heads exact gradients. Nothing is backpropagated through the segment in time.
- BPTT trunk (``bptt_trunk``): every parameter is backpropagated through the segment from the
  stored state, truncated at the segment's start (the T-BPTT baseline, T = M).
- Feed-forward trunk (``feedforward_trunk``): no memory.

One RTRL layer only: stacking RTRL layers makes a layer's traces depend on the layers below it,
whose exact RTRL costs what dense RTRL costs (the case the paper calls expensive). The library
does not stack them; deeper agents put feed-forward layers before (the encoder) or after (the
heads) the one recurrent layer.

V-trace (Espeholt et al. 2018) corrects for the actors' policy lagging the learner's. Here the
actors and the learner share one process and the learner's parameters, so the ratios are 1 up
to float rounding unless ``behaviour_lag`` holds the actors' parameters back, and the V-trace
targets are then n-step returns. Episodes cut short by a time limit bootstrap their last step
from the value of the observation they ended in.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rtrl.learners.optim import clipped_rmsprop
from rtrl.learners.policies import Distribution
from rtrl.learners.trunks import (
    Agent,
    Carry,
    EnvCarry,
    Step,
    Trunk,
    act,
    initial_envs,
    recurrent_agent,
    segment_actor_trunk,
)

Metrics = dict[str, jax.Array]


class VTrace(NamedTuple):
    targets: jax.Array  # v_t, the value targets
    pg_advantages: jax.Array  # rho_t^pg (r_t + gamma v_{t+1} - V(x_t))


def vtrace(
    log_rhos: jax.Array,
    rewards: jax.Array,
    values: jax.Array,
    bootstrap_value: jax.Array,
    discounts: jax.Array,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
    pg_rho_bar: float | None = None,
    truncation_bootstrap: jax.Array | None = None,
) -> VTrace:
    """V-trace targets and policy-gradient advantages, time first (T, ...).

    ``log_rhos[t]`` = log pi(a_t|x_t) - log mu(a_t|x_t); ``values[t]`` = V(x_t);
    ``bootstrap_value`` = V(x_T); ``discounts[t]`` = gamma where the episode goes on after step
    t, 0 where it ended; ``truncation_bootstrap[t]`` = gamma V(final observation) where the
    episode was cut short at t, else 0. With rho-bar = c-bar = 1 and on-policy data (log_rhos 0)
    the targets are n-step returns bootstrapped from V(x_T). Both outputs are constants for the
    gradient.
    """
    rhos = jnp.exp(log_rhos)
    clipped_rhos = jnp.minimum(rho_bar, rhos)
    cs = jnp.minimum(c_bar, rhos)
    pg_rhos = clipped_rhos if pg_rho_bar is None else jnp.minimum(pg_rho_bar, rhos)
    extra = 0.0 if truncation_bootstrap is None else truncation_bootstrap
    next_values = jnp.concatenate([values[1:], bootstrap_value[None]])
    deltas = clipped_rhos * (rewards + discounts * next_values + extra - values)

    def backwards(acc, inputs):
        delta, discount, c = inputs
        acc = delta + discount * c * acc
        return acc, acc

    _, corrections = jax.lax.scan(
        backwards, jnp.zeros_like(bootstrap_value), (deltas, discounts, cs), reverse=True
    )
    targets = values + corrections
    next_targets = jnp.concatenate([targets[1:], bootstrap_value[None]])
    pg_advantages = pg_rhos * (rewards + discounts * next_targets + extra - values)
    return VTrace(jax.lax.stop_gradient(targets), jax.lax.stop_gradient(pg_advantages))


class ImpalaConfig(NamedTuple):
    """Defaults: the R2AC reference's Atari and ProcGen settings where it has them (segment 50,
    32 segments per update, entropy 0.01, baseline 0.5, gamma 0.99, rewards clipped to
    [-1, 1])."""

    gamma: float = 0.99
    segment_length: int = 50  # M: steps per segment (the reference's unroll length)
    num_envs: int = 32  # environments, so segments per update (the reference's batch size)
    baseline_coef: float = 0.5
    entropy_coef: float = 0.01
    rho_bar: float = 1.0
    c_bar: float = 1.0
    reward_clip: float = 1.0  # rewards enter the loss clipped to [-c, c]; 0: unclipped
    hidden: int = 64  # encoder width (0: the trunk reads observations); the heads are linear
    torso: str = "resnet"  # images: IMPALA's residual network, or "nature" (torsos.TORSOS)
    behaviour_lag: int = 0  # updates the actors' parameters trail the learner's (0: none)
    bootstrap_truncation: bool = True  # False: a time limit ends episodes like a terminal state


class Segment(NamedTuple):
    """M steps of every environment: steps time first (M, num_envs, ...), then per
    environment the carry before the first step and what follows the last."""

    steps: Step
    first_carry: Carry
    next_observation: jax.Array  # x_M, the bootstrap value's observation
    next_reset: jax.Array


class ImpalaState(NamedTuple):
    params: optax.Params
    opt_state: optax.OptState
    behaviour: tuple  # the actors' parameters: the last behaviour_lag + 1 learner parameters
    envs: EnvCarry  # batched over num_envs
    key: jax.Array


class Impala(NamedTuple):
    agent: Agent
    # key -> (params, optimiser state): the learner alone (actors stepping host environments)
    init_learner: Callable[[jax.Array], tuple[optax.Params, optax.OptState]]
    # (params, opt_state, segment) -> (params, opt_state, metrics): one update; the metrics
    # include the segment's finished episodes (``segment_metrics``)
    update: Callable[..., tuple[optax.Params, optax.OptState, Metrics]]
    # (params, segment) -> (policy outputs (M, E, ...), values (M + 1, E)): the re-run segment
    unroll: Callable[[optax.Params, Segment], tuple[jax.Array, jax.Array]]
    # (params, segment) -> (loss, metrics): ``segment_loss`` of the re-run segment
    loss: Callable[[optax.Params, Segment], tuple[jax.Array, Metrics]]
    # With a JAX environment, actors and learner compiled together (None for host ones):
    init: Callable[[jax.Array], ImpalaState] | None
    iteration: Callable[[ImpalaState], tuple[ImpalaState, Metrics]] | None  # segment + update
    # (behaviour params, envs, key) -> (envs, segment)
    collect: Callable[[optax.Params, EnvCarry, jax.Array], tuple[EnvCarry, Segment]] | None


def segment_metrics(segment: Segment) -> Metrics:
    """Episodes that ended in the segment and their mean undiscounted return."""
    steps = segment.steps
    finished = steps.done.sum()
    total = jnp.sum(jnp.where(steps.done, steps.episode_return, 0.0))
    return {"episodes": finished, "episode_return": total / jnp.maximum(finished, 1)}


def segment_loss(
    dist: Distribution, config: ImpalaConfig, outputs: jax.Array, values: jax.Array, steps: Step
) -> tuple[jax.Array, Metrics]:
    """The IMPALA loss of a batch of segments from the learner's policy outputs (M, E, ...) and
    values (M + 1, E), the last one the bootstrap value, summed over time and segments."""
    log_probs = jax.vmap(jax.vmap(dist.log_prob))(outputs, steps.action)
    entropies = jax.vmap(jax.vmap(dist.entropy))(outputs)
    rewards = steps.reward
    if config.reward_clip > 0:
        rewards = jnp.clip(rewards, -config.reward_clip, config.reward_clip)
    discounts = config.gamma * (1.0 - steps.done.astype(values.dtype))
    log_rhos = log_probs - steps.log_prob
    returns = vtrace(
        log_rhos, rewards, values[:-1], jax.lax.stop_gradient(values[-1]), discounts,
        config.rho_bar, config.c_bar, truncation_bootstrap=config.gamma * steps.truncation_value,
    )  # fmt: skip
    # Sums over time and segments, not means, as in IMPALA's reference learners: the step size,
    # RMSProp's eps and the gradient-norm clip are set for gradients of that scale.
    policy_loss = -jnp.sum(returns.pg_advantages * log_probs)
    baseline_loss = 0.5 * jnp.sum((returns.targets - values[:-1]) ** 2)
    entropy = jnp.sum(entropies)
    total = policy_loss + config.baseline_coef * baseline_loss - config.entropy_coef * entropy
    metrics = {
        "policy_loss": policy_loss,
        "baseline_loss": baseline_loss,
        "entropy": entropy / entropies.size,
        "mean_rho": jnp.mean(jnp.exp(log_rhos)),
    }
    return total, metrics


def check_config(config: ImpalaConfig) -> None:
    for name in ("segment_length", "num_envs"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.behaviour_lag < 0:
        raise ValueError(f"behaviour_lag must be 0 or more, got {config.behaviour_lag}")
    if config.rho_bar <= 0 or config.c_bar <= 0:
        raise ValueError("rho_bar and c_bar must be positive (1: the IMPALA paper's)")


def impala(
    env,
    trunk: Trunk,
    config: ImpalaConfig = ImpalaConfig(),
    optimizer: optax.GradientTransformation | None = None,
) -> Impala:
    """The learner for ``env``: a JAX ``ControlEnv`` (wrapped with ``auto_reset`` and
    ``record_episode_returns``), whose actors are compiled with the learner; or host
    environments with ``observation_shape`` and ``action_space`` (EnvPool's), stepped by a host
    loop through ``agent`` and ``update``. ``optimizer`` receives the loss gradient; None: the
    reference's, RMSProp (step size 6e-4, decay 0.99, eps 0.01) after clipping the global
    gradient norm to 40."""
    check_config(config)
    if optimizer is None:
        optimizer = clipped_rmsprop(6e-4, max_grad_norm=40.0, eps=0.01)
    compiled_env = not hasattr(env, "observation_shape")  # host environments declare it
    shape = env.observation_size if compiled_env else env.observation_shape
    agent = recurrent_agent(shape, env.action_space, trunk, config.hidden, (), config.torso)
    dist = agent.dist
    batched_step_encoded = jax.vmap(agent.step_encoded, in_axes=(None, 0, 0, 0))

    def init_learner(key: jax.Array):
        params = agent.init(key)
        return params, optimizer.init(params)

    def init(key: jax.Array) -> ImpalaState:
        k_params, k_envs, key = jax.random.split(key, 3)
        params, opt_state = init_learner(k_params)
        envs = initial_envs(agent, env, params, k_envs, config.num_envs)
        behaviour = (params,) * (config.behaviour_lag + 1)
        return ImpalaState(params, opt_state, behaviour, envs, key)

    # Exact RTRL on an element-wise cell: the actors step the state alone and bring the traces
    # up to the segment's end at once (rtrl.gradients.columnar.SegmentTraces).
    segments = trunk.segment_traces
    actor = agent
    if segments is not None:
        actor = recurrent_agent(shape, env.action_space, segment_actor_trunk(trunk),
                                config.hidden, (), config.torso)  # fmt: skip

    def collect(params, envs: EnvCarry, key):
        def per_step(envs, step_key):
            keys = jax.random.split(step_key, config.num_envs)
            envs, step = jax.vmap(
                lambda e, k: act(actor, env, params, e, k, config.bootstrap_truncation)
            )(envs, keys)
            return envs, (step, envs.carry.terms if segments is not None else None)

        first_carry = envs.carry
        if segments is not None:
            _, carry = jax.vmap(segments.step, in_axes=(None, 0, 0, 0))(
                params["cell"],
                first_carry,
                jax.vmap(agent.encode, in_axes=(None, 0))(params, envs.observation),
                envs.reset,
            )  # fmt: skip  (only for the terms' shapes: a carry the first step overwrites)
            envs = envs._replace(carry=carry._replace(trace_state=first_carry))
        envs, (steps, terms) = jax.lax.scan(
            per_step, envs, jax.random.split(key, config.segment_length)
        )
        if segments is not None:
            traces = jax.vmap(segments.advance, in_axes=(None, 0, 1))(
                params["cell"], first_carry.traces, terms
            )
            cell_state = envs.carry.trace_state.cell_state
            envs = envs._replace(carry=first_carry._replace(cell_state=cell_state, traces=traces))
        return envs, Segment(steps, first_carry, envs.observation, envs.reset)

    def unroll(params, segment: Segment):
        """The segment re-run from its stored first carry with ``params``: policy outputs of
        its M steps and values of its M steps and of the observation after it. Every
        observation is encoded in one batch (M + 1 times num_envs images through a torso),
        then the trunk steps through them."""

        def per_step(carry, inputs):
            x, reset = inputs
            output, value, carry = batched_step_encoded(params, carry, x, reset)
            return carry, (output, value)

        observations = jnp.concatenate([segment.steps.observation, segment.next_observation[None]])
        resets = jnp.concatenate([segment.steps.reset, segment.next_reset[None]])
        flat = observations.reshape(-1, *observations.shape[2:])
        xs = jax.vmap(agent.encode, in_axes=(None, 0))(params, flat)
        xs = xs.reshape(*observations.shape[:2], -1)
        if agent.trunk.run_segment is None:
            _, (outputs, values) = jax.lax.scan(per_step, segment.first_carry, (xs, resets))
            return outputs[:-1], values
        # Exact RTRL on an element-wise cell: the whole segment at once, no trace per step.
        features = jax.vmap(agent.trunk.run_segment, in_axes=(None, 0, 1, 1), out_axes=1)(
            params["cell"], segment.first_carry, xs, resets
        )
        outputs, values = jax.vmap(jax.vmap(agent.heads, (None, 0)), (None, 0))(params, features)
        return outputs[:-1], values

    def loss(params, segment: Segment):
        outputs, values = unroll(params, segment)
        return segment_loss(dist, config, outputs, values, segment.steps)

    def update(params, opt_state, segment: Segment):
        grads, metrics = jax.grad(loss, has_aux=True)(params, segment)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        metrics = {**metrics, **segment_metrics(segment)}
        return optax.apply_updates(params, updates), opt_state, metrics

    def iteration(state: ImpalaState):
        k_collect, key = jax.random.split(state.key)
        envs, segment = collect(state.behaviour[0], state.envs, k_collect)
        params, opt_state, metrics = update(state.params, state.opt_state, segment)
        behaviour = (*state.behaviour[1:], params)
        return ImpalaState(params, opt_state, behaviour, envs, key), metrics

    if not compiled_env:
        return Impala(agent, init_learner, update, unroll, loss, None, None, None)
    return Impala(agent, init_learner, update, unroll, loss, init, iteration, collect)
