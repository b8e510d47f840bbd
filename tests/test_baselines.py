"""Dense cells, coupled columns, and the baseline estimators (T-BPTT, UORO, SnAp-1, full RTRL)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_close, random_problem, relative_errors, squared_error
from jax.flatten_util import ravel_pytree

from rtrl import cells
from rtrl.gradients import (
    block_value_and_grad,
    bptt,
    columnar_rtrl,
    full_rtrl,
    online_value_and_grad,
    snap1,
    truncated_bptt,
    uoro,
)

pytestmark = pytest.mark.float64

online = jax.jit(online_value_and_grad, static_argnums=(0, 1))
exact = jax.jit(bptt.value_and_grad, static_argnums=(0, 1))
KEY = jax.random.PRNGKey(0)

DENSE = {
    "dense_rnn": lambda: cells.dense_rnn(4),
    "dense_gru": lambda: cells.dense_gru(4),
    "dense_lstm": lambda: cells.dense_lstm(4),
}
COUPLED = {
    "coupled_lstm_0.5": lambda: cells.coupled_columns(cells.columnar_lstm(5, init_scale=0.5), 0.5),
    "coupled_rtu_0.3": lambda: cells.coupled_columns(cells.nonlinear_rtu(4), 0.3, seed=3),
}


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_dense_cells_match_standard_equations():
    xs = np.asarray(jax.random.normal(KEY, (4, 3)))
    for name, make in DENSE.items():
        cell = make()
        p = jax.tree.map(np.asarray, cell.init(KEY, 3))
        W, b = p["inputs"]["W"], p["unit"]["b"]
        state = cell.initial_state(p)
        h, c = np.zeros(4), np.zeros(4)
        for x in xs:
            state, out = cells.step(cell, p, state, x)
            if name == "dense_rnn":
                h = np.tanh(W @ x + p["recurrent"]["W"] @ h + b)
            elif name == "dense_gru":
                U = p["recurrent"]["U"]
                r = sigmoid(W[:, 0] @ x + U[:, 0] @ h + b[:, 0])
                z = sigmoid(W[:, 1] @ x + U[:, 1] @ h + b[:, 1])
                n = np.tanh(W[:, 2] @ x + b[:, 2] + r * (U[:, 2] @ h + p["unit"]["b_hn"]))
                h = (1 - z) * n + z * h
            else:
                U = p["recurrent"]["W"]
                g = [W[:, a] @ x + U[:, a] @ h + b[:, a] for a in range(4)]
                c = sigmoid(g[1]) * c + sigmoid(g[0]) * np.tanh(g[3])
                h = sigmoid(g[2]) * np.tanh(c)
            np.testing.assert_allclose(out, h, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", sorted(DENSE) + sorted(COUPLED))
@pytest.mark.parametrize("reset_at", [None, 6], ids=["no_reset", "reset_mid"])
def test_full_rtrl_equals_bptt_on_coupled_cells(name, reset_at):
    cell = {**DENSE, **COUPLED}[name]()
    problem = random_problem(cell, KEY, steps=11, reset_at=reset_at)
    _, grads = online(full_rtrl(cell), squared_error, *problem)
    _, truth = exact(cell, squared_error, *problem)
    assert_trees_close(grads, truth)


def _masked_full_rtrl_gradients(cell, params, head, xs, resets, targets):
    """Reference SnAp-1 from dense Jacobians: M <- mask * (J M + I), mask = same unit."""
    n = cell.units
    rec = cells.recurrent_params(params)
    rec_vec, unravel_rec = ravel_pytree(rec)
    state = cell.initial_state(params)
    state_vec, unravel_state = ravel_pytree(state)
    unit_of_state = np.arange(state_vec.size) % n  # dict of (n,) leaves, raveled in order
    unit_of_param = np.concatenate(
        [np.repeat(np.arange(n), leaf.size // n) for leaf in jax.tree.leaves(rec)]
    )
    mask = unit_of_state[:, None] == unit_of_param[None, :]
    M = np.zeros((state_vec.size, rec_vec.size))
    per_step = []
    for t in range(xs.shape[0]):
        if resets[t]:
            state_vec, M = ravel_pytree(cell.initial_state(params))[0], np.zeros_like(M)

        def f(s, r, x=xs[t]):
            p = {**params, **unravel_rec(r)}
            return ravel_pytree(cell.transition(p, unravel_state(s), x))[0]

        J, immediate = jax.jacfwd(f, argnums=(0, 1))(state_vec, rec_vec)
        M = mask * (np.asarray(J) @ M + np.asarray(immediate))
        state_vec = f(state_vec, rec_vec)
        features = cell.readout(params["readout"], unravel_state(state_vec), xs[t])
        g_features = jax.grad(squared_error, argnums=1)(head, features, targets[t])
        _, readout_vjp = jax.vjp(
            lambda s: cell.readout(params["readout"], s, xs[t]), unravel_state(state_vec)
        )
        (delta,) = readout_vjp(g_features)
        per_step.append(unravel_rec(ravel_pytree(delta)[0] @ M))
    return per_step


@pytest.mark.parametrize("name", sorted(DENSE) + sorted(COUPLED))
def test_snap1_matches_masked_full_rtrl_step_by_step(name):
    cell = {**DENSE, **COUPLED}[name]()
    params, head, xs, resets, targets = random_problem(cell, KEY, steps=8, reset_at=5)
    reference = _masked_full_rtrl_gradients(cell, params, head, xs, resets, targets)
    estimator = snap1(cell)
    est_state = estimator.init(params)
    for t in range(8):

        def loss(params, est_state, t=t):
            features, new = estimator.step(params, est_state, xs[t], resets[t])
            return squared_error(head, features, targets[t]), new

        grads, est_state = jax.grad(loss, has_aux=True)(params, est_state)
        assert_trees_close(cells.recurrent_params(grads), reference[t], tol=1e-9)


def test_snap1_is_biased_when_units_are_coupled():
    """Guards the test above: the approximation must differ from the truth here."""
    cell = cells.dense_lstm(4)
    problem = random_problem(cell, KEY, steps=11)
    _, grads = online(snap1(cell), squared_error, *problem)
    _, truth = exact(cell, squared_error, *problem)
    assert (
        max(err for _, err in relative_errors(grads[0]["recurrent"], truth[0]["recurrent"])) > 1e-3
    )


@pytest.mark.parametrize("estimator", [columnar_rtrl, snap1], ids=["columnar", "snap1"])
def test_columnar_approximation_is_exact_without_coupling(estimator):
    cell = cells.coupled_columns(cells.columnar_lstm(5, init_scale=0.5), density=0.0)
    problem = random_problem(cell, KEY, steps=12, reset_at=7)
    assert problem[0]["recurrent"]["W"].shape == (5, 4, 0)
    _, grads = online(estimator(cell), squared_error, *problem)
    _, truth = exact(cell, squared_error, *problem)
    assert_trees_close(grads, truth)


def test_coupling_pattern():
    cell = cells.coupled_columns(cells.columnar_lstm(11), density=0.3, seed=1)
    sources = cell.coupling.sources
    assert sources.shape == (11, 3)  # round(0.3 * 10)
    assert not (sources == np.arange(11)[:, None]).any()  # never reads itself
    again = cells.coupled_columns(cells.columnar_lstm(11), density=0.3, seed=1)
    np.testing.assert_array_equal(again.coupling.sources, sources)
    full = cells.coupled_columns(cells.linear_rtu(5), density=1.0).coupling.sources
    assert full.shape == (5, 8)  # both exposed variables of the 4 other units
    with pytest.raises(ValueError, match="density must be in"):
        cells.coupled_columns(cells.columnar_lstm(4), density=1.5)
    with pytest.raises(ValueError, match="element-wise"):
        cells.coupled_columns(cells.dense_lstm(4), density=0.5)


@pytest.mark.parametrize("name", sorted(DENSE))
def test_tbptt_with_long_window_equals_bptt(name):
    cell = DENSE[name]()
    problem = random_problem(cell, KEY, steps=9, reset_at=4)
    _, truth = exact(cell, squared_error, *problem)
    for truncation in (9, 12):
        _, grads = online(truncated_bptt(cell, truncation), squared_error, *problem)
        assert_trees_close(grads, truth)


def _truncated_autodiff(cell, truncation, params, head, xs, resets, targets):
    """Sum over t of d loss_t through steps t-T+1..t from the stop-gradient state before them."""
    total = jax.tree.map(jnp.zeros_like, (params, head))
    for t in range(xs.shape[0]):
        first = max(0, t - truncation + 1)
        _, start = bptt.unroll(cell, params, xs[:first], resets[:first])

        def loss_t(params, head, first=first, t=t, start=start):
            features, _ = bptt.unroll(
                cell,
                params,
                xs[first : t + 1],
                resets[first : t + 1],
                jax.lax.stop_gradient(start),
            )
            return squared_error(head, features[-1], targets[t])

        total = jax.tree.map(jnp.add, total, jax.grad(loss_t, argnums=(0, 1))(params, head))
    return total


@pytest.mark.parametrize("truncation", [1, 2, 3])
@pytest.mark.parametrize("name", ["dense_lstm", "dense_gru"])
def test_tbptt_equals_autodiff_on_the_truncated_graph(name, truncation):
    """Covers the window's oldest step reading the state *before* it (T + 1 states)."""
    cell = DENSE[name]()
    problem = random_problem(cell, KEY, steps=8, reset_at=5)
    _, grads = online(truncated_bptt(cell, truncation), squared_error, *problem)
    assert_trees_close(grads, _truncated_autodiff(cell, truncation, *problem))


