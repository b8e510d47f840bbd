"""Each cell's step against the spec's equations written out directly, and its initialisation."""

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrl import cells

pytestmark = pytest.mark.float64

KEY = jax.random.PRNGKey(0)
D = 3


def run_steps(cell, params, xs):
    state = cell.initial_state(params)
    outputs = []
    for x in xs:
        state, features = cells.step(cell, params, state, x)
        outputs.append(features)
    return state, outputs


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_columnar_lstm_matches_scalar_lstm_equations():
    cell = cells.columnar_lstm(5, init_scale=0.8)
    params = jax.tree.map(np.asarray, cell.init(KEY, D))
    xs = np.asarray(jax.random.normal(KEY, (4, D)))
    W, u, b = params["inputs"]["W"], params["unit"]["u"], params["unit"]["b"]
    h, c = np.zeros(5), np.zeros(5)
    _, outputs = run_steps(cell, params, xs)
    for x, out in zip(xs, outputs):
        z = {a: W[:, k] @ x + u[:, k] * h + b[:, k] for k, a in enumerate("ifog")}
        c = sigmoid(z["f"]) * c + sigmoid(z["i"]) * np.tanh(z["g"])
        h = sigmoid(z["o"]) * np.tanh(c)
        np.testing.assert_allclose(out, h, rtol=1e-12)


def test_elstm_matches_equations():
    cell = cells.elstm(4, init_std=0.7)
    p = jax.tree.map(np.asarray, cell.init(KEY, D))
    xs = np.asarray(jax.random.normal(KEY, (4, D)))
    c = np.zeros(4)
    _, outputs = run_steps(cell, p, xs)
    for x, out in zip(xs, outputs):
        inp, unit, ro = p["inputs"], p["unit"], p["readout"]
        z = np.tanh(inp["Z"] @ x + unit["w_z"] * c + unit["b_z"])
        f = sigmoid(inp["F"] @ x + unit["w_f"] * c + unit["b_f"])
        c = f * c + (1 - f) * z
        o = sigmoid(ro["O"] @ np.concatenate([x, c]) + ro["b_o"])
        np.testing.assert_allclose(out, o * c, rtol=1e-12)


@pytest.mark.parametrize("nonlinear", [False, True])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rtu_matches_complex_recurrence(nonlinear, nonlinearity):
    """Real form of lambda * c + eta * (W1 x + i W2 x), lambda = r e^{i theta}."""
    cell = cells.rtu(3, nonlinear=nonlinear, nonlinearity=nonlinearity)
    p = jax.tree.map(np.asarray, cell.init(KEY, D))
    f = np.tanh if nonlinearity == "tanh" else (lambda a: np.maximum(a, 0))
    r = np.exp(-np.exp(p["unit"]["nu_log"]))
    lam = r * np.exp(1j * np.exp(p["unit"]["theta_log"]))
    eta = np.sqrt(1 - r**2)
    xs = np.asarray(jax.random.normal(KEY, (5, D)))
    c = np.zeros(3, complex)
    _, outputs = run_steps(cell, p, xs)
    for x, out in zip(xs, outputs):
        a = lam * c + eta * (p["inputs"]["W1"] @ x + 1j * p["inputs"]["W2"] @ x)
        c = f(a.real) + 1j * f(a.imag) if nonlinear else a
        features = np.concatenate([c.real, c.imag])
        np.testing.assert_allclose(out, features if nonlinear else f(features), rtol=1e-12)


@pytest.mark.parametrize("skip", [True, False])
def test_online_lru_matches_complex_recurrence(skip):
    cell = cells.online_lru(3, outputs=2, skip=skip)
    p = jax.tree.map(np.asarray, cell.init(KEY, D))
    unit, ro = p["unit"], p["readout"]
    lam = np.exp(-np.exp(unit["nu_log"]) + 1j * np.exp(unit["theta_log"]))
    gamma = np.exp(unit["gamma_log"])
    B = p["inputs"]["B_re"] + 1j * p["inputs"]["B_im"]
    C = ro["C_re"] + 1j * ro["C_im"]
    xs = np.asarray(jax.random.normal(KEY, (5, D)))
    h = np.zeros(3, complex)
    _, outputs = run_steps(cell, p, xs)
    for x, out in zip(xs, outputs):
        h = lam * h + gamma * (B @ x)
        y = (C @ h).real + (ro["D"] @ x if skip else 0.0)
        np.testing.assert_allclose(out, y, rtol=1e-12)
    assert ("D" in ro) == skip


def test_elementwise_rnn_matches_equation():
    cell = cells.elementwise_rnn(4)
    p = jax.tree.map(np.asarray, cell.init(KEY, D))
    xs = np.asarray(jax.random.normal(KEY, (4, D)))
    h = np.zeros(4)
    _, outputs = run_steps(cell, p, xs)
    for x, out in zip(xs, outputs):
        h = np.tanh(p["inputs"]["W"] @ x + p["unit"]["u"] * h + p["unit"]["b"])
        np.testing.assert_allclose(out, h, rtol=1e-12)


