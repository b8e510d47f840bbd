"""A feed-forward layer as a cell without state: features tanh(W x + b), all of it readout.

It is the trunk of the feed-forward control baselines (``cell=feedforward``): the learners treat
it as any cell, and since nothing is carried between steps its gradients are exact. It has no
recurrent parameters, so no gradient estimator applies to it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rtrl.cells.base import Cell, Params, lecun_normal

FEEDFORWARD = "feedforward"


def feedforward(units: int) -> Cell:
    def init(key: jax.Array, num_inputs: int) -> Params:
        (k_layer,) = jax.random.split(key, 1)  # as an MLP of one layer draws it
        w = lecun_normal(k_layer, (units, num_inputs), num_inputs)
        return {"inputs": {}, "unit": {}, "readout": {"w": w, "b": jnp.zeros((units,), w.dtype)}}

    def readout(params, state, x):
        return jnp.tanh(params["w"] @ x + params["b"])

    return Cell(FEEDFORWARD, units, units, init, lambda params: {},
                lambda params, state, x: state, readout)  # fmt: skip
