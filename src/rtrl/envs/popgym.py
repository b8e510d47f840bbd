"""POPGym-style memory tasks (Morad et al. 2023) in JAX, with POPGym's rules and difficulty levels.

Every task deals from ``num_decks`` shuffled 52-card decks (card c has rank c % 13, suit
(c // 13) % 4 and colour suit // 2) and scales its rewards so that a perfect episode returns 1 and
an always-wrong one -1. Observations are one-hot codes. An episode's step t reads observation
o_t, takes action a_t and gets r_{t+1}:

- RepeatFirst(D): o_t = suit of card t; a_t must be the suit of card 0; +-1/(N-1) each step.
  Easy/Medium/Hard: D = 1/8/16.
- RepeatPrevious(D, k): o_t = suit of card t; from step k-1 on, a_t must be the suit of card
  t+1-k (the card shown k observations before the next one); +-1/(N-k). (1, 4)/(2, 32)/(3, 64).
- CountRecall(D, kind): o_t = (kind of value card t, kind of query card t) from two decks; a_t
  must be how many value cards 0..t share the query card's kind; +-1/(N-1).
  (1, colours)/(2, suits)/(4, ranks).
- Autoencode(D): watch phase: o_t = (1, suit of card t) for t < N-1; at t = N-1 the flag turns
  0 (play) with the last card shown; then a_t must give the cards' suits in reverse order, card
  N-1 first; +-1/N per answer. 2N-1 steps.
- HigherLower(D): o_t = rank of card t; a_t = 0 guesses that card t+1 ranks higher, 1 lower;
  +1/N right, -1/N wrong, 0 on equal ranks.

- Concentration(D, kind): the cards face down; flip two per turn, a pair of the same kind stays
  face up; +1/(N/2) per pair, -2/L per failed turn; see ``concentration``.
  (1, colours)/(2, colours)/(1, ranks).

with N = 52 D cards; every episode but Autoencode's and Concentration's lasts N-1 steps.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rtrl.envs.control import ControlEnv
from rtrl.spaces import Discrete

DECK_SIZE = 52
LEVELS = ("easy", "medium", "hard")


def rank(card: jax.Array) -> jax.Array:
    return card % 13


def suit(card: jax.Array) -> jax.Array:
    return (card // 13) % 4


def colour(card: jax.Array) -> jax.Array:
    return suit(card) // 2


KINDS = {"colors": (colour, 2), "suits": (suit, 4), "ranks": (rank, 13)}


class CardState(NamedTuple):
    deck: jax.Array  # (N,) cards in dealing order
    second_deck: jax.Array  # (N,) CountRecall's query cards (else unused)
    t: jax.Array  # steps taken in this episode


def card_game(
    name: str,
    num_cards: int,
    length: int,
    observation_size: int,
    num_actions: int,
    observe: Callable[[CardState], jax.Array],
    reward: Callable[[CardState, jax.Array], jax.Array],
) -> ControlEnv:
    """An episodic task over shuffled cards: ``observe(state)`` is o_t and ``reward(state, a)`` is
    r_{t+1} at step ``state.t``; the episode ends after ``length`` steps."""

    def reset(key):
        k1, k2 = jax.random.split(key)
        state = CardState(
            jax.random.permutation(k1, num_cards),
            jax.random.permutation(k2, num_cards),
            jnp.zeros((), jnp.int32),
        )
        return state, observe(state)

    def step(key, state, action):
        r = reward(state, action)
        state = state._replace(t=state.t + 1)
        return state, observe(state), r, state.t >= length, jnp.zeros((), bool), {}

    return ControlEnv(name, observation_size, Discrete(num_actions), reset, step)


def _plus_minus(correct: jax.Array, scale: float) -> jax.Array:
    return jnp.where(correct, scale, -scale)


def repeat_first(num_decks: int = 1) -> ControlEnv:
    n = DECK_SIZE * num_decks

    def observe(s):
        return jax.nn.one_hot(suit(s.deck[s.t]), 4)

    def reward(s, action):
        return _plus_minus(action == suit(s.deck[0]), 1.0 / (n - 1))

    return card_game(f"repeat_first-{num_decks}", n, n - 1, 4, 4, observe, reward)


def repeat_previous(num_decks: int = 1, k: int = 4) -> ControlEnv:
    n = DECK_SIZE * num_decks
    if not 0 < k < n:
        raise ValueError(f"repeat_previous needs 0 < k < {n} (the cards in {num_decks} decks)")

    def observe(s):
        return jax.nn.one_hot(suit(s.deck[s.t]), 4)

    def reward(s, action):
        target = suit(s.deck[jnp.maximum(s.t + 1 - k, 0)])
        return jnp.where(s.t + 1 >= k, _plus_minus(action == target, 1.0 / (n - k)), 0.0)

    return card_game(f"repeat_previous-{num_decks}-{k}", n, n - 1, 4, 4, observe, reward)


def count_recall(num_decks: int = 1, kind: str = "colors") -> ControlEnv:
    if kind not in KINDS:
        raise ValueError(f"unknown card kind {kind!r}; choose one of {sorted(KINDS)}")
    kind_of, distinct = KINDS[kind]
    n = DECK_SIZE * num_decks
    max_count = n // distinct

    def observe(s):
        value, query = kind_of(s.deck[s.t]), kind_of(s.second_deck[s.t])
        return jnp.concatenate([jax.nn.one_hot(value, distinct), jax.nn.one_hot(query, distinct)])

    def reward(s, action):
        dealt = jnp.arange(n) <= s.t
        query = kind_of(s.second_deck[s.t])
        count = jnp.sum(dealt & (kind_of(s.deck) == query))
        return _plus_minus(action == count, 1.0 / (n - 1))

    size = 2 * distinct
    return card_game(
        f"count_recall-{num_decks}-{kind}", n, n - 1, size, max_count + 1, observe, reward
    )


def autoencode(num_decks: int = 1) -> ControlEnv:
    n = DECK_SIZE * num_decks

    def observe(s):
        watching = s.t < n - 1
        shown = s.t <= n - 1  # the last card is still shown as play begins
        card = jax.nn.one_hot(suit(s.deck[jnp.minimum(s.t, n - 1)]), 4) * shown
        return jnp.concatenate([watching[None].astype(card.dtype), card])

    def reward(s, action):
        answer = s.t - (n - 1)  # index of the answer in the play phase
        target = suit(s.deck[jnp.clip(n - 1 - answer, 0, n - 1)])
        return jnp.where(answer >= 0, _plus_minus(action == target, 1.0 / n), 0.0)

    return card_game(f"autoencode-{num_decks}", n, 2 * n - 1, 5, 4, observe, reward)


def higher_lower(num_decks: int = 1) -> ControlEnv:
    n = DECK_SIZE * num_decks

    def observe(s):
        return jax.nn.one_hot(rank(s.deck[s.t]), 13)

    def reward(s, action):
        current, following = rank(s.deck[s.t]), rank(s.deck[s.t + 1])
        right = (following > current) == (action == 0)
        return jnp.where(following == current, 0.0, _plus_minus(right, 1.0 / n))

    return card_game(f"higher_lower-{num_decks}", n, n - 1, 13, 2, observe, reward)


class ConcentrationState(NamedTuple):
    deck: jax.Array  # (N,) cards, face down in this order
    face_up: jax.Array  # (N,) bool: matched pairs, left face up
    first: jax.Array  # the position flipped first in this turn (-1: none)
    t: jax.Array


def concentration(num_decks: int = 1, kind: str = "colors") -> ControlEnv:
    """N cards face down; a_t flips the card at position a_t. Two flips make a turn: cards of
    the same kind at two positions stay face up (+1/(N/2)), others turn back (-2/L); flipping a
    card already face up ends the turn (-1/L per card in the turn). The episode ends when every
    card is face up, or after L = ceil(2N - N/(2N - 1)) steps (a perfect player's expected
    length). o_t: per position, the one-hot kind of a face-up or just-flipped card (or
    face-down), then the one-hot previous action, which POPGym marks this task as needing."""
    if kind not in KINDS:
        raise ValueError(f"unknown card kind {kind!r}; choose one of {sorted(KINDS)}")
    kind_of, distinct = KINDS[kind]
    n = DECK_SIZE * num_decks
    length = math.ceil(2 * n - n / (2 * n - 1))
    success, failure = 1.0 / (n // 2), -1.0 / length

    def observe(deck, shown, previous_action):
        value = jnp.where(shown, kind_of(deck), distinct)  # `distinct`: face down
        cards = jax.nn.one_hot(value, distinct + 1).reshape(-1)
        return jnp.concatenate([cards, previous_action])

    def reset(key):
        state = ConcentrationState(jax.random.permutation(key, n), jnp.zeros(n, bool),
                                   jnp.asarray(-1), jnp.zeros((), jnp.int32))  # fmt: skip
        return state, observe(state.deck, state.face_up, jnp.zeros(n))

    def step(key, state, action):
        turn_ends = state.first >= 0
        flipped = jnp.zeros(n, bool).at[action].set(True)
        flipped = flipped.at[jnp.maximum(state.first, 0)].max(turn_ends)
        already_up = state.face_up[action]
        match = (
            turn_ends
            & (action != state.first)
            & (kind_of(state.deck[action]) == kind_of(state.deck[jnp.maximum(state.first, 0)]))
        )
        reward = jnp.where(
            already_up, failure * (1 + turn_ends),
            jnp.where(turn_ends, jnp.where(match, success, 2 * failure), 0.0))  # fmt: skip
        obs = observe(state.deck, state.face_up | flipped, jax.nn.one_hot(action, n))
        face_up = state.face_up | (flipped & match & ~already_up)
        first = jnp.where(turn_ends | already_up, -1, action)
        new = ConcentrationState(state.deck, face_up, first, state.t + 1)
        return new, obs, reward, jnp.all(face_up), state.t >= length - 1, {}

    size = n * (distinct + 1) + n
    return ControlEnv(f"concentration-{num_decks}-{kind}", size, Discrete(n), reset, step)


# POPGym's Easy/Medium/Hard settings.
TASKS: dict[str, Callable[[], ControlEnv]] = {}
for _level, _rf, _rp, _cr, _ae, _hl, _cn in zip(
    LEVELS,
    (1, 8, 16),
    ((1, 4), (2, 32), (3, 64)),
    ((1, "colors"), (2, "suits"), (4, "ranks")),
    (1, 2, 3),
    (1, 2, 3),
    ((1, "colors"), (2, "colors"), (1, "ranks")),
):
    TASKS[f"repeat_first-{_level}"] = lambda d=_rf: repeat_first(d)
    TASKS[f"repeat_previous-{_level}"] = lambda a=_rp: repeat_previous(*a)
    TASKS[f"count_recall-{_level}"] = lambda a=_cr: count_recall(*a)
    TASKS[f"autoencode-{_level}"] = lambda d=_ae: autoencode(d)
    TASKS[f"higher_lower-{_level}"] = lambda d=_hl: higher_lower(d)
    TASKS[f"concentration-{_level}"] = lambda a=_cn: concentration(*a)


def popgym_task(name: str) -> ControlEnv:
    """A task by name, e.g. ``popgym_task("repeat_previous-easy")``."""
    if name not in TASKS:
        raise ValueError(f"unknown POPGym task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]()._replace(name=name)
