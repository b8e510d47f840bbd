"""Recurrent Trace Units, RTU (Elelimy et al. 2024).

A complex diagonal recurrence lambda_k = r_k e^{i theta_k} in real form, with two state vectors::

    g = r cos(theta), phi = r sin(theta), eta = sqrt(1 - r^2)
    a1_t = g * c1_{t-1} - phi * c2_{t-1} + eta * (W1 x_t)
    a2_t = g * c2_{t-1} + phi * c1_{t-1} + eta * (W2 x_t)

- linear RTU:    c_t = a_t,    features f([c1_t; c2_t]) (f outside the recurrence)
- nonlinear RTU: c_t = f(a_t), features [c1_t; c2_t]

Parameterisation "exp-exp": r = exp(-exp(nu_log)), theta = exp(theta_log). Gradients are with
respect to nu_log and theta_log (autodiff of the unit step applies the chain rule, including the
factor theta in d/d theta_log).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, activation, lecun_normal, unit_form_cell
from rtrl.cells.diagonal import modulus_and_phase, ring_init


def rtu(
    units: int,
    *,
    nonlinear: bool = False,
    nonlinearity: str = "tanh",
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
) -> Cell:
    """RTU with ``units`` complex units (2 * units features).

    Initialisation as in the reference: r = sqrt(u), u ~ U[r_min^2, r_max^2];
    theta = max_phase * u'; W1, W2 lecun-normal. ``nonlinearity`` is f: applied to the state
    (nonlinear) or only to the features (linear).
    """
    f = activation(nonlinearity)

    def init(key: jax.Array, num_inputs: int):
        k_ring, k1, k2 = jax.random.split(key, 3)
        nu_log, theta_log = ring_init(k_ring, units, r_min, r_max, max_phase)
        return {
            "inputs": {
                "W1": lecun_normal(k1, (units, num_inputs), num_inputs),
                "W2": lecun_normal(k2, (units, num_inputs), num_inputs),
            },
            "unit": {"nu_log": nu_log, "theta_log": theta_log},
            "readout": {},
        }

    def unit_step(p, s, u):
        r, theta = modulus_and_phase(p["nu_log"], p["theta_log"])
        g, phi, eta = r * jnp.cos(theta), r * jnp.sin(theta), jnp.sqrt(1.0 - r**2)
        a1 = g * s["c1"] - phi * s["c2"] + eta * u["W1"]
        a2 = g * s["c2"] + phi * s["c1"] + eta * u["W2"]
        if nonlinear:
            a1, a2 = f(a1), f(a2)
        return {"c1": a1, "c2": a2}

    def readout(readout_params, state, x):
        features = jnp.concatenate([state["c1"], state["c2"]])
        return features if nonlinear else f(features)

    kind = "nonlinear" if nonlinear else "linear"
    return unit_form_cell(
        name=f"{kind}_rtu[{nonlinearity}]",
        units=units,
        num_features=2 * units,
        init=init,
        state_names=("c1", "c2"),
        unit_step=unit_step,
        exposed=("c1", "c2"),
        readout=readout,
        # Measured (python -m rtrl.bench cells): vmapped streams run this cell faster on CPU.
        streams_last_fast=False,
    )


def linear_rtu(units: int, nonlinearity: str = "tanh", **options) -> Cell:
    """Linear recurrence; ``nonlinearity`` applied to the features only."""
    return rtu(units, nonlinear=False, nonlinearity=nonlinearity, **options)


def nonlinear_rtu(units: int, nonlinearity: str = "tanh", **options) -> Cell:
    """``nonlinearity`` applied inside the recurrence (tanh or relu in the paper)."""
    return rtu(units, nonlinear=True, nonlinearity=nonlinearity, **options)
