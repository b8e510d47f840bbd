"""What every prediction stream gives the runner at each step."""

from __future__ import annotations

from typing import NamedTuple

import jax


class Transition(NamedTuple):
    """One step of a prediction stream."""

    observation: jax.Array
    cumulant: jax.Array  # received on entering this step
    discount: jax.Array  # of the transition into this step (0 when it starts an episode)
    episode_start: jax.Array  # bool: this step is the first of an episode
