"""Element-wise LSTM, eLSTM (Irie et al. 2023).

State c (one number per unit)::

    z_t = tanh(Z x_t + w_z * c_{t-1} + b_z)
    f_t = sigma(F x_t + w_f * c_{t-1} + b_f)
    c_t = f_t * c_{t-1} + (1 - f_t) * z_t
    o_t = sigma(O [x_t; c_t] + b_o)      (feed-forward output gate, outside the recurrence)
    h_t = o_t * c_t

Z, F, w_z, w_f, b_z, b_f are recurrent parameters (exact RTRL); O and b_o are readout
parameters trained by ordinary backprop at each step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, contract, stream_axes_of, unit_form_cell


def elstm(
    units: int, init_std: float = 0.1, forget_bias: float = 0.0, max_timescale: float = 0.0
) -> Cell:
    """eLSTM with ``units`` cells.

    Initialisation as in the reference: every weight and bias ~ N(0, init_std^2) (standard
    deviation ``init_std``); ``forget_bias`` is added to b_f (positive values favour remembering).

    ``max_timescale`` T > 2 instead draws b_f = log u, u ~ U[1, T - 1] (chrono initialisation,
    Tallec & Ollivier 2018), so that the units' memory timescales 1 / (1 - f) = 1 + u spread over
    2..T steps. With the reference's initialisation every unit forgets at the same rate
    (f = sigma(b_f) about 0.5, or sigma(forget_bias)): the state is then close to one decaying
    sum of the recent inputs seen through different projections, from which a linear head cannot
    tell which step an input came from.
    """
    if max_timescale and max_timescale <= 2:
        raise ValueError(f"max_timescale must exceed 2 steps (0: off), got {max_timescale}")

    def init(key: jax.Array, num_inputs: int):
        keys = jax.random.split(key, 8)

        def normal(k, shape):
            return init_std * jax.random.normal(k, shape)

        def forget_biases(k):
            if max_timescale:
                u = jax.random.uniform(k, (units,), minval=1.0, maxval=max_timescale - 1)
                return jnp.log(u)
            return normal(k, (units,)) + forget_bias

        return {
            "inputs": {
                "Z": normal(keys[0], (units, num_inputs)),
                "F": normal(keys[1], (units, num_inputs)),
            },
            "unit": {
                "w_z": normal(keys[2], (units,)),
                "w_f": normal(keys[3], (units,)),
                "b_z": normal(keys[4], (units,)),
                "b_f": forget_biases(keys[5]),
            },
            "readout": {
                "O": normal(keys[6], (units, num_inputs + units)),
                "b_o": normal(keys[7], (units,)),
            },
        }

    def unit_step(p, s, u):
        c_prev = s["c"]
        z = jnp.tanh(u["Z"] + p["w_z"] * c_prev + p["b_z"])
        f = jax.nn.sigmoid(u["F"] + p["w_f"] * c_prev + p["b_f"])
        return {"c": f * c_prev + (1.0 - f) * z}

    def readout(readout_params, state, x):
        c = state["c"]
        z = jnp.concatenate([x, c])
        gate = contract(readout_params["O"], z, stream_axes_of(x)) + readout_params["b_o"]
        o = jax.nn.sigmoid(gate)
        return o * c

    return unit_form_cell(
        name="elstm",
        units=units,
        num_features=units,
        init=init,
        state_names=("c",),
        unit_step=unit_step,
        exposed=("c",),
        readout=readout,
        # Measured (python -m rtrl.bench cells): vmapped streams run this cell faster on CPU.
        streams_last_fast=False,
    )
