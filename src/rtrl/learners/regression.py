"""Online supervised regression: one stream, one update per step.

At step t the learner reads x_t, predicts y_hat_t = w . features_t + b with a linear head, suffers
0.5 (y_hat_t - y_t)^2 and updates every parameter once with an optax optimiser. The recurrent
parameters get the estimator's gradient (e.g. exact RTRL), the head and the cell's readout
parameters ordinary backprop.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from rtrl.cells.base import contract, stream_axes_of
from rtrl.gradients.base import Estimator, EstimatorState


class RegressionState(NamedTuple):
    params: optax.Params  # {"cell": cell params, "head": {"w", "b"}}
    opt_state: optax.OptState
    est_state: EstimatorState


class RegressionInit(Protocol):
    def __call__(self, key: jax.Array, num_inputs: int) -> RegressionState: ...


class RegressionStep(Protocol):
    def __call__(
        self,
        state: RegressionState,
        x: jax.Array,
        target: jax.Array,
        reset: jax.Array | bool = False,
    ) -> tuple[RegressionState, dict[str, jax.Array]]: ...


class OnlineRegression(NamedTuple):
    init: RegressionInit
    step: RegressionStep
    streams_last: bool = False  # step takes many streams with the stream axes last


def linear_head(num_features: int, dtype=jnp.float32) -> dict[str, jax.Array]:
    """Head weights start at zero, as in the reference implementations."""
    return {"w": jnp.zeros((num_features,), dtype), "b": jnp.zeros((), dtype)}


def online_regression(
    estimator: Estimator, optimizer: optax.GradientTransformation
) -> OnlineRegression:
    cell = estimator.cell

    def init(key: jax.Array, num_inputs: int) -> RegressionState:
        cell_params = cell.init(key, num_inputs)
        dtype = jax.tree.leaves(cell_params)[0].dtype
        params = {"cell": cell_params, "head": linear_head(cell.num_features, dtype)}
        return RegressionState(params, optimizer.init(params), estimator.init(cell_params))

    def step(state: RegressionState, x: jax.Array, target: jax.Array, reset=False):
        def loss_fn(params):
            features, est_state = estimator.step(params["cell"], state.est_state, x, reset)
            head = params["head"]
            prediction = contract(head["w"], features, stream_axes_of(x)) + head["b"]
            loss = 0.5 * (prediction - target) ** 2
            # Streams (last axes) are independent: the gradient of the sum is each one's own.
            return jnp.sum(loss), (loss, est_state, prediction)

        (_, (loss, est_state, prediction)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return RegressionState(params, opt_state, est_state), {
            "loss": loss,
            "prediction": prediction,
        }

    return OnlineRegression(init, step, estimator.streams_last)
