"""ObGD and AdaptiveObGD against their update equations, computed by hand and step by step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rtrl.learners.optim import adaptive_obgd, make_optimizer, obgd

PARAMS = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
G1 = {"a": jnp.array([0.5, 1.0]), "b": jnp.array(-1.0)}
G2 = {"a": jnp.array([0.0, 1.0]), "b": jnp.array(2.0)}


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)])


@pytest.mark.float64
def test_obgd_two_hand_computed_steps_and_the_reset():
    opt = obgd(step_size=1.0, kappa=2.0, gamma=1.0, trace_lambda=0.5)
    state = opt.init(PARAMS)
    # Step 1: z = g1 = (0.5, 1, -1); delta 0.3 -> max(|delta|, 1) = 1; |z|_1 = 2.5;
    # M = 1 * 2 * 1 * 2.5 = 5, so the step is 1/5 and the update 0.2 * 0.3 * z.
    updates, state = opt.update(G1, state, td_error=0.3)
    np.testing.assert_allclose(flat(updates), 0.06 * np.array([0.5, 1.0, -1.0]))
    # Step 2: z = 0.5 z + g2 = (0.25, 1.5, 1.5); delta -3 -> 3; |z|_1 = 3.25; M = 2 * 3 * 3.25.
    updates, state = opt.update(G2, state, td_error=-3.0, reset=True)
    np.testing.assert_allclose(flat(updates), -3.0 / 19.5 * np.array([0.25, 1.5, 1.5]))
    assert not flat(state.trace).any()  # the episode ended: the trace restarts after the update
    # A small step is not cut: M = 0.01 * 2 * 1 * 2.5 < 1.
    small = obgd(step_size=0.01, kappa=2.0, gamma=1.0, trace_lambda=0.5)
    updates, _ = small.update(G1, small.init(PARAMS), td_error=0.3)
    np.testing.assert_allclose(flat(updates), 0.01 * 0.3 * flat(G1))


@pytest.mark.float64
def test_adaptive_obgd_first_step_by_hand():
    beta2, eps = 0.999, 1e-8
    opt = adaptive_obgd(step_size=1.0, kappa=2.0, gamma=1.0, trace_lambda=0.5)
    updates, state = opt.update(G1, opt.init(PARAMS), td_error=0.3)
    z = flat(G1)
    v = (1 - beta2) * (0.3 * z) ** 2
    scaled = z / np.sqrt(v / (1 - beta2) + eps)  # = z / |0.3 z| up to eps
    bound = 1.0 * 2.0 * 1.0 * np.abs(scaled).sum()
    np.testing.assert_allclose(flat(updates), 0.3 * scaled / max(bound, 1.0))
    np.testing.assert_allclose(flat(state.second_moment), v)


@pytest.mark.float64
@pytest.mark.parametrize("adaptive", [False, True])
def test_obgd_follows_its_equations_over_many_steps_and_bounds_the_step(adaptive):
    """Against a plain NumPy transcription of the equations; and the bound that gives ObGD its
    name: step * kappa * max(|delta|, 1) * |z|_1 <= 1 whenever the step is cut."""
    gamma, lam, kappa, alpha, beta2, eps = 0.99, 0.8, 3.0, 1.0, 0.999, 1e-8
    opt = obgd(alpha, kappa, gamma, lam, adaptive=adaptive)
    state = opt.init(PARAMS)
    z, v = np.zeros(3), np.zeros(3)
    rng = np.random.default_rng(0)
    for t in range(1, 30):
        g, delta, reset = rng.normal(size=3) * 3, rng.normal() * 4, t % 7 == 0
        grads = {"a": jnp.array(g[:2]), "b": jnp.array(g[2])}
        updates, state = jax.jit(opt.update)(grads, state, td_error=delta, reset=reset)
        z = gamma * lam * z + g
        scaled = z
        if adaptive:
            v = beta2 * v + (1 - beta2) * (delta * z) ** 2
            scaled = z / np.sqrt(v / (1 - beta2**t) + eps)
        bound = alpha * kappa * max(abs(delta), 1) * np.abs(scaled).sum()
        step = alpha / max(bound, 1.0)
        np.testing.assert_allclose(flat(updates), step * delta * scaled, rtol=1e-9)
        assert step * kappa * max(abs(delta), 1) * np.abs(scaled).sum() <= 1 + 1e-12 or step == 1
        if reset:
            z = np.zeros(3)
        np.testing.assert_allclose(flat(state.trace), z, atol=1e-12)


def test_obgd_by_name_holds_its_step_size_and_takes_the_td_error():
    opt = make_optimizer("obgd", 0.01, kappa=2.0)
    state = opt.init(PARAMS)
    updates, state = opt.update(G1, state, td_error=jnp.float32(0.5))
    np.testing.assert_allclose(flat(updates), 0.01 * 0.5 * flat(G1), rtol=1e-6)
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
