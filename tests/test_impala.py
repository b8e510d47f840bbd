"""IMPALA-style actor-critic (R2AC): V-trace against hand computations and n-step returns, the
RTRL gradient of a segment's loss against autodiff through the episode prefix, resets, and the
actors' carries across segments."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_close

from rtrl.cells import make_cell
from rtrl.cli import main as cli_main
from rtrl.envs.cartpole import cartpole_p
from rtrl.envs.control import wrap_for_agents
from rtrl.gradients import columnar_rtrl
from rtrl.learners.impala import ImpalaConfig, Segment, impala, segment_loss, vtrace
from rtrl.learners.trunks import bptt_trunk, feedforward_trunk, rtrl_trunk

pytestmark = pytest.mark.float64

SMALL = ImpalaConfig(segment_length=12, num_envs=3, hidden=0, entropy_coef=0.05)


def test_vtrace_against_a_hand_computed_example():
    # Two steps, one environment; the first ratio is clipped by rho-bar = 1, the second by
    # c-bar = 0.5 only in the trace.
    log_rhos = jnp.log(jnp.array([[2.0], [0.8]]))
    rewards = jnp.array([[1.0], [-0.5]])
    values = jnp.array([[0.3], [0.6]])
    bootstrap = jnp.array([0.2])
    discounts = jnp.array([[0.9], [0.9]])
    out = vtrace(log_rhos, rewards, values, bootstrap, discounts, rho_bar=1.0, c_bar=0.5)
    # delta_1 = 0.8 (-0.5 + 0.9 * 0.2 - 0.6) = -0.736; v_1 = 0.6 - 0.736 = -0.136
    # delta_0 = 1.0 (1 + 0.9 * 0.6 - 0.3) = 1.24; v_0 = 0.3 + 1.24 + 0.9 * 0.5 * (-0.736)
    np.testing.assert_allclose(out.targets[:, 0], [0.3 + 1.24 - 0.3312, -0.136], atol=1e-12)
    # pg advantages: rho-bar-clipped ratio (r_t + gamma v_{t+1} - V(x_t))
    np.testing.assert_allclose(
        out.pg_advantages[:, 0], [1.0 * (1.0 + 0.9 * -0.136 - 0.3), 0.8 * (-0.5 + 0.18 - 0.6)],
        atol=1e-12,
    )  # fmt: skip


def test_vtrace_on_policy_gives_n_step_returns_cut_at_episode_ends():
    rng = np.random.default_rng(0)
    steps, envs, gamma = 7, 4, 0.95
    rewards = rng.normal(size=(steps, envs))
    values = rng.normal(size=(steps, envs))
    bootstrap = rng.normal(size=envs)
    done = np.zeros((steps, envs), bool)
    done[2, 1] = done[5, 3] = True
    truncation = np.zeros((steps, envs))
    truncation[5, 3] = 0.7  # environment 3 was cut short at step 5, in a state worth 0.7
    out = vtrace(jnp.zeros((steps, envs)), rewards, values, bootstrap, gamma * (1 - done),
                 truncation_bootstrap=gamma * truncation)  # fmt: skip
    for e in range(envs):
        for s in range(steps):
            want, scale = 0.0, 1.0
            for t in range(s, steps):
                want += scale * rewards[t, e]
                if done[t, e]:
                    want += scale * gamma * truncation[t, e]
                    break
                scale *= gamma
            else:
                want += scale * bootstrap[e]
            np.testing.assert_allclose(out.targets[s, e], want, atol=1e-12)
    # On-policy, the policy-gradient advantage is the one-step TD error towards the targets.
    next_targets = np.concatenate([np.asarray(out.targets[1:]), bootstrap[None]])
    want = rewards + gamma * (1 - done) * next_targets + gamma * truncation - values
    np.testing.assert_allclose(out.pg_advantages, want, atol=1e-12)


def make_learner(trunk_kind: str = "rtrl", config: ImpalaConfig = SMALL):
    env = wrap_for_agents(cartpole_p(), normalize_obs=False)
    cell = make_cell("elstm", 4)
    trunk = {
        "rtrl": lambda: rtrl_trunk(columnar_rtrl(cell)),
        "bptt": lambda: bptt_trunk(cell),
        "feedforward": lambda: feedforward_trunk(4),
    }[trunk_kind]()
    return impala(env, trunk, config), cell


def two_segments(learner):
    """Two consecutive segments collected with the initial parameters."""
    state = learner.init(jax.random.PRNGKey(0))
    envs, first = learner.collect(state.params, state.envs, jax.random.PRNGKey(1))
    envs, second = learner.collect(state.params, envs, jax.random.PRNGKey(2))
    return state, first, second


def test_rtrl_gradient_of_a_segment_loss_equals_autodiff_through_the_episode_prefix():
    """Traces carried across two segments: the second segment's loss differentiated with RTRL
    (re-run from the stored carry, continuing its traces) equals autodiff through both segments
    from the episodes' start, for every parameter (no encoder: the trunk reads observations)."""
    learner, cell = make_learner("rtrl")
    bptt_learner, _ = make_learner("bptt")
    state, first, second = two_segments(learner)
    assert bool(first.steps.reset[0].all())  # the first segment starts every episode
    assert int(second.steps.done.sum()) > 0  # and some end inside the second

    # Both segments as one from the initial cell state, with exact backpropagation; only the
    # second segment's steps enter the loss.
    both = Segment(
        jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first.steps, second.steps),
        first.first_carry.cell_state,
        second.next_observation, second.next_reset,
    )  # fmt: skip
    m = SMALL.segment_length

    def prefix_loss(params):
        outputs, values = bptt_learner.unroll(params, both)
        dist = bptt_learner.agent.dist
        return segment_loss(dist, SMALL, outputs[m:], values[m:], second.steps)[0]

    params = state.params
    got = jax.grad(lambda p: learner.loss(p, second)[0])(params)
    want = jax.grad(prefix_loss)(params)
    assert_trees_close(got, want, tol=1e-9)
    # Starting the second segment's traces from zero would not give the same gradient.
    cut = second._replace(first_carry=second.first_carry._replace(
        traces=jax.tree.map(jnp.zeros_like, second.first_carry.traces)))  # fmt: skip
    truncated = jax.grad(lambda p: learner.loss(p, cut)[0])(params)
    assert not np.allclose(truncated["cell"]["inputs"]["Z"], want["cell"]["inputs"]["Z"])


