"""A simple element-wise RNN unit: h_t = f(W x_t + u * h_{t-1} + b)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, activation, lecun_normal, unit_form_cell


def elementwise_rnn(units: int, nonlinearity: str = "tanh", recurrent_range: float = 1.0) -> Cell:
    """Element-wise RNN. W ~ lecun-normal, u ~ U(-recurrent_range, recurrent_range), b = 0."""
    f = activation(nonlinearity)

    def init(key: jax.Array, num_inputs: int):
        kw, ku = jax.random.split(key)
        return {
            "inputs": {"W": lecun_normal(kw, (units, num_inputs), num_inputs)},
            "unit": {
                "u": jax.random.uniform(
                    ku, (units,), minval=-recurrent_range, maxval=recurrent_range
                ),
                "b": jnp.zeros((units,)),
            },
            "readout": {},
        }

    def unit_step(p, s, u):
        return {"h": f(u["W"] + p["u"] * s["h"] + p["b"])}

    return unit_form_cell(
        name=f"elementwise_rnn[{nonlinearity}]",
        units=units,
        num_features=units,
        init=init,
        state_names=("h",),
        unit_step=unit_step,
        exposed=("h",),
        readout=lambda readout_params, state, x: state["h"],
    )
