"""Explicit checks for the chain-rule mistakes of public RTU and online-LRU implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import random_problem, squared_error

from rtrl import cells
from rtrl.gradients import bptt, columnar_rtrl, online_value_and_grad

pytestmark = pytest.mark.float64


def test_rtu_theta_log_gradient_carries_the_factor_theta():
    """d/d theta_log = theta * d/d theta; with theta far from 1 the factor matters."""
    cell = cells.linear_rtu(4, "tanh", max_phase=3.0)
    params, head, xs, resets, targets = random_problem(cell, jax.random.PRNGKey(0), steps=15)
    theta = jnp.array([1.5, 2.0, 2.5, 3.0])
    params["unit"]["theta_log"] = jnp.log(theta)

    _, (grads, _) = online_value_and_grad(
        columnar_rtrl(cell), squared_error, params, head, xs, resets, targets
    )

    def loss_in_theta(theta):
        p = {**params, "unit": {**params["unit"], "theta_log": jnp.log(theta)}}
        return bptt.sequence_loss(cell, squared_error, p, head, xs, resets, targets)

    grad_theta = jax.grad(loss_in_theta)(theta)
    np.testing.assert_allclose(grads["unit"]["theta_log"], theta * grad_theta, rtol=1e-9)
    # The public mistake (gradient with respect to theta used for theta_log) differs clearly.
    assert not np.allclose(grads["unit"]["theta_log"], grad_theta, rtol=0.1)


def test_lru_input_trace_uses_gamma_not_gamma_log():
    """After one step from rest, d h_re / d B_re[k, j] = gamma_k x_j with gamma = exp(gamma_log)."""
    cell = cells.online_lru(3, outputs=2)
    params = cell.init(jax.random.PRNGKey(1), 4)
    gamma = jnp.array([0.3, 0.5, 0.8])
    params["unit"]["gamma_log"] = jnp.log(gamma)
    estimator = columnar_rtrl(cell)
    x = jnp.array([1.0, -2.0, 0.5, 3.0])
    _, est_state = estimator.step(params, estimator.init(params), x, False)
    h_re = sorted(est_state.cell_state).index("h_re")  # traces follow the state's pytree order
    trace = est_state.traces["inputs"]["B_re"][:, h_re, :]
    np.testing.assert_allclose(trace, gamma[:, None] * x[None, :], rtol=1e-12)
    assert not np.allclose(trace, jnp.log(gamma)[:, None] * x[None, :])


def test_lru_input_gradient_direction_matches_bptt_for_small_gamma():
    cell = cells.online_lru(3, outputs=2)
    params, head, xs, resets, targets = random_problem(cell, jax.random.PRNGKey(2), steps=12)
    params["unit"]["gamma_log"] = jnp.log(jnp.array([0.2, 0.4, 0.6]))
    _, (grads, _) = online_value_and_grad(
        columnar_rtrl(cell), squared_error, params, head, xs, resets, targets
    )
    _, (truth, _) = bptt.value_and_grad(cell, squared_error, params, head, xs, resets, targets)
    for name in ("B_re", "B_im"):
        np.testing.assert_allclose(grads["inputs"][name], truth["inputs"][name], rtol=1e-9)
    np.testing.assert_allclose(grads["unit"]["gamma_log"], truth["unit"]["gamma_log"], rtol=1e-9)
