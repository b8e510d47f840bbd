"""TD(lambda) learner and hindsight returns."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close

from rtrl import cells
from rtrl.gradients import bptt, columnar_rtrl
from rtrl.learners import discounted_returns, rmsprop_on_update, td_lambda

pytestmark = pytest.mark.float64

KEY = jax.random.PRNGKey(0)


def value_by_bptt(cell, params, xs, resets):
    """V of the last observation, by unrolling the whole prefix (ground truth)."""
    features, _ = bptt.unroll(cell, params["cell"], xs, resets)
    return params["head"]["w"] @ features[-1] + params["head"]["b"]


def random_stream(steps, num_inputs=3, episode_end=None):
    k_x, k_c = jax.random.split(KEY)
    xs = jax.random.normal(k_x, (steps, num_inputs))
    cumulants = jax.random.normal(k_c, (steps,))
    discounts = jnp.full((steps,), 0.9)
    resets = jnp.zeros(steps, bool)
    if episode_end is not None:  # x[episode_end] starts a new episode
        discounts = discounts.at[episode_end].set(0.0)
        resets = resets.at[episode_end].set(True)
    return xs, cumulants, discounts, resets


def run(learner, state, xs, cumulants, discounts, resets):
    history = []
    for t in range(xs.shape[0]):
        state, metrics = learner.step(state, xs[t], cumulants[t], discounts[t], resets[t])
        history.append((state, metrics))
    return history


def test_td0_update_matches_hand_computation():
    cell = cells.linear_rtu(3)
    alpha = 0.1
    learner = td_lambda(columnar_rtrl(cell), optax.sgd(alpha), lambda_=0.0)
    state = learner.init(KEY, 3)
    # Non-zero head so that the cell parameters get a gradient too.
    state = state._replace(params={**state.params, "head": {"w": jnp.arange(6.0) / 6, "b": 0.2}})
    xs, cumulants, discounts, resets = random_stream(2)
    params0 = state.params
    (s1, m1), (s2, m2) = run(learner, state, xs, cumulants, discounts, resets)
    # Step 1 only computes V_0: no TD error yet, no update.
    assert m1["td_error"] == 0.0
    assert_trees_close(s1.params, params0, tol=0.0)
    v0 = value_by_bptt(cell, params0, xs[:1], resets[:1])
    v1 = value_by_bptt(cell, params0, xs[:2], resets[:2])
    delta = cumulants[1] + discounts[1] * v1 - v0
    np.testing.assert_allclose(m2["td_error"], delta, rtol=1e-10)
    grad_v0 = jax.grad(lambda p: value_by_bptt(cell, p, xs[:1], resets[:1]))(params0)
    expected = jax.tree.map(lambda p, g: p + alpha * delta * g, params0, grad_v0)
    assert_trees_close(s2.params, expected, tol=1e-10)


@pytest.mark.parametrize("episode_end", [None, 4], ids=["continuing", "episode_end"])
def test_trace_equals_discounted_sum_of_value_gradients(episode_end):
    """With fixed parameters, e_t = sum_k lambda^k (prod of the k entering discounts) grad V_{t-k};
    an episode end (discount 0) cuts the sum."""
    cell = cells.columnar_lstm(3, init_scale=0.5)
    lam = 0.8
    learner = td_lambda(columnar_rtrl(cell), optax.sgd(0.0), lambda_=lam)
    state = learner.init(KEY, 3)
    state = state._replace(params={**state.params, "head": {"w": jnp.ones(3), "b": 0.0}})
    xs, cumulants, discounts, resets = random_stream(8, episode_end=episode_end)
    history = run(learner, state, xs, cumulants, discounts, resets)
    params = state.params
    grads = [
        jax.grad(lambda p, t=t: value_by_bptt(cell, p, xs[: t + 1], resets[: t + 1]))(params)
        for t in range(8)
    ]
    for t in range(8):
        expected = jax.tree.map(jnp.zeros_like, params)
        weight = 1.0
        for k in range(t + 1):
            expected = jax.tree.map(lambda e, g, w=weight: e + w * g, expected, grads[t - k])
            weight *= lam * float(discounts[t - k])
        assert_trees_close(history[t][0].trace, expected, tol=1e-9)


def test_last_td_error_of_an_episode_reaches_its_states():
    """At the transition into a new episode (discount 0) the update uses the old trace, whole."""
    cell = cells.linear_rtu(2)
    learner = td_lambda(columnar_rtrl(cell), optax.sgd(0.5), lambda_=0.9)
    state = learner.init(KEY, 3)
    xs, cumulants, discounts, resets = random_stream(6, episode_end=4)
    history = run(learner, state, xs, cumulants, discounts, resets)
    before, after = history[3][0], history[4][0]
    delta = history[4][1]["td_error"]
    np.testing.assert_allclose(delta, cumulants[4] - before.value, rtol=1e-12)  # no bootstrap
    expected = jax.tree.map(lambda p, e: p + 0.5 * delta * e, before.params, before.trace)
    assert_trees_close(after.params, expected, tol=1e-10)


def test_rmsprop_on_update_matches_reference_rule():
    optimizer = rmsprop_on_update(0.01, decay=0.9, initial_scale=1.0, eps=1e-8)
    params = {"a": jnp.array([1.0, -2.0])}
    opt_state = optimizer.init(params)
    n = np.ones(2)
    theta = np.array([1.0, -2.0])
    for update in ([0.5, -1.0], [2.0, 0.1]):  # delta * e
        n = 0.9 * n + 0.1 * np.square(update)
        theta = theta + 0.01 * np.array(update) / (np.sqrt(n) + 1e-8)
        direction = {"a": -jnp.array(update)}
        updates, opt_state = optimizer.update(direction, opt_state, params)
        params = optax.apply_updates(params, updates)
        np.testing.assert_allclose(params["a"], theta, rtol=1e-10)


def test_discounted_returns_match_direct_sums():
    rng = np.random.default_rng(0)
    cumulants = rng.normal(size=30)
    discounts = np.where(rng.random(30) < 0.1, 0.0, 0.9)
    returns = np.asarray(discounted_returns(jnp.asarray(cumulants), jnp.asarray(discounts)))
    for t in range(30):  # G_t = sum_{k>t} (prod_{t<j<k} gamma_j) c_k
        direct, weight = 0.0, 1.0
        for k in range(t + 1, 30):
            direct += weight * cumulants[k]
            weight *= discounts[k]
        np.testing.assert_allclose(returns[t], direct, rtol=1e-10, atol=1e-12)


def test_running_normalizer_follows_the_reference_rule():
    from rtrl.networks import normalize, normalizer_init, normalizer_update

    state = normalizer_init(2)
    mean, var = np.zeros(2), np.ones(2)
    for x in ([1.0, -2.0], [3.0, 0.5], [0.0, 0.0]):
        state = normalizer_update(state, jnp.array(x), rate=0.9, floor=0.05)
        mean = 0.9 * mean + 0.1 * np.array(x)
        var = np.maximum(0.9 * var + 0.1 * (np.array(x) - mean) ** 2, 0.05)
        np.testing.assert_allclose(state.mean, mean, rtol=1e-12)
        np.testing.assert_allclose(state.variance, var, rtol=1e-12)
    x = jnp.array([2.0, 1.0])
    np.testing.assert_allclose(normalize(state, x, 0.9), (x - mean) / np.sqrt(var), rtol=1e-12)
    assert normalize(state, x, 1.0) is x  # rate 1: off
    # Statistics are constants for the gradient.
    grad = jax.grad(lambda x: normalize(state, x, 0.9).sum())(x)
    np.testing.assert_allclose(grad, 1 / np.sqrt(var), rtol=1e-12)


def test_td_with_feature_normalisation_uses_the_statistics_before_the_step():
    cell = cells.linear_rtu(2)
    learner = td_lambda(columnar_rtrl(cell), optax.sgd(0.1), 0.5, feature_norm_rate=0.9)
    state = learner.init(KEY, 3)
    state = state._replace(params={**state.params, "head": {"w": jnp.ones(4), "b": 0.0}})
    xs, cumulants, discounts, resets = random_stream(3)
    for t in range(3):
        stats = state.feature_stats
        features = cells.step(cell, state.params["cell"], state.est_state.cell_state, xs[t])[1]
        head = state.params["head"]
        expected = head["w"] @ ((features - stats.mean) / jnp.sqrt(stats.variance)) + head["b"]
        state, metrics = learner.step(state, xs[t], cumulants[t], discounts[t])
        np.testing.assert_allclose(metrics["value"], expected, rtol=1e-10)
        assert not jnp.allclose(state.feature_stats.mean, stats.mean)


@pytest.mark.parametrize("bias_step_per_feature", [True, False])
def test_head_step_per_feature_divides_the_weights_and_optionally_the_bias(bias_step_per_feature):
    """With SGD the first TD update is alpha * delta * grad V_0: the weights' share divided by
    the features in use, the bias's divided only under the reference's rule."""
    cell = cells.linear_rtu(2)
    alpha, rate = 0.1, 0.9
    learner = td_lambda(columnar_rtrl(cell), optax.sgd(alpha), 0.5, feature_norm_rate=rate,
                        head_step_per_feature=True,
                        bias_step_per_feature=bias_step_per_feature)  # fmt: skip
    plain = td_lambda(columnar_rtrl(cell), optax.sgd(alpha), 0.5, feature_norm_rate=rate)
    xs, cumulants, discounts, _ = random_stream(2)
    updates = {}
    for name, rule in (("divided", learner), ("plain", plain)):
        state = rule.init(KEY, 3)
        before = state.params["head"]
        for t in range(2):
            state, metrics = rule.step(state, xs[t], cumulants[t], discounts[t])
        updates[name] = jax.tree.map(jnp.subtract, state.params["head"], before)
    features = cell.num_features
    np.testing.assert_allclose(updates["divided"]["w"], updates["plain"]["w"] / features)
    bias_scale = 1 / features if bias_step_per_feature else 1.0
    np.testing.assert_allclose(updates["divided"]["b"], updates["plain"]["b"] * bias_scale)
    assert abs(float(updates["plain"]["b"])) > 0


def test_divided_head_step_needs_normalised_features():
    with pytest.raises(ValueError, match="assumes normalised features"):
        td_lambda(columnar_rtrl(cells.linear_rtu(2)), optax.sgd(0.1), 0.5,
                  head_step_per_feature=True)  # fmt: skip