def test_tbptt_every_t_steps_blocks():
    cell = cells.dense_lstm(4)
    params, head, xs, resets, targets = random_problem(cell, KEY, steps=12, reset_at=7)
    block = jax.jit(block_value_and_grad, static_argnums=(0, 1))
    state = cell.initial_state(params)
    for start in range(0, 12, 4):
        sl = slice(start, start + 4)
        loss, grads, new_state = block(
            cell, squared_error, params, head, state, xs[sl], resets[sl], targets[sl]
        )
        truth_loss, truth = bptt.value_and_grad(
            cell, squared_error, params, head, xs[sl], resets[sl], targets[sl], state
        )
        assert jnp.allclose(loss, truth_loss)
        assert_trees_close(grads, truth)
        _, expected_state = bptt.unroll(cell, params, xs[: start + 4], resets[: start + 4])
        assert_trees_close(new_state, expected_state, tol=1e-12)
        state = new_state


def test_tbptt_rejects_bad_truncation():
    with pytest.raises(ValueError, match="truncation must be at least 1"):
        truncated_bptt(cells.dense_lstm(3), 0)


@pytest.mark.slow
def test_uoro_average_converges_like_one_over_sqrt_k():
    cell = cells.dense_lstm(4)
    params, head, xs, resets, targets = random_problem(cell, KEY, steps=10, reset_at=6)
    _, truth = exact(cell, squared_error, params, head, xs, resets, targets)
    estimator = uoro(cell)
    batched = jax.jit(
        jax.vmap(online_value_and_grad, in_axes=(None, None, None, None, None, None, None, 0)),
        static_argnums=(0, 1),
    )

    def error_of_mean(k, seed):
        states = jax.vmap(lambda key: estimator.init(params, key))(
            jax.random.split(jax.random.PRNGKey(seed), k)
        )
        _, (grads, _) = batched(estimator, squared_error, params, head, xs, resets, targets, states)
        mean = ravel_pytree(jax.tree.map(lambda g: g.mean(0), cells.recurrent_params(grads)))[0]
        target = ravel_pytree(cells.recurrent_params(truth[0]))[0]
        return float(jnp.linalg.norm(mean - target) / jnp.linalg.norm(target))

    # Average over a few independent repetitions so the ratio is not one draw's luck.
    small = np.mean([error_of_mean(100, s) for s in range(3)])
    large = np.mean([error_of_mean(1600, s) for s in range(3)])
    assert 2.5 < small / large < 6.5  # 1/sqrt(K): a factor 4 for 16x the samples
    assert large < 0.5


