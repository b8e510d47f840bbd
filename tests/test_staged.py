"""Staged networks (columnar, constructive, CCN): exactness of the active stage's RTRL gradient,
the stage schedule, frozen stages and the head's view of unreached features."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close, squared_error

from rtrl.gradients import bptt, online_value_and_grad
from rtrl.learners import td_lambda
from rtrl.networks.staged import (
    _stage_inputs,
    _transition,
    active_stage,
    feature_mask,
    staged_network,
    staged_rtrl,
)

pytestmark = pytest.mark.float64

NUM_INPUTS = 3
COLUMNS = ["columnar_lstm", "linear_rtu", "elementwise_rnn"]


def random_params(network, key):
    """Parameters of order 1 (connections between stages matter), unread entries kept at 0."""
    params = network.cell.init(key, NUM_INPUTS)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    noisy = [a + 0.5 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
    params = jax.tree.unflatten(treedef, noisy)
    stage_of = np.arange(network.features) // network.stage_size
    mask = network.reads[stage_of]
    params["recurrent"] = {
        n: w * mask.reshape((w.shape[0],) + (1,) * (w.ndim - 2) + (-1,))
        for n, w in params["recurrent"].items()
    }
    if "nu_log" in params["unit"]:  # keep RTU moduli inside the unit circle's stable range
        params["unit"] = {**params["unit"], "nu_log": params["unit"]["nu_log"] * 0 - 1.0}
    return params


def run_steps(estimator, params, est_state, xs):
    def one(est_state, x):
        _, est_state = estimator.step(params, est_state, x)
        return est_state, None

    return jax.lax.scan(one, est_state, xs)[0]


def rows(tree, stage, size):
    """Rows of one stage in every recurrent parameter (leading axis = features)."""
    return jax.tree.map(lambda a: a[stage * size : (stage + 1) * size], tree)


def other_rows(tree, stage, size):
    return jax.tree.map(
        lambda a: jnp.concatenate([a[: stage * size], a[(stage + 1) * size :]]), tree
    )


@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize("stage", [1, 2])  # stage 0: see the columnar-setting test
@pytest.mark.parametrize("reset_at", [None, 4])
def test_active_stage_rtrl_equals_bptt(column, stage, reset_at):
    """Run through the earlier stages, then sum the per-step gradients
    over a window inside ``stage``: equal to BPTT for that stage's parameters (which read the
    earlier stages' h_{t-1}), exactly zero for every other stage."""
    network = staged_network(column, features=6, stage_size=2, stage_steps=9)
    estimator = staged_rtrl(network)
    key = jax.random.PRNGKey(stage)
    params = random_params(network, key)
    k_warm, k_x, k_y, k_head = jax.random.split(jax.random.fold_in(key, 2), 4)
    est_state = estimator.init(params)
    est_state = run_steps(
        estimator, params, est_state, jax.random.normal(k_warm, (9 * stage, NUM_INPUTS))
    )
    assert int(active_stage(network, est_state.steps)) == stage  # the window starts at a switch
    steps = 7
    xs = jax.random.normal(k_x, (steps, NUM_INPUTS))
    resets = jnp.zeros(steps, bool) if reset_at is None else jnp.arange(steps) == reset_at
    targets = jax.random.normal(k_y, (steps,))
    head = {"w": jax.random.normal(k_head, (network.cell.num_features,)), "b": jnp.asarray(0.2)}
    # The truth reads the features the head sees: those of stages up to the active one.
    visible = {**head, "w": jnp.where(feature_mask(network, stage), head["w"], 0.0)}

    loss, (grads, head_grads) = online_value_and_grad(
        estimator, squared_error, params, head, xs, resets, targets, est_state
    )
    true_loss, (true_grads, true_head_grads) = bptt.value_and_grad(
        network.cell, squared_error, params, visible, xs, resets, targets,
        est_state.cell_state,
    )  # fmt: skip
    np.testing.assert_allclose(loss, true_loss, rtol=1e-10)
    recurrent = {k: v for k, v in grads.items() if k != "readout"}
    true_recurrent = {k: v for k, v in true_grads.items() if k != "readout"}
    assert_trees_close(rows(recurrent, stage, 2), rows(true_recurrent, stage, 2))
    for leaf in jax.tree.leaves(other_rows(recurrent, stage, 2)):
        assert not np.any(leaf)
    reached = feature_mask(network, stage)
    assert_trees_close(head_grads["w"][reached], true_head_grads["w"][reached])
    assert not np.any(head_grads["w"][~reached])  # the head ignores unreached features
    # Connections that do not exist get no gradient.
    mask = network.reads[np.arange(6) // 2]
    for w in grads["recurrent"].values():
        assert not np.any(np.asarray(w) * ~mask.reshape((6,) + (1,) * (w.ndim - 2) + (-1,)))


def test_feature_to_feature_reads_use_the_previous_step():
    """The dependence that the public CCN code got wrong: a later stage reads h_{t-1} of earlier
    features. Its gradient for that connection must match BPTT, and differ from what the
    h_t reading would give."""
    network = staged_network("columnar_lstm", features=2, stage_size=1, stage_steps=3)
    estimator = staged_rtrl(network)
    params = random_params(network, jax.random.PRNGKey(7))
    est_state = run_steps(estimator, params, estimator.init(params), jnp.ones((3, NUM_INPUTS)))
    assert int(active_stage(network, est_state.steps)) == 1
    xs = jax.random.normal(jax.random.PRNGKey(8), (6, NUM_INPUTS))
    resets, targets = jnp.zeros(6, bool), jnp.linspace(-1, 1, 6)
    head = {"w": jnp.array([0.0, 1.5]), "b": jnp.asarray(0.0)}
    _, (grads, _) = online_value_and_grad(
        estimator, squared_error, params, head, xs, resets, targets, est_state
    )
    _, (truth, _) = bptt.value_and_grad(
        network.cell, squared_error, params, head, xs, resets, targets, est_state.cell_state
    )
    connection = grads["recurrent"]["W"][1, :, 0]  # feature 1 reading feature 0
    np.testing.assert_allclose(connection, truth["recurrent"]["W"][1, :, 0], rtol=1e-8)
    assert np.abs(np.asarray(connection)).max() > 1e-3  # the check is not vacuous


def test_input_normalisation_gradient_treats_statistics_as_constants():
    """With per-stage input statistics, the gradient equals autodiff through the unrolled
    network with each step's recorded statistics held fixed."""
    network = staged_network("columnar_lstm", 4, 2, 5, input_norm_rate=0.9)
    estimator = staged_rtrl(network)
    params = random_params(network, jax.random.PRNGKey(3))
    est_state = run_steps(estimator, params, estimator.init(params), jnp.ones((5, NUM_INPUTS)))
    xs = jax.random.normal(jax.random.PRNGKey(4), (4, NUM_INPUTS)) + 2.0
    targets = jnp.linspace(0, 1, 4)
    head = {"w": jnp.ones(4), "b": jnp.asarray(0.0)}
    _, (grads, _) = online_value_and_grad(
        estimator, squared_error, params, head, xs, jnp.zeros(4, bool), targets, est_state
    )
    stats, state = [], est_state
    for x in xs:
        _, state = estimator.step(params, state, x)
        stats.append(state.input_stats)

    def loss(p):
        total, s = 0.0, est_state.cell_state
        for x, st, y in zip(xs, stats, targets):
            s = _transition(network, p, s, _stage_inputs(network, s, x, st))
            total += squared_error(head, network.cell.readout({}, s, x), y)
        return total

    truth = jax.grad(loss)(params)
    stage = int(active_stage(network, est_state.steps))
    assert stage == 1
    assert_trees_close(rows(grads["inputs"], stage, 2), rows(truth["inputs"], stage, 2))
    assert_trees_close(rows(grads["unit"], stage, 2), rows(truth["unit"], stage, 2))
    # Only the active stage's statistics move; the frozen stage's stay as they were.
    np.testing.assert_array_equal(state.input_stats.mean[0], est_state.input_stats.mean[0])
    assert not np.allclose(state.input_stats.mean[1], est_state.input_stats.mean[1])


def test_stage_schedule_and_trace_reset():
    network = staged_network("columnar_lstm", features=6, stage_size=2, stage_steps=4)
    estimator = staged_rtrl(network)
    params = network.cell.init(jax.random.PRNGKey(0), NUM_INPUTS)
    state = estimator.init(params)
    stages = []
    for t in range(16):
        _, new = estimator.step(params, state, jnp.ones(NUM_INPUTS) * (t % 3))
        stages.append(int(new.stage))
        if t in (4, 8):  # first step of a new stage: the traces restarted from zero
            fresh = state._replace(traces=jax.tree.map(jnp.zeros_like, state.traces))
            _, expected = estimator.step(params, fresh, jnp.ones(NUM_INPUTS) * (t % 3))
            assert_trees_close(new.traces, expected.traces, tol=0)
        state = new
    assert stages == [0] * 4 + [1] * 4 + [2] * 8  # capped at the last stage
    np.testing.assert_array_equal(
        active_stage(network, jnp.arange(0, 30, 4)), [0, 1, 2, 2, 2, 2, 2, 2]
    )


def test_frozen_stages_never_change_and_head_ignores_unreached_features():
    """TD(lambda) over three stages: a stage's parameters change only while it is active,
    unread connections stay zero, and the head's weights of unreached features stay zero."""
    network = staged_network("columnar_lstm", features=6, stage_size=2, stage_steps=50)
    estimator = staged_rtrl(network)
    learner = td_lambda(
        estimator, optax.sgd(0.1), 0.9, feature_norm_rate=0.99, head_step_per_feature=True
    )
    state = learner.init(jax.random.PRNGKey(0), NUM_INPUTS)
    xs = jax.random.bernoulli(jax.random.PRNGKey(1), 0.3, (150, NUM_INPUTS)).astype(float)
    cumulants = xs[:, 0]
    snapshots = [state.params]
    step = jax.jit(learner.step)
    for t in range(150):
        state, metrics = step(state, xs[t], cumulants[t], 0.9)
        if t % 50 == 49:
            snapshots.append(state.params)
    assert np.isfinite(metrics["value"])
    mask = network.reads[np.arange(6) // 2]
    for stage in range(3):
        before, after = snapshots[stage], snapshots[stage + 1]
        cell_before = {k: v for k, v in before["cell"].items() if k != "readout"}
        cell_after = {k: v for k, v in after["cell"].items() if k != "readout"}
        moved = rows(jax.tree.map(jnp.subtract, cell_after, cell_before), stage, 2)
        assert all(np.any(leaf) for leaf in jax.tree.leaves(moved["unit"]))
        for leaf in jax.tree.leaves(
            other_rows(jax.tree.map(jnp.subtract, cell_after, cell_before), stage, 2)
        ):
            assert not np.any(leaf), "a frozen or unreached stage's parameters changed"
        unreached_head_weights = np.asarray(before["head"]["w"])[2 * (stage + 1) :]
        assert not np.any(unreached_head_weights)
        for r in after["cell"]["recurrent"].values():
            assert not np.any(np.asarray(r) * ~mask[:, None, :])


def test_value_does_not_read_unreached_features():
    network = staged_network("columnar_lstm", features=4, stage_size=2, stage_steps=100)
    estimator = staged_rtrl(network)
    params = random_params(network, jax.random.PRNGKey(2))
    state = estimator.init(params)
    for _ in range(3):
        features, state = estimator.step(params, state, jnp.ones(NUM_INPUTS))
    assert not np.any(features[2:]) and np.all(features[:2] != 0)
    # ... although the later stage's cells are running.
    assert np.all(np.asarray(state.cell_state["h"][2:]) != 0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("columnar_lstm", 10, 3, 5), "must divide"),
        (("columnar_lstm", 10, 2, 0), "stage_steps"),
        (("elstm", 4, 2, 5), "readout has parameters"),
        (("dense_lstm", 4, 2, 5), "element-wise"),
        (("nonexistent", 4, 2, 5), "unknown cell"),
    ],
)
def test_bad_configurations_are_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        staged_network(*arguments)


def test_columnar_setting_is_the_plain_columnar_network():
    """S = N: one stage, no reads between columns; the gradient equals the columnar LSTM's."""
    network = staged_network("columnar_lstm", features=3, stage_size=3, stage_steps=10)
    assert not network.reads.any()
    estimator = staged_rtrl(network)
    params = random_params(network, jax.random.PRNGKey(5))
    xs = jax.random.normal(jax.random.PRNGKey(6), (8, NUM_INPUTS))
    head = {"w": jnp.ones(3), "b": jnp.asarray(0.0)}
    args = (params, head, xs, jnp.zeros(8, bool), jnp.zeros(8))
    _, (grads, _) = online_value_and_grad(estimator, squared_error, *args)
    _, (truth, _) = bptt.value_and_grad(network.cell, squared_error, *args)
    assert_trees_close(grads, truth)
