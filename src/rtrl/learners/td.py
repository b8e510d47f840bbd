"""Online TD(lambda) prediction with a recurrent representation (policy evaluation).

Stream: observations x_t, cumulants c_t and discounts gamma_t, where (c_{t+1}, gamma_{t+1}) belong
to the transition into x_{t+1} (gamma_{t+1} = 0 when x_{t+1} starts a new episode). The value is
V_t = w . features_t + b with features from any estimator's cell. Per step, on reading x_{t+1}::

    V_{t+1}  with the current parameters (and its gradient, from the estimator)
    delta_t  = c_{t+1} + gamma_{t+1} V_{t+1} - V_t
    theta   <- theta + alpha * optimiser(delta_t e_t)
    e_{t+1}  = gamma_{t+1} lambda e_t + grad V_{t+1}

so the trace decays with the discount of the transition that *entered* the current state: the
last TD error of an episode still reaches that episode's states, and nothing leaks into the
next one. ``e`` is an accumulating trace over all parameters (cell and head).

With a staged estimator (rtrl.networks.staged) only the parameters it marks trainable move (the
traces of frozen stages still decay but no longer reach their parameters), and the feature
statistics of stages not yet reached stay at their initial values.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from rtrl.cells.base import contract, stream_axes_of
from rtrl.gradients.base import Estimator, EstimatorState
from rtrl.learners.regression import linear_head
from rtrl.networks.normalize import (
    DEFAULT_VARIANCE_FLOOR,
    ExponentialMoments,
    normalize,
    normalizer_init,
    normalizer_update,
)


class TDState(NamedTuple):
    params: optax.Params  # {"cell": ..., "head": {"w", "b"}}
    opt_state: optax.OptState
    est_state: EstimatorState
    trace: optax.Params  # e_t, same structure as params
    value: jax.Array  # V_t of the last observation
    started: jax.Array  # False before the first observation (no TD error yet)
    feature_stats: ExponentialMoments  # running statistics of the features (unused if rate = 1)


class TDInit(Protocol):
    def __call__(self, key: jax.Array, num_inputs: int) -> TDState: ...


class TDStep(Protocol):
    def __call__(
        self,
        state: TDState,
        x: jax.Array,
        cumulant: jax.Array,
        discount: jax.Array,
        reset: jax.Array | bool = False,
    ) -> tuple[TDState, dict[str, jax.Array]]: ...


class TDLambda(NamedTuple):
    init: TDInit
    step: TDStep
    streams_last: bool = False  # step takes many streams with the stream axes last


def td_lambda(
    estimator: Estimator,
    optimizer: optax.GradientTransformation,
    lambda_: float,
    feature_norm_rate: float = 1.0,
    feature_norm_floor: float = DEFAULT_VARIANCE_FLOOR,
    head_step_per_feature: bool = False,
    bias_step_per_feature: bool = True,
    per_stream_optimizer: bool = False,
) -> TDLambda:
    """TD(lambda) for any estimator and any optax optimiser (which receives -delta e, and the TD
    error as ``td_error``: ObGD bounds its step with it; the others ignore it).

    ``per_stream_optimizer``: the optimiser reduces over all of a stream's parameters (ObGD's
    norm of the trace), so the learner runs its streams vmapped, never stacked on a last axis.

    ``feature_norm_rate`` < 1 normalises the features by running statistics before the head
    (as in ``rtrl.networks.normalize``); the statistics are updated after the value is computed
    and are constants for the gradient.

    ``head_step_per_feature`` divides the update of the head's weights by the number of features
    in use, as the CCN reference does. That rule assumes z-scored features (the reference pairs
    it with its normaliser: with unit-variance features the best step per weight shrinks as
    features are added), so it requires ``feature_norm_rate`` < 1. ``bias_step_per_feature``
    divides the bias's update too (the reference's rule); turn it off to give the bias the full
    step. With normalised features the bias alone carries the mean of the prediction, and under
    RMSProp a step of alpha / N moves it by at most about alpha / N per step: 1e-4 / 15 over a
    250k-step stream is 1.7, less than the mean returns of many Atari games.
    """
    if head_step_per_feature and feature_norm_rate >= 1.0:
        raise ValueError(
            "head_step_per_feature divides the head's step by the features in use, which assumes "
            "normalised features: turn on feature normalisation (feature_norm_window) or set "
            "head_step_per_feature=false"
        )
    cell = estimator.cell
    optimizer = optax.with_extra_args_support(optimizer)

    def features_in_use(est_state) -> jax.Array:
        if estimator.active_features is None:
            return jnp.asarray(cell.num_features)
        return estimator.active_features(est_state).sum(axis=0)

    def init(key: jax.Array, num_inputs: int) -> TDState:
        cell_params = cell.init(key, num_inputs)
        dtype = jax.tree.leaves(cell_params)[0].dtype
        params = {"cell": cell_params, "head": linear_head(cell.num_features, dtype)}
        return TDState(
            params=params,
            opt_state=optimizer.init(params),
            est_state=estimator.init(cell_params),
            trace=jax.tree.map(jnp.zeros_like, params),
            value=jnp.zeros((), dtype),
            started=jnp.zeros((), bool),
            feature_stats=normalizer_init(cell.num_features, dtype),
        )

    def step(state: TDState, x, cumulant, discount, reset=False):
        def value_fn(params):
            features, est_state = estimator.step(params["cell"], state.est_state, x, reset)
            normalized = normalize(state.feature_stats, features, feature_norm_rate)
            head = params["head"]
            value = contract(head["w"], normalized, stream_axes_of(x)) + head["b"]
            # Streams (last axes) are independent: the gradient of the sum is each one's own.
            return jnp.sum(value), (value, est_state, features)

        (_, (value, est_state, features)), value_grad = jax.value_and_grad(value_fn, has_aux=True)(
            state.params
        )
        feature_stats = state.feature_stats
        if feature_norm_rate < 1.0:  # static
            updated = normalizer_update(
                feature_stats, features, feature_norm_rate, feature_norm_floor
            )
            if estimator.active_features is not None:  # unreached features keep their stats
                active = estimator.active_features(est_state)
                updated = jax.tree.map(
                    lambda new, old: jnp.where(active, new, old), updated, feature_stats
                )
            feature_stats = updated
        delta = jnp.where(state.started, cumulant + discount * value - state.value, 0.0)
        direction = jax.tree.map(lambda e: -delta * e, state.trace)
        if estimator.trainable is not None:
            mask = estimator.trainable(state.params["cell"], est_state)
            direction["cell"] = jax.tree.map(jnp.multiply, direction["cell"], mask)
        updates, opt_state = optimizer.update(direction, state.opt_state, state.params,
                                              td_error=delta)  # fmt: skip
        if head_step_per_feature:
            scale = 1.0 / features_in_use(est_state)
            head = dict(updates["head"], w=updates["head"]["w"] * scale)
            if bias_step_per_feature:
                head["b"] = head["b"] * scale
            updates["head"] = head
        params = optax.apply_updates(state.params, updates)
        decay = discount * lambda_ * state.started
        trace = jax.tree.map(lambda e, g: decay * e + g, state.trace, value_grad)
        started = jnp.ones_like(state.started)
        new_state = TDState(params, opt_state, est_state, trace, value, started, feature_stats)
        return new_state, {"value": value, "td_error": delta}

    return TDLambda(init, step, estimator.streams_last and not per_stream_optimizer)
