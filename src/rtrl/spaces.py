"""Action spaces: the vocabulary shared by environments and the learners that act in them."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Discrete(NamedTuple):
    """``n`` actions, given as an integer scalar."""

    n: int


class Box(NamedTuple):
    """A real vector of ``size`` actions; environments clip it to [low, high]."""

    size: int
    low: float = -1.0
    high: float = 1.0


ActionSpace = Discrete | Box


def clip_action(space: ActionSpace, action: jax.Array) -> jax.Array:
    if isinstance(space, Box):
        return jnp.clip(action, space.low, space.high)
    return action


def random_actions(key: jax.Array, space: ActionSpace, shape: tuple[int, ...] = ()) -> jax.Array:
    """Uniformly random actions (for tests and baselines)."""
    if isinstance(space, Discrete):
        return jax.random.randint(key, shape, 0, space.n)
    return jax.random.uniform(key, (*shape, space.size), minval=space.low, maxval=space.high)
