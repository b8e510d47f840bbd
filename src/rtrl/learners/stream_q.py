"""Action values learned online, one update per step: Watkins' Q(lambda), SARSA(lambda) and
QRC(lambda), over a streaming network (``rtrl.learners.streaming``: encoder -> any online
trunk -> head).

With ObGD (``rtrl.learners.optim.obgd``) and stream-x's network, Q(lambda) and SARSA(lambda)
are stream Q(lambda) and stream SARSA(lambda) (Elsayed et al. 2024); with an exact-RTRL trunk
they are the recurrent streaming learners of Farr et al. 2026, who use QRC(lambda) (Elelimy et
al.'s gradient-corrected Q(lambda)) on MemoryChain and POPGym.

At each step the agent reads x_{t+1} with r_{t+1} and ``done`` (x_{t+1} starts a new episode,
so gamma_{t+1} = 0 and the trunk and traces restart before reading it), then, with the current
parameters::

    Q(x_{t+1}, .); a_{t+1} epsilon-greedy (exploratory: a_{t+1} is not the greedy action)
    delta_t = r_{t+1} + gamma_{t+1} Q(x_{t+1}, b) - Q(x_t, a_t)
              b = argmax (Q, QRC) or a_{t+1} (SARSA)
    Q(lambda), SARSA(lambda):  w <- w + opt(delta_t z_t)
    z_{t+1} = gamma_{t+1} lambda c_t z_t + grad Q(x_{t+1}, a_{t+1})

where c_t = 0 if a_t was exploratory (Watkins' cut; Q and QRC) and 1 otherwise. QRC(lambda)
adds a second network h(x, a) of its own (trunk included) that estimates the expected TD
error, a scalar trace zh of its values and a trace z^h of its gradient::

    grad delta_t = gamma_{t+1} grad max_a Q(x_{t+1}, a) - grad Q(x_t, a_t)
    w     <- w     + opt_q(delta_t z_t - h(x_t, a_t) grad Q(x_t, a_t) - zh_t grad delta_t)
    theta <- theta + opt_h(delta_t z^h_t - h(x_t, a_t) grad h(x_t, a_t) - beta theta)
    zh_{t+1} = gamma_{t+1} lambda c_t zh_t + h(x_{t+1}, a_{t+1}),  z^h likewise with grad h

(with lambda = 0, zh = h and the correction is TDC's -gamma h grad max Q(x')). Q(x_t, a_t),
its gradient and h's are those computed at step t, one forward pass per step, as a recurrent
trunk's state allows. The optimisers receive delta_t as ``td_error`` (ObGD's bound).

An episode cut short by a time limit bootstraps its last TD error from gamma max_a Q(x', a)
of the observation x' it ended in, read by the trunk before its reset
(``bootstrap_truncation=False``: as a terminal state); QRC's grad delta leaves that term out.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rtrl.learners.optim import PER_STREAM_OPTIMIZERS
from rtrl.learners.streaming import StreamNetwork, epsilon_greedy_schedule

# learner name -> (what bootstraps the target, whether an exploratory action cuts the traces)
Q_LEARNERS = {"q_lambda": ("max", True), "sarsa_lambda": ("taken", False),
              "qrc_lambda": ("max", True)}  # fmt: skip


class StreamQState(NamedTuple):
    params: dict  # {"q": network params, "h": QRC's second network (absent otherwise)}
    opt_state: dict  # per network
    est_state: dict  # per network: the trunk's estimator state
    trace: dict  # per network: z (grad Q's trace), z^h (grad h's)
    h_value_trace: jax.Array  # QRC: zh, the trace of h(x, a)
    gradient: dict  # QRC: grad Q(x_t, a_t) and grad h(x_t, a_t) (empty otherwise)
    q_value: jax.Array  # Q(x_t, a_t)
    h_value: jax.Array  # h(x_t, a_t) (QRC)
    exploratory: jax.Array  # a_t was not the greedy action
    started: jax.Array  # False before the first observation (no TD error yet)
    t: jax.Array  # steps taken (the exploration schedule's clock)


class StreamQ(NamedTuple):
    init: Any  # (key, observation size) -> StreamQState
    step: Any  # (state, key, observation, reward, terminated, truncated, final obs)
    #            -> (state, action, metrics), as the actor-critic's


def stream_q(
    network: StreamNetwork,
    learner: str,
    optimizer: optax.GradientTransformation,
    gamma: float = 0.99,
    lambda_: float = 0.8,
    epsilon_start: float = 1.0,
    epsilon_end: float = 0.01,
    exploration_steps: int = 50_000,
    h_network: StreamNetwork | None = None,
    h_optimizer: optax.GradientTransformation | None = None,
    h_regularizer: float = 1.0,
    bootstrap_truncation: bool = True,
) -> StreamQ:
    """``learner``: one of ``Q_LEARNERS``; QRC(lambda) also needs ``h_network`` (with as many
    outputs as actions) and ``h_optimizer``. ``network`` has one output per action."""
    if learner not in Q_LEARNERS:
        raise ValueError(f"unknown action-value learner {learner!r}; choose one of "
                         f"{sorted(Q_LEARNERS)}")  # fmt: skip
    bootstrap, cuts = Q_LEARNERS[learner]
    corrected = learner == "qrc_lambda"
    if corrected and (h_network is None or h_optimizer is None):
        raise ValueError("qrc_lambda needs h_network and h_optimizer")
    networks = {"q": network, **({"h": h_network} if corrected else {})}
    optimizers = {"q": optax.with_extra_args_support(optimizer)}
    if corrected:
        optimizers["h"] = optax.with_extra_args_support(h_optimizer)
    epsilon = epsilon_greedy_schedule(epsilon_start, epsilon_end, exploration_steps)

    def init(key: jax.Array, observation_size: int) -> StreamQState:
        keys = dict(zip(networks, jax.random.split(key, len(networks))))
        params = {n: net.init(keys[n], observation_size) for n, net in networks.items()}
        zeros = jax.tree.map(jnp.zeros_like, params)
        scalar = jnp.zeros((), params["q"]["head"][0]["w"].dtype)
        return StreamQState(
            params,
            {n: optimizers[n].init(params[n]) for n in networks},
            {n: net.init_state(params[n]) for n, net in networks.items()},
            zeros, scalar, zeros if corrected else {}, scalar, scalar,
            jnp.zeros((), bool), jnp.zeros((), bool), jnp.zeros((), jnp.int32),
        )  # fmt: skip

    def step(state: StreamQState, key: jax.Array, observation, reward, terminated,
             truncated=False, final_observation=None):  # fmt: skip
        terminated, truncated = jnp.asarray(terminated, bool), jnp.asarray(truncated, bool)
        done = terminated | truncated
        q, q_pullback, q_est = jax.vjp(
            lambda p: networks["q"].step(p, state.est_state["q"], observation, done),
            state.params["q"], has_aux=True,
        )  # fmt: skip
        k_explore, k_action = jax.random.split(key)
        greedy = jnp.argmax(q)
        explore = jax.random.uniform(k_explore) < epsilon(state.t)
        action = jnp.where(explore, jax.random.randint(k_action, (), 0, q.shape[0]), greedy)

        def q_gradient(a):
            return q_pullback(jax.nn.one_hot(a, q.shape[0], dtype=q.dtype))[0]

        discount = gamma * (1.0 - done.astype(q.dtype))
        target = reward + discount * (q[greedy] if bootstrap == "max" else q[action])
        if bootstrap_truncation and final_observation is not None:
            final_q = networks["q"].outputs_after(
                state.params["q"], state.est_state["q"], final_observation
            )
            target = target + jnp.where(truncated & ~terminated, gamma * jnp.max(final_q), 0.0)
        delta = jnp.where(state.started, target - state.q_value, 0.0)

        ascent = {"q": jax.tree.map(lambda z: delta * z, state.trace["q"])}
        if corrected:
            grad_delta = jax.tree.map(lambda g_next, g: discount * g_next - g,
                                      q_gradient(greedy), state.gradient["q"])  # fmt: skip
            ascent["q"] = jax.tree.map(
                lambda a, g, gd: a - state.h_value * g - state.h_value_trace * gd,
                ascent["q"], state.gradient["q"], grad_delta,
            )  # fmt: skip
            regularizer = h_regularizer * state.started  # no update before a transition
            ascent["h"] = jax.tree.map(
                lambda z, g, w: delta * z - state.h_value * g - regularizer * w,
                state.trace["h"], state.gradient["h"], state.params["h"],
            )  # fmt: skip
        params, opt_state = {}, {}
        for n in networks:
            direction = jax.tree.map(jnp.negative, ascent[n])
            updates, opt_state[n] = optimizers[n].update(
                direction, state.opt_state[n], state.params[n], td_error=delta
            )
            params[n] = optax.apply_updates(state.params[n], updates)

        # Traces of the step just taken; the last transition's exploratory action cuts them
        cut = state.exploratory if cuts else jnp.zeros((), bool)
        decay = discount * lambda_ * state.started * (1.0 - cut.astype(q.dtype))
        gradient = {"q": q_gradient(action)}
        est_state = {"q": q_est}
        h_value, h_value_trace = state.h_value, state.h_value_trace
        if corrected:
            h, h_pullback, est_state["h"] = jax.vjp(
                lambda p: networks["h"].step(p, state.est_state["h"], observation, done),
                state.params["h"], has_aux=True,
            )  # fmt: skip
            h_value = h[action]
            (gradient["h"],) = h_pullback(jax.nn.one_hot(action, h.shape[0], dtype=h.dtype))
            h_value_trace = decay * state.h_value_trace + h_value
        trace = {n: jax.tree.map(lambda z, g: decay * z + g, state.trace[n], gradient[n])
                 for n in networks}  # fmt: skip
        new_state = StreamQState(
            params, opt_state, est_state, trace, h_value_trace, gradient if corrected else {},
            q[action], h_value, action != greedy, jnp.ones((), bool), state.t + 1,
        )  # fmt: skip
        metrics = {"value": q[action], "td_error": delta, "epsilon": epsilon(state.t)}
        return new_state, action, metrics

    return StreamQ(init, step)


def check_q_optimizer(learner: str, optimizer_name: str) -> None:
    """QRC(lambda)'s update is not delta times a trace, which ObGD's bound reads."""
    if learner == "qrc_lambda" and optimizer_name in PER_STREAM_OPTIMIZERS:
        raise ValueError(f"qrc_lambda's gradient-corrected update is not delta times a trace, "
                         f"which {optimizer_name} bounds: use q_optimizer=adam or sgd")  # fmt: skip
