"""Columnar LSTM (Javed et al. 2021/2023): one scalar LSTM per column.

Each column k has 4 gates a in (i, f, o, g), each with an input row w_a, a self-recurrent scalar
u_a and a bias b_a::

    z_a = w_a . x_t + u_a h_{t-1} + b_a
    c_t = sigma(z_f) c_{t-1} + sigma(z_i) tanh(z_g)
    h_t = sigma(z_o) tanh(c_t)

Parameters per column: 4(d + 2). Features: h (one per column).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, unit_form_cell

GATES = ("i", "f", "o", "g")


def lstm_gates(z: jax.Array, c_prev: jax.Array) -> dict[str, jax.Array]:
    """One LSTM unit from its 4 gate pre-activations z (i, f, o, g) and previous cell c."""
    i, f, o = jax.nn.sigmoid(z[0]), jax.nn.sigmoid(z[1]), jax.nn.sigmoid(z[2])
    c = f * c_prev + i * jnp.tanh(z[3])
    return {"h": o * jnp.tanh(c), "c": c}


def columnar_lstm(units: int, init_scale: float = 0.01) -> Cell:
    """``units`` independent scalar LSTM columns.

    Parameters: ``inputs["W"]`` (units, 4, d) input rows of the gates (i, f, o, g) in that order;
    ``unit["u"]`` (units, 4) self-recurrent weights; ``unit["b"]`` (units, 4) biases.
    All initialised U(-init_scale, init_scale) as in the reference implementation.
    """

    def init(key: jax.Array, num_inputs: int):
        kw, ku, kb = jax.random.split(key, 3)

        def uniform(k, shape):
            return jax.random.uniform(k, shape, minval=-init_scale, maxval=init_scale)

        return {
            "inputs": {"W": uniform(kw, (units, 4, num_inputs))},
            "unit": {"u": uniform(ku, (units, 4)), "b": uniform(kb, (units, 4))},
            "readout": {},
        }

    def unit_step(p, s, u):
        return lstm_gates(u["W"] + p["u"] * s["h"] + p["b"], s["c"])

    return unit_form_cell(
        name="columnar_lstm",
        units=units,
        num_features=units,
        init=init,
        state_names=("c", "h"),
        unit_step=unit_step,
        exposed=("h",),
        readout=lambda readout_params, state, x: state["h"],
    )
