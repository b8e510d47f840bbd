"""The verification contract: exact estimators equal BPTT (float64, every parameter leaf)."""

import jax
import jax.numpy as jnp
import pytest
from helpers import assert_trees_close, random_problem, squared_error

from rtrl import cells
from rtrl.cells.base import Cell
from rtrl.gradients import bptt, columnar_rtrl, full_rtrl, online_value_and_grad, trace_size

pytestmark = pytest.mark.float64

ESTIMATORS = {"columnar_rtrl": columnar_rtrl, "full_rtrl": full_rtrl}

online = jax.jit(online_value_and_grad, static_argnums=(0, 1))
exact = jax.jit(bptt.value_and_grad, static_argnums=(0, 1))


@pytest.mark.parametrize("estimator_name", sorted(ESTIMATORS))
@pytest.mark.parametrize("reset_at", [None, 7], ids=["no_reset", "reset_mid"])
def test_summed_online_gradient_equals_bptt(cell, estimator_name, reset_at):
    estimator = ESTIMATORS[estimator_name](cell)
    problem = random_problem(cell, jax.random.PRNGKey(0), steps=14, reset_at=reset_at)
    loss_rtrl, grads_rtrl = online(estimator, squared_error, *problem)
    loss_bptt, grads_bptt = exact(cell, squared_error, *problem)
    assert jnp.allclose(loss_rtrl, loss_bptt, rtol=1e-12)
    assert_trees_close(grads_rtrl, grads_bptt, tol=1e-6)


def test_reset_actually_cuts_credit(cell):
    """A reset must change the gradient: otherwise the reset test above would prove nothing."""
    problem = random_problem(cell, jax.random.PRNGKey(0), steps=14, reset_at=7)
    _, with_reset = online(columnar_rtrl(cell), squared_error, *problem)
    params, head, xs, _, targets = problem
    _, without = exact(cell, squared_error, params, head, xs, jnp.zeros(14, bool), targets)
    difference = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), with_reset, without)
    assert max(jax.tree.leaves(difference[0]["inputs"])) > 1e-8


def test_per_step_gradient_equals_bptt_of_that_step(cell):
    """Not only the sum: each step's gradient is the exact gradient of that step's loss."""
    estimator = columnar_rtrl(cell)
    params, head, xs, resets, targets = random_problem(cell, jax.random.PRNGKey(1), steps=6)
    est_state = estimator.init(params)
    for t in range(6):

        def loss_now(params, head, est_state):
            features, new = estimator.step(params, est_state, xs[t], resets[t])
            return squared_error(head, features, targets[t]), new

        grads, est_state = jax.grad(loss_now, argnums=(0, 1), has_aux=True)(params, head, est_state)

        def loss_t_by_bptt(params, head):
            features, _ = bptt.unroll(cell, params, xs[: t + 1], resets[: t + 1])
            return squared_error(head, features[-1], targets[t])

        assert_trees_close(grads, jax.grad(loss_t_by_bptt, argnums=(0, 1))(params, head))


def test_columnar_agrees_with_full_rtrl_step_by_step(cell):
    params, head, xs, resets, targets = random_problem(cell, jax.random.PRNGKey(2), 10, 4)
    cheap, reference = columnar_rtrl(cell), full_rtrl(cell)
    state_cheap, state_ref = cheap.init(params), reference.init(params)
    cotangent = jax.random.normal(jax.random.PRNGKey(3), (cell.num_features,))
    for t in range(10):
        f_cheap, state_cheap = cheap.step(params, state_cheap, xs[t], resets[t])
        f_ref, state_ref = reference.step(params, state_ref, xs[t], resets[t])
        assert jnp.allclose(f_cheap, f_ref, rtol=1e-12, atol=1e-14)
        assert_trees_close(
            cheap.gradient(params, state_cheap, xs[t], cotangent),
            reference.gradient(params, state_ref, xs[t], cotangent),
            tol=1e-10,
        )


def test_trace_memory_is_state_size_times_recurrent_parameters(cell):
    params = cell.init(jax.random.PRNGKey(0), 5)
    est_state = columnar_rtrl(cell).init(params)
    per_unit_state = len(jax.tree.leaves(est_state.cell_state))
    recurrent = cells.count_params(cells.recurrent_params(params))
    assert trace_size(est_state) == per_unit_state * recurrent


def test_forward_calls_update_traces_without_differentiation(cell):
    """Traces advance on plain forward calls, and the carry holds the *new* traces."""
    estimator = columnar_rtrl(cell)
    params, head, xs, resets, targets = random_problem(cell, jax.random.PRNGKey(4), steps=5)
    est_state = estimator.init(params)
    step = jax.jit(estimator.step)
    history = [est_state]
    for t in range(5):
        _, est_state = step(params, est_state, xs[t], resets[t])
        history.append(est_state)
    for before, after in zip(history[:-1], history[1:]):
        moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before.traces, after.traces)
        assert any(jax.tree.leaves(moved))

    # The same traces when every step is differentiated.
    differentiated = estimator.init(params)
    for t in range(5):

        def loss(params, est_state, t=t):
            features, new_est_state = estimator.step(params, est_state, xs[t], resets[t])
            return jnp.sum(features), new_est_state

        _, differentiated = jax.grad(loss, has_aux=True)(params, differentiated)
    assert_trees_close(differentiated.traces, est_state.traces, tol=1e-12)


