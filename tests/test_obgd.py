"""ObGD and AdaptiveObGD against their update equations, computed by hand and step by step, and
TD(lambda) with ObGD against the equations of stream TD(lambda)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rtrl import cells
from rtrl.gradients import columnar_rtrl
from rtrl.learners import td_lambda
from rtrl.learners.optim import adaptive_obgd, make_optimizer, obgd

PARAMS = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)])


def direction(delta: float, trace: list[float]) -> dict:
    """What a learner passes: -delta z, for its trace z."""
    return {"a": -delta * jnp.array(trace[:2]), "b": -delta * jnp.array(trace[2])}


@pytest.mark.float64
def test_obgd_by_hand_a_cut_step_an_uncut_step_and_no_error():
    opt = obgd(step_size=1.0, kappa=2.0)
    state = opt.init(PARAMS)
    # z = (0.5, 1, -1), delta 0.3: max(|delta|, 1) = 1, |z|_1 = 2.5, M = 1 * 2 * 1 * 2.5 = 5, so
    # the step is 1/5 and the update 0.2 * 0.3 * z.
    updates, state = opt.update(direction(0.3, [0.5, 1.0, -1.0]), state, td_error=0.3)
    np.testing.assert_allclose(flat(updates), 0.06 * np.array([0.5, 1.0, -1.0]))
    # z = (0.25, 1.5, 1.5), delta -3: max(|delta|, 1) = 3, |z|_1 = 3.25, M = 2 * 3 * 3.25 = 19.5.
    updates, state = opt.update(direction(-3.0, [0.25, 1.5, 1.5]), state, td_error=-3.0)
    np.testing.assert_allclose(flat(updates), -3.0 / 19.5 * np.array([0.25, 1.5, 1.5]))
    # A small step is not cut: M = 0.01 * 2 * 1 * 2.5 < 1.
    small = obgd(step_size=0.01, kappa=2.0)
    updates, _ = small.update(direction(0.3, [0.5, 1.0, -1.0]), small.init(PARAMS), td_error=0.3)
    np.testing.assert_allclose(flat(updates), 0.01 * 0.3 * np.array([0.5, 1.0, -1.0]))
    updates, _ = opt.update(direction(0.0, [0.5, 1.0, -1.0]), state, td_error=0.0)
    assert not flat(updates).any() and np.isfinite(flat(updates)).all()


@pytest.mark.float64
def test_adaptive_obgd_first_step_by_hand():
    beta2, eps = 0.999, 1e-8
    opt = adaptive_obgd(step_size=1.0, kappa=2.0)
    z, delta = np.array([0.5, 1.0, -1.0]), 0.3
    updates, state = opt.update(direction(delta, list(z)), opt.init(PARAMS), td_error=delta)
    v = (1 - beta2) * (delta * z) ** 2
    scaled = z / np.sqrt(v / (1 - beta2) + eps)  # z / |0.3 z|, up to eps
    bound = 1.0 * 2.0 * 1.0 * np.abs(scaled).sum()
    np.testing.assert_allclose(flat(updates), delta * scaled / max(bound, 1.0))
    np.testing.assert_allclose(flat(state.second_moment), v)


@pytest.mark.float64
@pytest.mark.parametrize("adaptive", [False, True])
def test_obgd_follows_its_equations_over_many_steps_and_bounds_the_step(adaptive):
    """Against a plain NumPy transcription; and the bound that names ObGD:
    step * kappa * max(|delta|, 1) * |z|_1 <= 1 wherever the step is cut."""
    kappa, alpha, beta2, eps = 3.0, 1.0, 0.999, 1e-8
    opt = obgd(alpha, kappa, adaptive=adaptive)
    state = opt.init(PARAMS)
    v = np.zeros(3)
    rng = np.random.default_rng(0)
    for t in range(1, 30):
        z, delta = rng.normal(size=3) * 3, rng.normal() * 4
        updates, state = jax.jit(opt.update)(direction(delta, list(z)), state, td_error=delta)
        scaled = z
        if adaptive:
            v = beta2 * v + (1 - beta2) * (delta * z) ** 2
            scaled = z / np.sqrt(v / (1 - beta2**t) + eps)
        step = alpha / max(alpha * kappa * max(abs(delta), 1) * np.abs(scaled).sum(), 1.0)
        np.testing.assert_allclose(flat(updates), step * delta * scaled, rtol=1e-9)
        reach = step * kappa * max(abs(delta), 1) * np.abs(scaled).sum()
        assert step == alpha or reach <= 1.0 + 1e-12


def test_obgd_by_name_holds_its_step_size():
    opt = make_optimizer("obgd", 0.01, kappa=2.0)
    state = jax.jit(opt.init)(PARAMS)  # as the learners build it: the step size is traced
    updates, state = opt.update(direction(0.5, [0.5, 1.0, -1.0]), state, td_error=0.5)
    np.testing.assert_allclose(flat(updates), 0.01 * 0.5 * np.array([0.5, 1.0, -1.0]), rtol=1e-6)
    assert optax.tree_utils.tree_get(state, "step_size") == pytest.approx(0.01)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"step_size": 0.0}, "step_size must be positive"),
        ({"kappa": -1.0}, "kappa must be positive"),
    ],
)
def test_obgd_refuses_a_non_positive_step_size_or_kappa(options, message):
    with pytest.raises(ValueError, match=message):
        obgd(**options)


@pytest.mark.float64
def test_td_lambda_with_obgd_takes_the_bounded_step_of_stream_td():
    """Every step of TD(lambda) with ObGD on an RTU trained by exact RTRL moves the parameters by
    step * delta * z, z the learner's trace before the step and step = alpha / max(1, alpha
    kappa max(|delta|, 1) |z|_1), and the trace restarts at an episode's end."""
    alpha, kappa = 1.0, 2.0
    learner = td_lambda(columnar_rtrl(cells.linear_rtu(3)), obgd(alpha, kappa), 0.8)
    state = learner.init(jax.random.PRNGKey(0), 4)
    rng = np.random.default_rng(1)
    step = jax.jit(learner.step)
    cut = 0
    for t in range(12):
        x = jnp.asarray(rng.normal(size=4))
        discount = 0.0 if t == 6 else 0.9
        new, metrics = step(state, x, jnp.asarray(float(rng.normal())), jnp.asarray(discount))
        delta, z = float(metrics["td_error"]), flat(state.trace)
        bound = alpha * kappa * max(abs(delta), 1.0) * np.abs(z).sum()
        cut += bound > 1
        moved = flat(new.params) - flat(state.params)
        np.testing.assert_allclose(moved, alpha / max(bound, 1.0) * delta * z, atol=1e-12)
        # The next trace is 0.9 * 0.8 * z plus this step's gradient, and the gradient alone
        # where the episode ends (discount 0).
        ended, _ = step(state, x, jnp.asarray(0.0), jnp.asarray(0.0))
        going, _ = step(state, x, jnp.asarray(0.0), jnp.asarray(0.9))
        np.testing.assert_allclose(flat(going.trace) - flat(ended.trace), 0.72 * z, atol=1e-12)
        state = new
    assert cut > 0  # the bound was exercised
    # ObGD's norm is one stream's: a learner of columnar LSTMs, whose streams would be stacked
    # on the last axis, runs them vmapped instead.
    lstm = columnar_rtrl(cells.columnar_lstm(2))
    stacked = td_lambda(lstm, obgd(), 0.8, per_stream_optimizer=True)
    assert lstm.streams_last and not stacked.streams_last
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    states = jax.vmap(stacked.init, in_axes=(0, None))(keys, 4)
    states, metrics = jax.vmap(stacked.step)(states, jnp.ones((2, 4)), jnp.ones(2), jnp.ones(2))
    assert metrics["value"].shape == (2,)