@pytest.mark.parametrize("cell_name", ["elstm", "linear_rtu"])
def test_the_segment_at_once_gives_the_steps_outputs_and_gradient(cell_name):
    """Exact RTRL over a whole segment (backpropagation inside it, the carried traces for what
    came before, the one-step gradient for the encoder) against the per-step re-run, with an
    encoder, across an episode start and with traces carried in."""
    env = wrap_for_agents(cartpole_p(), normalize_obs=False)
    estimator = columnar_rtrl(make_cell(cell_name, 4))
    assert estimator.run_segment is not None
    config = SMALL._replace(hidden=5)
    learner = impala(env, rtrl_trunk(estimator), config)
    plain = rtrl_trunk(estimator)._replace(run_segment=None, segment_traces=None)
    stepped = impala(env, plain, config)
    state, _, second = two_segments(learner)
    # The actors' traces brought up to the segment's end at once are the stepped actors'.
    _, _, stepped_second = two_segments(stepped)

    def floats(tree):
        return [a for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)]

    assert_trees_close(floats(second), floats(stepped_second), tol=1e-10)
    assert float(jnp.abs(second.first_carry.traces["inputs"][next(iter(
        second.first_carry.traces["inputs"]))]).sum()) > 0  # fmt: skip
    assert bool(second.steps.reset[1:].any())  # an episode starts inside the segment
    for got, want in zip(
        learner.unroll(state.params, second), stepped.unroll(state.params, second)
    ):
        np.testing.assert_allclose(got, want, atol=1e-12)
    params = jax.tree.map(lambda a: a * 1.1, state.params)  # not the actors' parameters
    got = jax.grad(lambda p: learner.loss(p, second)[0])(params)
    want = jax.grad(lambda p: stepped.loss(p, second)[0])(params)
    assert_trees_close(got, want, tol=1e-9)
    assert float(jnp.abs(want["encoder"][0]["w"]).sum()) > 0