def test_units_are_independent(cell):
    """Element-wise: perturbing one unit's parameters changes no other unit's state."""
    params = cell.init(KEY, D)
    xs = jax.random.normal(KEY, (6, D))
    base, _ = run_steps(cell, params, xs)
    bumped_params = jax.tree.map(lambda a: a.at[1].add(0.3), {**params, "readout": {}})
    bumped, _ = run_steps(cell, {**bumped_params, "readout": params["readout"]}, xs)
    for name in base:
        changed = np.abs(np.asarray(bumped[name] - base[name])) > 0
        assert changed[1] and not changed[[0, 2, 3]].any(), name


def test_parameter_counts():
    d, n = 7, 5
    assert cells.count_params(cells.columnar_lstm(n).init(KEY, d)) == 4 * n * (d + 2)
    assert cells.count_params(cells.linear_rtu(n).init(KEY, d)) == 2 * n * d + 2 * n
    elstm = cells.elstm(n).init(KEY, d)
    assert cells.count_params(cells.recurrent_params(elstm)) == 2 * n * d + 4 * n
    assert cells.count_params(elstm["readout"]) == n * (d + n) + n


def test_columnar_lstm_init_range():
    params = cells.columnar_lstm(64, init_scale=0.01).init(KEY, 16)
    leaves = np.concatenate([np.ravel(a) for a in jax.tree.leaves(params)])
    assert np.all(np.abs(leaves) <= 0.01) and np.std(leaves) > 0.004  # U(-a, a): std a/sqrt(3)


def test_elstm_init_scale_and_forget_bias():
    params = cells.elstm(2000, init_std=0.1, forget_bias=2.0).init(KEY, 8)
    assert abs(float(np.std(params["inputs"]["Z"])) - 0.1) < 0.005
    assert abs(float(np.mean(params["unit"]["b_f"])) - 2.0) < 0.02


@pytest.mark.parametrize("factory", [cells.linear_rtu, cells.online_lru])
def test_ring_initialisation(factory):
    r_min, r_max, max_phase = 0.4, 0.9, math.pi / 3
    params = factory(4000, r_min=r_min, r_max=r_max, max_phase=max_phase).init(KEY, 4)
    r = np.exp(-np.exp(np.asarray(params["unit"]["nu_log"])))
    theta = np.exp(np.asarray(params["unit"]["theta_log"]))
    assert r.min() >= r_min - 1e-6 and r.max() <= r_max + 1e-6
    assert theta.min() > 0 and theta.max() <= max_phase + 1e-6
    # |lambda|^2 uniform on [r_min^2, r_max^2]: its mean is the midpoint.
    assert abs(np.mean(r**2) - (r_min**2 + r_max**2) / 2) < 0.01
    assert abs(np.mean(theta) - max_phase / 2) < 0.02
    if "gamma_log" in params["unit"]:
        gamma = np.exp(np.asarray(params["unit"]["gamma_log"]))
        np.testing.assert_allclose(gamma, np.sqrt(1 - r**2), rtol=1e-6)


def test_default_ring_init_is_finite():
    # (a narrow LRU readout: the default, as wide as the units, would be 10000 x 10000)
    for cell in (cells.linear_rtu(10000), cells.online_lru(10000, outputs=4)):
        params = cell.init(KEY, 4)
        assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(params))


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="unknown cell 'gru'; choose one of"):
        cells.make_cell("gru", 4)
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        cells.linear_rtu(4, "softplus")
    with pytest.raises(ValueError, match="r_min <= r_max"):
        cells.linear_rtu(4, r_min=0.9, r_max=0.5).init(KEY, 2)


def test_cells_run_in_float32_by_default():
    """Outside the float64 test configuration, parameters and features are float32."""
    script = (
        "import jax, jax.numpy as jnp\n"
        "from rtrl import cells\n"
        "from rtrl.gradients import columnar_rtrl\n"
        "cell = cells.linear_rtu(4); params = cell.init(jax.random.PRNGKey(0), 3)\n"
        "est = columnar_rtrl(cell)\n"
        "features, state = est.step(params, est.init(params), jnp.ones(3), False)\n"
        "dtypes = {a.dtype for a in jax.tree.leaves((params, features, state))}\n"
        "assert dtypes == {jnp.dtype('float32')}, dtypes\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_elstm_timescale_initialisation():
    """max_timescale T: forget biases log u, u ~ U[1, T - 1], so timescales 1/(1 - f) = 1 + u
    spread over 2..T; the other parameters keep the reference's N(0, 0.1^2)."""
    cell = cells.elstm(2000, max_timescale=16)
    p = cell.init(KEY, D)
    timescales = 1.0 / (1.0 - jax.nn.sigmoid(p["unit"]["b_f"]))
    assert 2.0 - 1e-4 <= float(timescales.min()) and float(timescales.max()) <= 16.0 + 1e-3
    np.testing.assert_allclose(float(jnp.mean(jnp.exp(p["unit"]["b_f"]))), 8.0, rtol=0.05)
    np.testing.assert_allclose(float(jnp.std(p["unit"]["b_z"])), 0.1, rtol=0.1)
    with pytest.raises(ValueError, match="max_timescale must exceed 2"):
        cells.elstm(4, max_timescale=2)
