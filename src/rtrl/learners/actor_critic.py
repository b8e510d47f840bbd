"""Real-time actor-critic: one update per step, eligibility traces for actor and critic.

At each step the agent reads x_{t+1} with r_{t+1} and ``done`` (x_{t+1} starts a new episode, so
gamma_{t+1} = 0 and the recurrent state and traces restart before reading it), then::

    h_{t+1}, V_{t+1}, pi(.|h_{t+1})        with the current parameters; a_{t+1} ~ pi
    delta_t = r_{t+1} + gamma_{t+1} V_{t+1} - V_t
    theta  <- theta + critic_opt(delta_t e^v_t) + actor_opt(delta_t e^pi_t + beta grad H(pi_{t+1}))
    e^v_{t+1}  = gamma_{t+1} lambda e^v_t  + grad V_{t+1}
    e^pi_{t+1} = gamma_{t+1} lambda e^pi_t + grad log pi(a_{t+1} | h_{t+1})

(the same ordering as ``rtrl.learners.td``; the entropy bonus is applied directly, not through
the trace). Both optimisers also receive delta_t as ``td_error``: with ObGD
(``rtrl.learners.optim.obgd``, kappa 3 for the actor and 2 for the critic) and
``entropy_by_td_error`` this is stream AC(lambda) (Elsayed et al. 2024), whose actor update is
delta_t e^pi + |delta_t| beta grad H, the entropy entering at sign(delta) beta as in its trace,
and whose step is bounded by the norm of that trace. Stream AC also carries the entropy term
forward in its trace, decayed; here it acts on its own step only.

An episode cut short by a time limit (``truncated``) starts the next one like any
other end, but its last TD error bootstraps from gamma V(x'), the value of the observation x' it
ended in, read by the trunk before its reset (``bootstrap_truncation=False``: as a terminal
state). Which parameter gets which gradient: the recurrent trunk's parameters get the
estimator's credit through time (exact RTRL with ``columnar_rtrl`` on an element-wise cell), the
trunk's readout and the actor and critic heads get exact per-step gradients. The trunk is shared
by actor and critic, or each has its own (``shared_trunk=False``).

The step is one pure function of (state, key, observation, reward, terminated, truncated,
final observation), so the same learner runs inside a compiled ``lax.scan`` with a JAX
environment or from a host loop.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, Sequence

import jax
import jax.numpy as jnp
import optax

from rtrl.cells.base import step as cell_step
from rtrl.gradients.base import Estimator, EstimatorState
from rtrl.learners.policies import (
    distribution_for,
    mlp_apply,
    mlp_init,
    policy_output,
    policy_params,
)
from rtrl.learners.streaming import encode, encoder_init
from rtrl.spaces import ActionSpace


class ACState(NamedTuple):
    # {"trunk" | "actor_trunk","critic_trunk", "encoders" (per trunk), "actor", "critic",
    #  ["log_std"]}
    params: optax.Params
    opt_state: tuple[optax.OptState, optax.OptState]  # the actor's, the critic's
    est_state: EstimatorState  # the trunk's (a pair without a shared trunk)
    critic_trace: optax.Params  # e^v, structure of params
    actor_trace: optax.Params  # e^pi
    value: jax.Array  # V of the last observation
    started: jax.Array  # False before the first observation (no TD error yet)


class ActorCriticInit(Protocol):
    def __call__(self, key: jax.Array, observation_size: int) -> ACState: ...


class ActorCriticStep(Protocol):
    def __call__(
        self,
        state: ACState,
        key: jax.Array,
        observation: jax.Array,
        reward: jax.Array,
        terminated: jax.Array | bool,
        truncated: jax.Array | bool = False,
        final_observation: jax.Array | None = None,
    ) -> tuple[ACState, jax.Array, dict[str, jax.Array]]:
        """(state, action, metrics)."""


class ActorCritic(NamedTuple):
    init: ActorCriticInit
    step: ActorCriticStep


def actor_critic(
    estimator: Estimator,
    action_space: ActionSpace,
    actor_optimizer: optax.GradientTransformation,
    critic_optimizer: optax.GradientTransformation,
    gamma: float = 0.99,
    lambda_: float = 0.9,
    entropy_coef: float = 0.0,
    shared_trunk: bool = True,
    head_hidden: int = 0,
    bootstrap_truncation: bool = True,
    entropy_by_td_error: bool = False,
    encoder_sizes: Sequence[int] = (),
    layer_norm: bool = False,
    sparsity: float = 0.0,
) -> ActorCritic:
    """Real-time actor-critic on any estimator's trunk (see the module docstring).

    ``head_hidden`` > 0 puts a tanh layer of that width in each head (else linear heads).
    ``encoder_sizes``: layers before each trunk (stream-x's, ``rtrl.learners.streaming.encode``,
    with LayerNorm where ``layer_norm``); ``sparsity`` > 0: stream-x's sparse initialisation of
    the encoder's and the heads' weights.
    """
    if estimator.trainable is not None:
        raise ValueError("actor-critic trains every trunk parameter; staged networks are for TD")
    cell = estimator.cell
    dist = distribution_for(action_space)
    actor_optimizer = optax.with_extra_args_support(actor_optimizer)
    critic_optimizer = optax.with_extra_args_support(critic_optimizer)
    trunks = ("trunk",) if shared_trunk else ("actor_trunk", "critic_trunk")

    def head_sizes(out: int) -> list[int]:
        hidden = [head_hidden] if head_hidden else []
        return [cell.num_features, *hidden, out]

    def init(key: jax.Array, observation_size: int) -> ACState:
        keys = jax.random.split(key, 4)
        encoder_keys = jax.random.split(jax.random.fold_in(key, 1), len(trunks))
        inputs = encoder_sizes[-1] if encoder_sizes else observation_size
        params = {name: cell.init(k, inputs) for name, k in zip(trunks, keys)}
        params["encoders"] = {name: encoder_init(k, observation_size, encoder_sizes, sparsity)
                              for name, k in zip(trunks, encoder_keys)}  # fmt: skip
        params["actor"] = mlp_init(keys[2], head_sizes(dist.output_size), last_scale=0.01,
                                   sparsity=sparsity)  # fmt: skip
        params["critic"] = mlp_init(keys[3], head_sizes(1), sparsity=sparsity)
        params.update(policy_params(action_space, params["critic"][0]["w"].dtype))
        est_state = tuple(estimator.init(params[name]) for name in trunks)
        zeros = jax.tree.map(jnp.zeros_like, params)
        dtype = params["critic"][0]["w"].dtype
        return ACState(
            params,
            (actor_optimizer.init(params), critic_optimizer.init(params)),
            est_state if not shared_trunk else est_state[0],
            zeros,
            zeros,
            jnp.zeros((), dtype),
            jnp.zeros((), bool),
        )

    def forward(params, est_state, observation, reset):
        states = (est_state,) if shared_trunk else est_state
        features, new_states = [], []
        for name, s in zip(trunks, states):
            x = encode(params["encoders"][name], observation, layer_norm)
            f, s = estimator.step(params[name], s, x, reset)
            features.append(f)
            new_states.append(s)
        actor_features, critic_features = features[0], features[-1]
        value = mlp_apply(params["critic"], critic_features)[0]
        output = policy_output(action_space, mlp_apply(params["actor"], actor_features), params)
        new_est_state = new_states[0] if shared_trunk else tuple(new_states)
        return (value, output), new_est_state

    def value_after(params, est_state, observation):
        """V of ``observation`` read from ``est_state``, leaving state and traces as they are."""
        critic_state = est_state if shared_trunk else est_state[-1]
        x = encode(params["encoders"][trunks[-1]], observation, layer_norm)
        _, features = cell_step(cell, params[trunks[-1]], critic_state.cell_state, x)
        return mlp_apply(params["critic"], features)[0]

    def step(state: ACState, key: jax.Array, observation, reward, terminated,
             truncated=False, final_observation=None):  # fmt: skip
        """``observation`` follows ``reward``; where the episode ended (``terminated`` or
        ``truncated``) it starts the next one and ``final_observation`` is the one the ended
        episode reached (needed to bootstrap at a truncation; None: treat it as termination)."""
        terminated, truncated = jnp.asarray(terminated, bool), jnp.asarray(truncated, bool)
        done = terminated | truncated
        (value, output), pullback, est_state = jax.vjp(
            lambda p: forward(p, state.est_state, observation, done), state.params, has_aux=True
        )
        action = dist.sample(key, output)
        no_value = jnp.zeros_like(value)
        (value_grad,) = pullback((jnp.ones_like(value), jnp.zeros_like(output)))
        (log_prob_grad,) = pullback((no_value, jax.grad(dist.log_prob)(output, action)))
        (entropy_grad,) = pullback((no_value, jax.grad(dist.entropy)(output)))

        discount = gamma * (1.0 - done.astype(value.dtype))
        target = reward + discount * value
        if bootstrap_truncation and final_observation is not None:
            final_value = value_after(state.params, state.est_state, final_observation)
            target = target + jnp.where(truncated & ~terminated, gamma * final_value, 0.0)
        delta = jnp.where(state.started, target - state.value, 0.0)
        critic_direction = jax.tree.map(lambda e: -delta * e, state.critic_trace)
        entropy_weight = entropy_coef * (jnp.abs(delta) if entropy_by_td_error else 1.0)
        actor_direction = jax.tree.map(
            lambda e, h: -(delta * e + entropy_weight * h), state.actor_trace, entropy_grad
        )
        actor_updates, actor_opt = actor_optimizer.update(
            actor_direction, state.opt_state[0], state.params, td_error=delta
        )
        critic_updates, critic_opt = critic_optimizer.update(
            critic_direction, state.opt_state[1], state.params, td_error=delta
        )
        params = optax.apply_updates(
            state.params, jax.tree.map(jnp.add, actor_updates, critic_updates)
        )
        decay = discount * lambda_ * state.started

        def decayed_plus(trace, grad):
            return jax.tree.map(lambda e, g: decay * e + g, trace, grad)

        new_state = ACState(
            params,
            (actor_opt, critic_opt),
            est_state,
            decayed_plus(state.critic_trace, value_grad),
            decayed_plus(state.actor_trace, log_prob_grad),
            value,
            jnp.ones((), bool),
        )
        metrics = {"value": value, "td_error": delta, "entropy": dist.entropy(output)}
        return new_state, action, metrics

    return ActorCritic(init, step)