def test_segments_restart_state_and_traces_at_episode_starts():
    learner, cell = make_learner("rtrl", SMALL._replace(segment_length=40, num_envs=2))
    state, segment, _ = two_segments(learner)
    resets, dones = np.asarray(segment.steps.reset), np.asarray(segment.steps.done)
    np.testing.assert_array_equal(resets[1:], dones[:-1])  # a done starts the next step anew
    t, env = next((t, e) for t, e in zip(*np.nonzero(resets)) if t > 0)
    outputs, values = learner.unroll(state.params, segment)
    # The same steps from a fresh carry at the episode's first step give the same outputs.
    fresh = jax.tree.map(lambda a: a[t:, env : env + 1], segment.steps)
    initial = learner.agent.trunk.init_carry(state.params["cell"])
    restarted = Segment(fresh, jax.tree.map(lambda a: a[None], initial),
                        segment.next_observation[env : env + 1],
                        segment.next_reset[env : env + 1])  # fmt: skip
    fresh_outputs, fresh_values = learner.unroll(state.params, restarted)
    np.testing.assert_allclose(outputs[t:, env], fresh_outputs[:, 0], atol=1e-12)
    np.testing.assert_allclose(values[t:, env], fresh_values[:, 0], atol=1e-12)


def test_actors_carry_state_and_traces_from_one_segment_into_the_next():
    learner, _ = make_learner("rtrl")
    state, first, second = two_segments(learner)
    step = jax.vmap(learner.agent.step, in_axes=(None, 0, 0, 0))
    carry = first.first_carry
    for t in range(SMALL.segment_length):
        _, _, carry = step(state.params, carry, first.steps.observation[t], first.steps.reset[t])
    assert_trees_close(second.first_carry, carry, tol=1e-12)
    assert float(jnp.abs(carry.traces["inputs"]["Z"]).sum()) > 0
    # Re-run with the actors' parameters, the segment gives back the actors' probabilities.
    outputs, _ = learner.unroll(state.params, second)
    np.testing.assert_allclose(
        jax.vmap(jax.vmap(learner.agent.dist.log_prob))(outputs, second.steps.action),
        second.steps.log_prob, atol=1e-10,
    )  # fmt: skip


@pytest.mark.parametrize("trunk_kind", ["rtrl", "bptt", "feedforward"])
def test_iterations_run_and_stay_on_policy_without_a_lag(trunk_kind):
    learner, _ = make_learner(trunk_kind)
    state = learner.init(jax.random.PRNGKey(0))
    iteration = jax.jit(learner.iteration)
    for _ in range(3):
        state, metrics = iteration(state)
    assert np.isfinite(float(metrics["policy_loss"]))
    np.testing.assert_allclose(float(metrics["mean_rho"]), 1.0, atol=1e-9)
    lagged, _ = make_learner(trunk_kind, SMALL._replace(behaviour_lag=1))
    state = lagged.init(jax.random.PRNGKey(0))
    iteration = jax.jit(lagged.iteration)
    for _ in range(3):
        state, metrics = iteration(state)
    assert abs(float(metrics["mean_rho"]) - 1.0) > 1e-6  # the actors trail by one update


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="segment_length"):
        make_learner("rtrl", SMALL._replace(segment_length=0))
    with pytest.raises(ValueError, match="behaviour_lag"):
        make_learner("rtrl", SMALL._replace(behaviour_lag=-1))


@pytest.mark.slow
def test_r2ac_presets_run_through_the_command_line_and_resume(tmp_path):
    args = ["run", "r2ac-elstm-repeat_previous-easy", "--seeds", "2", "--steps", "3200",
            "--set", "chunk=1600"]  # fmt: skip
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    cli_main([*args, "--out", str(whole)])
    from rtrl.experiments import configuration, engine

    config = configuration.resolve("r2ac-elstm-repeat_previous-easy",
                                   {"steps": "3200", "chunk": "1600"})  # fmt: skip
    engine.run(config, 2, halves, progress=False, stop_after=1)  # stopped after one chunk
    cli_main([*args, "--out", str(halves)])  # resumed
    assert (whole / "curve.csv").read_text() == (halves / "curve.csv").read_text()
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["status"] == "complete" and len(summary["final_return_per_seed"]) == 2
