"""Dense recurrent baselines (full recurrent matrices): vanilla RNN, GRU, LSTM.

Written in unit form (cells/base.py): unit k owns row k of every matrix and reads h_{t-1} of all
units through ``params["recurrent"]``. The forward computation is the standard one; the unit form
is what lets SnAp-1 and UORO run in O(parameters). Exact RTRL for these costs O(n^4)
(``full_rtrl``, small sizes only). Initialisation: every weight and bias ~ U(-1/sqrt(n), 1/sqrt(n))
(the PyTorch default).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rtrl.cells.base import Cell, Coupling, activation, unit_form_cell
from rtrl.cells.lstm import lstm_gates


def _all_units(units: int) -> Coupling:
    return Coupling(("h",), np.tile(np.arange(units, dtype=np.int32), (units, 1)))


def _uniform_init(units: int, shapes):
    """Returns init(key, d) drawing every array U(-1/sqrt(units), 1/sqrt(units))."""
    bound = 1.0 / np.sqrt(units)

    def init(key, num_inputs: int):
        tree = shapes(num_inputs)
        leaves, treedef = jax.tree.flatten(tree, is_leaf=lambda x: isinstance(x, tuple))
        keys = jax.random.split(key, len(leaves))
        arrays = [
            jax.random.uniform(k, shape, minval=-bound, maxval=bound)
            for k, shape in zip(keys, leaves)
        ]
        return {**jax.tree.unflatten(treedef, arrays), "readout": {}}

    return init


def dense_rnn(units: int, nonlinearity: str = "tanh") -> Cell:
    """h_t = f(W x_t + U h_{t-1} + b)."""
    f = activation(nonlinearity)
    init = _uniform_init(
        units,
        lambda d: {
            "inputs": {"W": (units, d)},
            "recurrent": {"W": (units, units)},
            "unit": {"b": (units,)},
        },
    )
    return unit_form_cell(
        name=f"dense_rnn[{nonlinearity}]",
        units=units,
        num_features=units,
        init=init,
        state_names=("h",),
        unit_step=lambda p, s, u: {"h": f(u["W"] + p["b"])},
        readout=lambda readout_params, state, x: state["h"],
        exposed=("h",),
        coupling=_all_units(units),
    )


def dense_gru(units: int) -> Cell:
    """GRU with the reset gate applied after the recurrent matrix (the cuDNN / PyTorch form)::

        r = sigma(W_r x + U_r h + b_r),  z = sigma(W_z x + U_z h + b_z)
        n = tanh(W_n x + b_n + r * (U_n h + b_hn)),  h_t = (1 - z) * n + z * h_{t-1}

    ``inputs["W"]`` (units, 3, d) and ``recurrent["U"]`` (units, 3, units) hold gates (r, z, n).
    """
    init = _uniform_init(
        units,
        lambda d: {
            "inputs": {"W": (units, 3, d)},
            "recurrent": {"U": (units, 3, units)},
            "unit": {"b": (units, 3), "b_hn": (units,)},
        },
    )

    def unit_step(p, s, u):
        r = jax.nn.sigmoid(u["W"][0] + u["U"][0] + p["b"][0])
        z = jax.nn.sigmoid(u["W"][1] + u["U"][1] + p["b"][1])
        n = jnp.tanh(u["W"][2] + p["b"][2] + r * (u["U"][2] + p["b_hn"]))
        return {"h": (1.0 - z) * n + z * s["h"]}

    return unit_form_cell(
        name="dense_gru",
        units=units,
        num_features=units,
        init=init,
        state_names=("h",),
        unit_step=unit_step,
        readout=lambda readout_params, state, x: state["h"],
        exposed=("h",),
        coupling=_all_units(units),
    )


def dense_lstm(units: int) -> Cell:
    """Standard LSTM: z_a = W_a x + U_a h_{t-1} + b_a for gates (i, f, o, g),
    c_t = f c_{t-1} + i g, h_t = o tanh(c_t). Rows: ``inputs["W"]`` (units, 4, d),
    ``recurrent["W"]`` (units, 4, units), ``unit["b"]`` (units, 4)."""
    init = _uniform_init(
        units,
        lambda d: {
            "inputs": {"W": (units, 4, d)},
            "recurrent": {"W": (units, 4, units)},
            "unit": {"b": (units, 4)},
        },
    )

    def unit_step(p, s, u):
        return lstm_gates(u["W"] + p["b"], s["c"])

    return unit_form_cell(
        name="dense_lstm",
        units=units,
        num_features=units,
        init=init,
        state_names=("c", "h"),
        unit_step=unit_step,
        readout=lambda readout_params, state, x: state["h"],
        exposed=("h",),
        coupling=_all_units(units),
    )
