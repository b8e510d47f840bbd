"""Q(lambda), SARSA(lambda) and QRC(lambda) over streaming networks: traces against autodiff
through the episode prefix (float64), the update equations, resets, stabilisers, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close

from rtrl.cells import feedforward, make_cell
from rtrl.gradients import bptt, make_estimator
from rtrl.gradients.base import reset_then_step, stateless
from rtrl.learners.policies import sparse_weights
from rtrl.learners.stream_q import check_q_optimizer, stream_q
from rtrl.learners.streaming import (
    LEAKY_SLOPE,
    epsilon_greedy_schedule,
    layer_norm,
    stream_network,
)

GAMMA, LAM, ACTIONS = 0.9, 0.8, 3


def encoded(params, xs):
    """The encoder of ``stream_network`` with LayerNorm, written out."""
    for layer in params["encoder"]:
        xs = jax.vmap(lambda x, layer=layer: jax.nn.leaky_relu(
            layer_norm(layer["w"] @ x + layer["b"]), LEAKY_SLOPE))(xs)  # fmt: skip
    return xs


def run_steps(learner, state, xs, rewards, dones):
    states, metrics = [], []
    for t in range(xs.shape[0]):
        state, _, m = learner.step(state, jax.random.PRNGKey(100 + t), xs[t], rewards[t], dones[t])
        states.append(state)
        metrics.append(m)
    return states, metrics


@pytest.mark.float64
@pytest.mark.parametrize("estimator", ["columnar_rtrl", "tbptt_1"])
@pytest.mark.parametrize("learner_name", ["q_lambda", "sarsa_lambda"])
def test_traces_equal_autodiff_through_the_episode_prefix(estimator, learner_name):
    """With the step size at zero, z_t = sum_k (gamma lambda)^(t-k) c grad Q(x_k, a_k), cut at
    episode starts (and, for Q(lambda), after exploratory actions), where grad Q is autodiff
    through the trunk unrolled from the episode's start (RTRL: every step; T-BPTT(1): the last
    step, from a stopped state). The encoder gets the immediate gradient in both."""
    cell = make_cell("linear_rtu", 3)
    network = stream_network(make_estimator(estimator, cell), ACTIONS, encoder_sizes=(5,),
                             sparsity=0.5)  # fmt: skip
    learner = stream_q(network, learner_name, optax.sgd(0.0), gamma=GAMMA, lambda_=LAM,
                       epsilon_start=0.5, epsilon_end=0.5)  # fmt: skip
    steps = 10
    xs = jax.random.normal(jax.random.PRNGKey(1), (steps, 4))
    dones = jnp.zeros(steps, bool).at[6].set(True)  # x_6 starts a new episode
    states, metrics = run_steps(learner, learner.init(jax.random.PRNGKey(0), 4), xs,
                                jnp.ones(steps), dones)  # fmt: skip
    params = states[-1].params["q"]
    exploratory = [bool(s.exploratory) for s in states]
    assert any(exploratory) and not all(exploratory)
    actions = []  # the actions taken, found from the Q-values they had

    def q_values(params, t):
        stopped = jax.lax.stop_gradient(encoded(params, xs))
        inputs = stopped.at[t].set(encoded(params, xs[t : t + 1])[0])  # immediate only
        if estimator == "columnar_rtrl":
            features = bptt.unroll(cell, params["trunk"], inputs[: t + 1], dones[: t + 1])[0][t]
        else:
            trunk = jax.lax.stop_gradient(params["trunk"])
            _, before = bptt.unroll(cell, trunk, inputs[:t], dones[:t])
            before = jax.lax.stop_gradient(before)
            features = reset_then_step(cell, params["trunk"], before, inputs[t], dones[t])[1]
        return params["head"][0]["w"] @ features + params["head"][0]["b"]

    trace = jax.tree.map(jnp.zeros_like, params)
    for t in range(steps):
        q = q_values(params, t)
        greedy = int(jnp.argmax(q))
        taken = float(metrics[t]["value"])
        actions.append(next(a for a in range(ACTIONS) if abs(float(q[a]) - taken) < 1e-12))
        cut = learner_name == "q_lambda" and t > 0 and exploratory[t - 1]
        decay = 0.0 if (t == 0 or dones[t] or cut) else GAMMA * LAM
        grad = jax.grad(lambda p: q_values(p, t)[actions[t]])(params)
        trace = jax.tree.map(lambda z, g: decay * z + g, trace, grad)
        assert_trees_close(states[t].trace["q"], trace, tol=1e-9)
        assert bool(states[t].exploratory) == (actions[t] != greedy)


@pytest.mark.float64
@pytest.mark.parametrize("learner_name", ["q_lambda", "sarsa_lambda"])
def test_one_update_is_the_step_size_times_delta_times_the_trace(learner_name):
    """w' - w = alpha delta_t z_t, delta_t = r + gamma Q(x', b) - Q(x, a) with b the greedy
    action (Q) or the one taken (SARSA), Q(x', .) from the parameters before the update."""
    alpha = 0.05
    network = stream_network(make_estimator("columnar_rtrl", make_cell("linear_rtu", 3)),
                             ACTIONS, encoder_sizes=(4,))  # fmt: skip
    learner = stream_q(network, learner_name, optax.sgd(alpha), gamma=GAMMA, lambda_=LAM,
                       epsilon_start=0.3, epsilon_end=0.3)  # fmt: skip
    state = learner.init(jax.random.PRNGKey(0), 2)
    xs = jax.random.normal(jax.random.PRNGKey(1), (6, 2))
    for t in range(6):
        q_next, _ = network.step(state.params["q"], state.est_state["q"], xs[t], jnp.array(False))
        new, action, metrics = learner.step(state, jax.random.PRNGKey(t), xs[t], 0.7, False)
        b = jnp.argmax(q_next) if learner_name == "q_lambda" else action
        delta = (0.7 + GAMMA * q_next[b] - state.q_value) if t > 0 else 0.0
        assert float(metrics["td_error"]) == pytest.approx(float(delta), abs=1e-12)
        expected = jax.tree.map(lambda w, z: w + alpha * delta * z, state.params["q"],
                                state.trace["q"])  # fmt: skip
        assert_trees_close(new.params["q"], expected, tol=1e-10)
        state = new


@pytest.mark.float64
def test_qrc_with_lambda_zero_is_tdc_on_action_values():
    """With lambda = 0 QRC(lambda) is TDC: w += a (delta grad Q(x,a) - gamma h(x,a) grad max
    Q(x')), theta += b ((delta - h(x,a)) grad h(x,a) - beta theta), on feed-forward networks."""
    a_q, a_h, beta = 0.1, 0.03, 0.5

    def net():
        return stream_network(stateless(feedforward(4)), ACTIONS, (3,))

    q_net, h_net = net(), net()
    learner = stream_q(q_net, "qrc_lambda", optax.sgd(a_q), gamma=GAMMA, lambda_=0.0,
                       epsilon_start=0.5, epsilon_end=0.5, h_network=h_net,
                       h_optimizer=optax.sgd(a_h), h_regularizer=beta)  # fmt: skip
    state = learner.init(jax.random.PRNGKey(0), 2)
    xs = jax.random.normal(jax.random.PRNGKey(1), (5, 2))
    no_reset = jnp.array(False)
    previous = None  # (x, a, the parameters Q(x, .) and h(x, .) were computed with)

    def q_of(p, obs):
        return q_net.step(p, q_net.init_state(p), obs, no_reset)[0]

    def h_of(p, obs):
        return h_net.step(p, h_net.init_state(p), obs, no_reset)[0]

    for t in range(5):
        new, action, metrics = learner.step(state, jax.random.PRNGKey(t), xs[t], -0.4, False)
        if previous is None:  # no transition yet: nothing moves
            assert_trees_close(new.params, state.params, tol=0.0)
        else:
            # grad Q(x, a), h(x, a) and grad h(x, a) as computed when x was read, one step ago
            x, a, then = previous
            p_q, p_h = state.params["q"], state.params["h"]
            delta = -0.4 + GAMMA * jnp.max(q_of(p_q, xs[t])) - q_of(then["q"], x)[a]
            h = h_of(then["h"], x)[a]
            grad_q = jax.grad(lambda p: q_of(p, x)[a])(then["q"])
            grad_max = jax.grad(lambda p: jnp.max(q_of(p, xs[t])))(p_q)
            grad_h = jax.grad(lambda p: h_of(p, x)[a])(then["h"])
            assert float(metrics["td_error"]) == pytest.approx(float(delta), abs=1e-12)
            expected_q = jax.tree.map(lambda w, g, gm: w + a_q * (delta * g - GAMMA * h * gm),
                                      p_q, grad_q, grad_max)  # fmt: skip
            expected_h = jax.tree.map(lambda w, g: w + a_h * ((delta - h) * g - beta * w),
                                      p_h, grad_h)  # fmt: skip
            assert_trees_close(new.params["q"], expected_q, tol=1e-9)
            assert_trees_close(new.params["h"], expected_h, tol=1e-9)
        previous = (xs[t], int(action), state.params)
        state = new


@pytest.mark.float64
def test_an_episode_end_restarts_the_trunk_and_the_traces():
    network = stream_network(make_estimator("columnar_rtrl", make_cell("linear_rtu", 3)),
                             ACTIONS)  # fmt: skip
    learner = stream_q(network, "sarsa_lambda", optax.sgd(0.0), lambda_=0.9)
    state = learner.init(jax.random.PRNGKey(0), 2)
    fresh = learner.init(jax.random.PRNGKey(0), 2)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    for t in range(3):
        state, _, _ = learner.step(state, jax.random.PRNGKey(t), xs[t], 1.0, False)
    key = jax.random.PRNGKey(9)
    after_end, a1, _ = learner.step(state, key, xs[3], 1.0, True)
    started = fresh._replace(started=jnp.ones((), bool), t=state.t)
    from_start, a2, _ = learner.step(started, key, xs[3], 1.0, False)
    assert int(a1) == int(a2)
    assert_trees_close(after_end.est_state, from_start.est_state, tol=1e-12)
    assert_trees_close(after_end.trace, from_start.trace, tol=1e-12)


def test_sparse_weights_and_the_exploration_schedule():
    w = sparse_weights(jax.random.PRNGKey(0), 8, 20, 0.9)
    assert ((w == 0).sum(axis=1) == 18).all() and (jnp.abs(w) <= 1 / 20**0.5).all()
    narrow = sparse_weights(jax.random.PRNGKey(0), 8, 3, 0.9)  # every unit keeps one input
    assert ((narrow != 0).sum(axis=1) == 1).all()
    epsilon = epsilon_greedy_schedule(1.0, 0.01, 100)
    assert [float(epsilon(t)) for t in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.505, 0.01,
                                                                             0.01])  # fmt: skip


