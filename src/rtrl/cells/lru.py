"""Online LRU (Zucchet et al. 2023), the baseline of Elelimy et al. 2024.

Per unit lambda = exp(-exp(nu_log) + i exp(theta_log)), normalisation gamma = exp(gamma_log)::

    h_t = lambda * h_{t-1} + gamma * (B x_t)       (complex, diagonal)
    y_t = f(Re(C h_t) + D x_t)                     (readout, outside the recurrence)

f is the identity in the paper's LRU. The RTU paper's ablation also restricts the LRU the ways an
RTU can be built: f = tanh on the features (as the linear RTU), or f inside the recurrence on the
real and imaginary parts, h_t = f(lambda * h_{t-1} + gamma * (B x_t)) (``nonlinear_lru``, as the
nonlinear RTU), read out by Re(C h_t) + D x_t.

Stored in real form: h = h_re + i h_im, B = B_re + i B_im, C = C_re + i C_im, so
Re(C h) = C_re h_re - C_im h_im.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, activation, contract, stream_axes_of, unit_form_cell
from rtrl.cells.diagonal import modulus_and_phase, ring_init


def online_lru(
    units: int,
    outputs: int | None = None,
    *,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
    skip: bool = True,
    nonlinearity: str = "identity",
    nonlinear: bool = False,
) -> Cell:
    """Online LRU with ``units`` complex units and ``outputs`` real features (default: units).
    ``nonlinearity`` is f: applied to the readout, or inside the recurrence when ``nonlinear``.

    Initialisation: ring init of lambda on r_min <= |lambda| <= r_max;
    gamma_log = log sqrt(1 - |lambda|^2); B_re, B_im ~ N(0, 1/(2d)); C_re, C_im ~ N(0, 1/(2 units));
    D ~ N(0, 1/d), left out of the parameters when ``skip`` is off.
    """
    outputs = units if outputs is None else outputs
    f = activation(nonlinearity)

    def init(key: jax.Array, num_inputs: int):
        k_ring, kb_re, kb_im, kc_re, kc_im, kd = jax.random.split(key, 6)
        nu_log, theta_log = ring_init(k_ring, units, r_min, r_max, max_phase)
        r, _ = modulus_and_phase(nu_log, theta_log)
        b_scale = 1.0 / jnp.sqrt(2.0 * num_inputs)
        c_scale = 1.0 / jnp.sqrt(2.0 * units)
        readout = {
            "C_re": c_scale * jax.random.normal(kc_re, (outputs, units)),
            "C_im": c_scale * jax.random.normal(kc_im, (outputs, units)),
        }
        if skip:
            readout["D"] = jax.random.normal(kd, (outputs, num_inputs)) / jnp.sqrt(num_inputs)
        return {
            "inputs": {
                "B_re": b_scale * jax.random.normal(kb_re, (units, num_inputs)),
                "B_im": b_scale * jax.random.normal(kb_im, (units, num_inputs)),
            },
            "unit": {
                "nu_log": nu_log,
                "theta_log": theta_log,
                "gamma_log": 0.5 * jnp.log1p(-(r**2)),
            },
            "readout": readout,
        }

    def unit_step(p, s, u):
        r, theta = modulus_and_phase(p["nu_log"], p["theta_log"])
        lam_re, lam_im = r * jnp.cos(theta), r * jnp.sin(theta)
        gamma = jnp.exp(p["gamma_log"])
        h_re = lam_re * s["h_re"] - lam_im * s["h_im"] + gamma * u["B_re"]
        h_im = lam_re * s["h_im"] + lam_im * s["h_re"] + gamma * u["B_im"]
        if nonlinear:
            h_re, h_im = f(h_re), f(h_im)
        return {"h_re": h_re, "h_im": h_im}

    def readout(readout_params, state, x):
        b = stream_axes_of(x)
        y = contract(readout_params["C_re"], state["h_re"], b) - contract(
            readout_params["C_im"], state["h_im"], b
        )
        if "D" in readout_params:
            y = y + contract(readout_params["D"], x, b)
        return y if nonlinear else f(y)

    if nonlinear:
        name = f"nonlinear_lru[{nonlinearity}]"
    else:
        name = "online_lru" + ("" if nonlinearity == "identity" else f"[{nonlinearity}]")
    return unit_form_cell(
        name=name,
        units=units,
        num_features=outputs,
        init=init,
        state_names=("h_re", "h_im"),
        unit_step=unit_step,
        exposed=("h_re", "h_im"),
        readout=readout,
        # Measured (python -m rtrl.bench cells): vmapped streams run this cell faster on CPU.
        streams_last_fast=False,
    )


def nonlinear_lru(units: int, nonlinearity: str = "tanh", **options) -> Cell:
    """The online LRU with ``nonlinearity`` inside the recurrence (the RTU paper's ablation)."""
    return online_lru(units, nonlinearity=nonlinearity, nonlinear=True, **options)