def test_reset_zeroes_state_and_traces(cell):
    estimator = columnar_rtrl(cell)
    params, _, xs, _, _ = random_problem(cell, jax.random.PRNGKey(5), steps=4)
    est_state = estimator.init(params)
    for t in range(3):
        _, est_state = estimator.step(params, est_state, xs[t], False)
    fresh_features, fresh = estimator.step(params, estimator.init(params), xs[3], False)
    reset_features, after_reset = estimator.step(params, est_state, xs[3], True)
    assert jnp.allclose(fresh_features, reset_features)
    assert_trees_close(after_reset, fresh, tol=0.0)


def test_vmap_over_streams_matches_each_stream_alone(cell):
    """Independent streams (one resets mid-way, one does not) under jit + vmap."""
    estimator = columnar_rtrl(cell)
    params, head, _, _, _ = random_problem(cell, jax.random.PRNGKey(6))
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    streams = [random_problem(cell, k, steps=9, reset_at=r) for k, r in zip(keys, [None, 3, 8])]
    xs, resets, targets = (jnp.stack([s[i] for s in streams]) for i in (2, 3, 4))
    batched = jax.jit(
        jax.vmap(online_value_and_grad, in_axes=(None, None, None, None, 0, 0, 0)),
        static_argnums=(0, 1),
    )
    losses, grads = batched(estimator, squared_error, params, head, xs, resets, targets)
    for i in range(3):
        loss_i, grads_i = online(
            estimator, squared_error, params, head, xs[i], resets[i], targets[i]
        )
        assert jnp.allclose(losses[i], loss_i, rtol=1e-12)
        assert_trees_close(jax.tree.map(lambda g, i=i: g[i], grads), grads_i, tol=1e-10)


def test_input_gradient_is_the_immediate_one_step_gradient(cell):
    """Layers upstream of the cell get dL_t/dx_t through this step only (documented behaviour)."""
    estimator = columnar_rtrl(cell)
    params, head, xs, resets, targets = random_problem(cell, jax.random.PRNGKey(8), steps=3)
    est_state = estimator.init(params)
    for t in range(2):
        _, est_state = estimator.step(params, est_state, xs[t], False)

    def loss_through_estimator(x):
        features, _ = estimator.step(params, est_state, x, False)
        return squared_error(head, features, targets[2])

    def loss_one_step(x):
        state, features = cells.step(cell, params, est_state.cell_state, x)
        return squared_error(head, features, targets[2])

    assert jnp.allclose(
        jax.grad(loss_through_estimator)(xs[2]), jax.grad(loss_one_step)(xs[2]), rtol=1e-12
    )


def _dense_rnn(units: int) -> Cell:
    """A cell whose units are coupled (not element-wise): full RTRL must still be exact."""

    def init(key, num_inputs):
        kw, ku = jax.random.split(key)
        return {
            "W": jax.random.normal(kw, (units, units)) / jnp.sqrt(units),
            "U": jax.random.normal(ku, (units, num_inputs)) / jnp.sqrt(num_inputs),
            "b": jnp.zeros(units),
            "readout": {},
        }

    return Cell(
        name="dense_rnn",
        units=units,
        num_features=units,
        init=init,
        initial_state=lambda params: {"h": jnp.zeros(units, params["b"].dtype)},
        transition=lambda p, s, x: {"h": jnp.tanh(p["W"] @ s["h"] + p["U"] @ x + p["b"])},
        readout=lambda r, s, x: s["h"],
    )


def test_full_rtrl_is_exact_for_a_coupled_cell():
    cell = _dense_rnn(4)
    problem = random_problem(cell, jax.random.PRNGKey(9), steps=10, reset_at=6)
    _, grads_rtrl = online(full_rtrl(cell), squared_error, *problem)
    _, grads_bptt = exact(cell, squared_error, *problem)
    assert_trees_close(grads_rtrl, grads_bptt)


def test_columnar_rtrl_rejects_a_coupled_cell():
    with pytest.raises(ValueError, match="unit-form cell.*full_rtrl"):
        columnar_rtrl(_dense_rnn(3))


def test_wrong_input_shape_is_a_clear_error():
    cell = cells.linear_rtu(4)
    estimator = columnar_rtrl(cell)
    params = cell.init(jax.random.PRNGKey(0), 3)
    with pytest.raises(
        ValueError, match=r"expected one stream's input of shape \(3,\), got \(5,\)"
    ):
        estimator.step(params, estimator.init(params), jnp.ones(5), False)
    with pytest.raises(ValueError, match="jax.vmap"):
        estimator.step(params, estimator.init(params), jnp.ones((2, 3)), False)
