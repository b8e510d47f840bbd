"""The interfaces every environment implements: prediction streams and control environments."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import jax

from rtrl.spaces import ActionSpace


class Transition(NamedTuple):
    """One step of a prediction stream."""

    observation: jax.Array
    cumulant: jax.Array  # received on entering this step
    discount: jax.Array  # of the transition into this step (0 when it starts an episode)
    episode_start: jax.Array  # bool: this step is the first of an episode


class PredictionStream(Protocol):
    """A stream of observations, cumulants and discounts for online prediction (animal
    learning's trial streams, recorded Atari play). Streams do not depend on the learner, so a
    chunk of steps is generated before the learner reads it."""

    name: str
    num_observations: int
    gamma: float

    @property
    def data(self) -> Any:
        """Arrays the stream reads (recorded data; None for generated streams), passed to
        ``rollout_seeds`` as an argument so that compiled code does not embed them."""

    def reset(self, key: jax.Array) -> Any:
        """The state of one stream before its first step."""

    def rollout_seeds(
        self, keys: jax.Array, states: Any, data: Any, steps: int
    ) -> tuple[Any, Transition]:
        """``steps`` transitions for many streams at once (keys and states with a leading
        stream axis): (states, transitions with axes (streams, steps, ...))."""


class ControlEnv(NamedTuple):
    """A control environment as pure functions over an explicit state (gymnax style):

    - ``reset(key) -> (state, observation)``
    - ``step(key, state, action) -> (state, observation, reward, terminated, truncated, info)``

    as Gymnasium reports them: ``terminated`` means the episode reached a terminal state (its
    value is zero), ``truncated`` that it was cut short, by a time limit, in a state that still
    has a value. Either one ends the episode. See ``rtrl.envs.control`` for the wrappers every
    agent uses."""

    name: str
    observation_size: int
    action_space: ActionSpace
    reset: Callable[[jax.Array], tuple[Any, jax.Array]]
    step: Callable[
        [jax.Array, Any, jax.Array],
        tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, dict],
    ]