def test_bad_input_is_refused_in_one_line():
    network = stream_network(stateless(feedforward(2)), ACTIONS)
    with pytest.raises(ValueError, match="choose one of"):
        stream_q(network, "expected_sarsa", optax.sgd(0.1))
    with pytest.raises(ValueError, match="h_network"):
        stream_q(network, "qrc_lambda", optax.sgd(0.1))
    with pytest.raises(ValueError, match="q_optimizer=adam"):
        check_q_optimizer("qrc_lambda", "obgd")
    with pytest.raises(ValueError, match="sparsity"):
        network = stream_network(stateless(feedforward(2)), ACTIONS, sparsity=1.0)
        network.init(jax.random.PRNGKey(0), 2)


def test_streaming_configurations_are_refused_in_one_line(capsys):
    from rtrl.cli import main

    for overrides, message in [
        (["estimator=tbptt_4"], "use tbptt_1 or an RTRL estimator"),
        (["estimator=bptt"], "need an online estimator"),
        (["q_optimizer=obgd"], "q_optimizer=adam or sgd"),
        (["env=halfcheetah-p"], "learner=actor_critic"),
        (["q_optimizer=rmsprop"], "q_optimizer must be one of"),
    ]:
        args = ["run", "stream-memory-rtu", "--steps", "10"]
        for override in overrides:
            args += ["--set", override]
        assert main(args) == 2, overrides
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_stream_q_with_obgd_and_exact_rtrl_solves_a_short_memory_chain(tmp_path):
    """Stream Q(lambda) (ObGD, step size 1) with a linear RTU and exact RTRL remembers the cue
    over a chain of 4 actions within 20k steps; a run stopped after one chunk and resumed gives
    the numbers of one that ran through."""
    from rtrl.experiments import configuration
    from rtrl.experiments.control_runs import run_control
    from rtrl.experiments.results import read_curve

    config = configuration.resolve("stream-memory-rtu", {
        "learner": "q_lambda", "q_optimizer": "obgd", "step_size": "1", "lambda": "0.8",
        "memory_length": "3", "units": "32", "steps": "20000", "chunk": "10000",
        "bin_size": "2000"})  # fmt: skip
    summary = run_control(config, 2, tmp_path / "through", progress=False)
    assert summary["final_return_mean"] > 0.9, summary
    run_control(config, 2, tmp_path / "resumed", progress=False, stop_after=1)
    run_control(config, 2, tmp_path / "resumed", progress=False)
    np.testing.assert_array_equal(read_curve(tmp_path / "through")[1],
                                  read_curve(tmp_path / "resumed")[1])  # fmt: skip


@pytest.mark.slow
def test_stream_actor_critic_with_stabilisers_learns_cartpole_p_at_step_size_one(tmp_path):
    """Stream AC(lambda) (ObGD at step size 1, LayerNorm, sparse initialisation, observation and
    reward scaling) on an RTU with exact RTRL: without the stabilisers this diverges."""
    from rtrl.experiments import configuration
    from rtrl.experiments.control_runs import run_control
    from rtrl.experiments.results import read_curve

    config = configuration.resolve("stream-ac-rtu-cartpole-p", {"steps": "50000", "chunk": "25000"})
    run_control(config, 2, tmp_path, progress=False)
    returns = read_curve(tmp_path)[1]
    assert np.isfinite(returns).all()
    assert returns[:, :2].mean() < 50 and returns[:, -2:].mean() > 60, returns