def test_uoro_streams_have_independent_noise_and_reset():
    cell = cells.dense_rnn(3)
    estimator = uoro(cell)
    params, head, xs, resets, targets = random_problem(cell, KEY, steps=5)
    a = estimator.init(params, jax.random.PRNGKey(1))
    b = estimator.init(params, jax.random.PRNGKey(2))
    for t in range(5):
        _, a = estimator.step(params, a, xs[t], False)
        _, b = estimator.step(params, b, xs[t], False)
    assert_trees_close(a.cell_state, b.cell_state, tol=0.0)  # same forward computation
    assert not jnp.allclose(a.state_factor, b.state_factor)
    _, after = estimator.step(params, a, xs[0], True)
    _, fresh = estimator.step(params, estimator.init(params, a.key), xs[0], False)
    assert_trees_close(after.param_factor, fresh.param_factor, tol=1e-12)


@pytest.mark.parametrize(
    "make_estimator",
    [snap1, uoro, lambda c: truncated_bptt(c, 3)],
    ids=["snap1", "uoro", "tbptt"],
)
def test_vmap_over_streams_matches_each_stream(make_estimator):
    cell = cells.dense_gru(3)
    estimator = make_estimator(cell)
    params, head, _, _, _ = random_problem(cell, KEY)
    streams = [
        random_problem(cell, k, steps=7, reset_at=r)
        for k, r in zip(jax.random.split(KEY, 2), [None, 3])
    ]
    xs, resets, targets = (jnp.stack([s[i] for s in streams]) for i in (2, 3, 4))
    batched = jax.jit(
        jax.vmap(online_value_and_grad, in_axes=(None, None, None, None, 0, 0, 0)),
        static_argnums=(0, 1),
    )
    _, grads = batched(estimator, squared_error, params, head, xs, resets, targets)
    for i in range(2):
        _, grads_i = online(estimator, squared_error, params, head, xs[i], resets[i], targets[i])
        assert_trees_close(jax.tree.map(lambda g, i=i: g[i], grads), grads_i, tol=1e-10)
