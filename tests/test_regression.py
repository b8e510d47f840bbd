"""Online regression (rtrl.learners.regression): the same numbers for a seed; it learns a memory."""

import jax
import jax.numpy as jnp
import optax
import pytest

from rtrl import cells
from rtrl.envs import delayed_signal
from rtrl.gradients import columnar_rtrl
from rtrl.learners import online_regression

pytestmark = pytest.mark.float64


def run_learner(seed: int, steps: int = 3000):
    learner = online_regression(columnar_rtrl(cells.linear_rtu(8, "identity")), optax.adam(1e-2))
    env_params = delayed_signal.DelayedSignalParams(delay=2, noise=0.1)
    k_learner, k_env, k_stream = jax.random.split(jax.random.PRNGKey(seed), 3)
    state = learner.init(k_learner, delayed_signal.NUM_OBSERVATIONS)
    env_state = delayed_signal.reset(k_env, env_params)

    def one_step(carry, key):
        state, env_state = carry
        env_state, x, y = delayed_signal.step(key, env_state, env_params)
        state, metrics = learner.step(state, x, y)
        return (state, env_state), 2.0 * metrics["loss"]

    _, errors = jax.jit(lambda c, ks: jax.lax.scan(one_step, c, ks))(
        (state, env_state), jax.random.split(k_stream, steps)
    )
    return errors


def test_same_seed_same_numbers_and_different_seed_different_numbers():
    assert jnp.array_equal(run_learner(0, 300), run_learner(0, 300))
    assert not jnp.array_equal(run_learner(0, 300), run_learner(1, 300))


@pytest.mark.slow
def test_learns_the_delayed_signal_online():
    errors = run_learner(0)
    # Memoryless predictors cannot go below 1 + noise^2 = 1.01; the RTU must remember.
    assert float(jnp.mean(errors[:200])) > 0.3
    assert float(jnp.mean(errors[-500:])) < 0.2


def test_delayed_signal_target_is_the_delayed_observation():
    params = delayed_signal.DelayedSignalParams(delay=3, noise=0.0)
    state = delayed_signal.reset(jax.random.PRNGKey(0), params)
    observations, targets = [], []
    for key in jax.random.split(jax.random.PRNGKey(1), 10):
        state, x, y = delayed_signal.step(key, state, params)
        observations.append(x)
        targets.append(y)
    assert all(float(x[1]) == 1.0 for x in observations)  # layout [signal, bias]
    for t in range(3, 10):
        assert float(targets[t]) == float(observations[t - 3][0])
    assert all(float(y) == 0.0 for y in targets[:3])
