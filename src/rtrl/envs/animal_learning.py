"""Animal-learning prediction streams: classical-conditioning trials with binary stimuli.

Continuing streams without actions. A trial shows a conditioned stimulus (CS) at its onset; an
inter-stimulus interval (ISI, CS onset to US onset) later the unconditioned stimulus (US) may
follow; the next trial starts an inter-trial interval (ITI) after the US onset time. Irrelevant
binary distractors switch on at random. The cumulant is the US; the learner predicts the
discounted sum of future US.

Presets (their observation layouts are in each function's docstring):

- ``trace_conditioning``, ``trace_patterning``, ``noisy_patterning``: Rafiee et al. 2022,
  "From eye-blinks to state construction";
- ``javed_trace_patterning``: the trace-patterning setting of Javed et al. 2023 (CCN paper).

Interface (gymnax style, explicit keys, no hidden state)::

    stream = trace_conditioning(isi=10)
    state = stream.reset(key)
    state, observation, cumulant = stream.step(key, state)

``cumulant`` is the US value in ``observation`` (the signal received on entering this step);
``stream.gamma`` is the discount. Everything is jittable and vmappable over keys.

What a step's randomness decides is a pure function of its key (``draws``), and the observation a
pure function of the state (``observe``); only ``next_state`` is sequential. So ``rollout`` draws
a whole chunk's randomness and builds its observations in vectorised calls, leaving a few scalar
selects in the sequential loop: the same numbers as stepping one key at a time.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rtrl.envs.base import Transition


class TrialConfig(NamedTuple):
    """Static description of a trial stream (Python numbers: changing it recompiles)."""

    num_cs: int  # CS bits
    activation_patterns: tuple[tuple[int, ...], ...]  # CS patterns that are followed by the US
    pattern_probability: float  # P(show an activation pattern); else a draw from other_patterns
    other_patterns: tuple[tuple[int, ...], ...] | None  # None: a uniformly random CS bit vector
    isi: tuple[int, int]  # inclusive range of the ISI (CS onset to US onset)
    iti: tuple[int, int]  # inclusive range of the ITI (US onset time to next CS onset)
    cs_duration: int
    us_duration: int
    distractor_probabilities: tuple[float, ...]  # per step, switch-on probability when off
    distractor_duration: int
    noise: float  # probability of flipping whether a trial gets the US
    us_index: int  # position of the US in the observation
    cs_start: int  # position of the first CS bit
    distractor_start: int  # position of the first distractor
    gamma: float


class TrialState(NamedTuple):
    time: jax.Array  # steps since the current trial's CS onset
    isi: jax.Array
    trial_length: jax.Array  # ISI + ITI: the next trial starts when time reaches it
    cs: jax.Array  # (num_cs,) this trial's CS pattern
    us_trial: jax.Array  # whether this trial gets the US
    distractor_timers: jax.Array  # remaining on-steps of each distractor


class TrialStream(NamedTuple):
    """A generated trial stream (implements ``rtrl.envs.base.PredictionStream``)."""

    name: str
    config: TrialConfig
    num_observations: int
    gamma: float
    reset: Callable[[jax.Array], TrialState]
    draws: Callable[[jax.Array], "StepDraws"]  # what a step's randomness decides, from its key
    next_state: Callable[["StepDraws", TrialState], TrialState]  # the sequential part
    observe: Callable[[TrialState], tuple[jax.Array, jax.Array]]  # (observation, cumulant)

    def step(self, key: jax.Array, state: TrialState):
        """One step: ``(state, observation, cumulant)``."""
        state = self.next_state(self.draws(key), state)
        return (state, *self.observe(state))

    # The runner's interface (``data``, ``rollout_seeds``), shared with recorded streams
    # (rtrl.envs.atari): continuing streams have a constant discount, no episodes and no
    # recorded data.
    @property
    def data(self) -> None:
        return None

    def rollout(self, key: jax.Array, state: TrialState, data, steps: int):
        """``steps`` transitions (time first) from ``split(key, steps)``, one key per step. Only
        the state update runs step by step; randomness and observations are vectorised."""
        return _squeeze_seeds(self.rollout_seeds(key[None], _add_seeds(state), data, steps))

    def rollout_seeds(self, keys: jax.Array, states: TrialState, data, steps: int):
        """``rollout`` for many seeds at once (keys and states with a leading seed axis)."""
        step_keys = jax.vmap(lambda key: jax.random.split(key, steps))(keys)
        # One flat batch of keys: XLA's CPU random-bits code runs a nested batch about twice as
        # slowly.
        flat = jax.vmap(self.draws)(step_keys.reshape((-1,) + step_keys.shape[2:]))
        draws = jax.tree.map(lambda a: a.reshape(step_keys.shape[:2] + a.shape[1:]), flat)

        def one_seed(state, seed_draws):
            def one_step(state, step_draws):
                state = self.next_state(step_draws, state)
                return state, state

            return jax.lax.scan(one_step, state, seed_draws)

        states, visited = jax.vmap(one_seed)(states, draws)
        observations, cumulants = jax.vmap(jax.vmap(self.observe))(visited)
        shape = cumulants.shape
        discounts = jnp.full(shape, self.gamma, observations.dtype)
        return states, Transition(observations, cumulants, discounts, jnp.zeros(shape, bool))


def _add_seeds(tree):
    return jax.tree.map(lambda a: a[None], tree)


def _squeeze_seeds(tree):
    return jax.tree.map(lambda a: a[0], tree)


def _f32(p: float) -> jax.Array:
    # Fixed dtypes for every random draw: the same key gives the same stream with or without
    # jax_enable_x64.
    return jnp.asarray(p, jnp.float32)


class TrialDraws(NamedTuple):
    """The random choices that start a trial."""

    isi: jax.Array
    iti: jax.Array
    pattern: jax.Array  # a row of the activation patterns
    random_vector: jax.Array  # the CS shown when no activation pattern is chosen
    show_pattern: jax.Array
    flip: jax.Array


class StepDraws(NamedTuple):
    """What one step's randomness decides (a new trial is drawn whether it starts or not)."""

    trial: TrialState  # the trial that starts if one starts at this step (timers unset)
    switch_on: jax.Array  # (num_distractors,) bool: which distractors would switch on


def _trial_draws(key: jax.Array, config: TrialConfig) -> TrialDraws:
    k_isi, k_iti, k_choice, k_pattern, k_random, k_noise = jax.random.split(key, 6)
    num_patterns = len(config.activation_patterns)
    if config.other_patterns is None:
        random_vector = jax.random.bernoulli(k_random, _f32(0.5), (config.num_cs,)).astype(
            jnp.int32
        )
    else:
        pool = jnp.asarray(config.other_patterns, jnp.int32)
        random_vector = pool[jax.random.randint(k_random, (), 0, pool.shape[0], dtype=jnp.int32)]
    return TrialDraws(
        isi=jax.random.randint(k_isi, (), config.isi[0], config.isi[1] + 1, dtype=jnp.int32),
        iti=jax.random.randint(k_iti, (), config.iti[0], config.iti[1] + 1, dtype=jnp.int32),
        pattern=jax.random.randint(k_pattern, (), 0, num_patterns, dtype=jnp.int32),
        random_vector=random_vector,
        show_pattern=jax.random.bernoulli(k_choice, _f32(config.pattern_probability)),
        flip=jax.random.bernoulli(k_noise, _f32(config.noise)),
    )


def _new_trial(draws: TrialDraws, config: TrialConfig, distractor_timers: jax.Array) -> TrialState:
    patterns = jnp.asarray(config.activation_patterns, jnp.int32)
    cs = jnp.where(draws.show_pattern, patterns[draws.pattern], draws.random_vector)
    is_activation = jnp.any(jnp.all(patterns == cs[None, :], axis=1))
    return TrialState(
        time=jnp.zeros((), jnp.int32),
        isi=draws.isi,
        trial_length=draws.isi + draws.iti,
        cs=cs,
        us_trial=jnp.logical_xor(is_activation, draws.flip),
        distractor_timers=distractor_timers,
    )


def make_stream(name: str, config: TrialConfig) -> TrialStream:
    num_distractors = len(config.distractor_probabilities)
    num_observations = 1 + config.num_cs + num_distractors
    probabilities = jnp.asarray(config.distractor_probabilities, jnp.float32)

    def reset(key: jax.Array) -> TrialState:
        trial = _new_trial(
            _trial_draws(key, config), config, jnp.zeros((num_distractors,), jnp.int32)
        )
        # One step before the first CS onset, so that the first observation shows the CS.
        return trial._replace(time=jnp.asarray(-1, jnp.int32))

    def draws(key: jax.Array) -> StepDraws:
        k_trial, k_distractors = jax.random.split(key)
        no_timers = jnp.zeros((num_distractors,), jnp.int32)
        uniforms = jax.random.uniform(k_distractors, (num_distractors,), jnp.float32)
        return StepDraws(
            _new_trial(_trial_draws(k_trial, config), config, no_timers), uniforms < probabilities
        )

    def next_state(draws: StepDraws, state: TrialState) -> TrialState:
        time = state.time + 1
        state = jax.tree.map(
            lambda new, old: jnp.where(time >= state.trial_length, new, old),
            draws.trial._replace(distractor_timers=state.distractor_timers),
            state._replace(time=time),
        )
        timers = jnp.maximum(state.distractor_timers - 1, 0)
        timers = jnp.where((timers == 0) & draws.switch_on, config.distractor_duration, timers)
        return state._replace(distractor_timers=timers)

    def observe(state: TrialState) -> tuple[jax.Array, jax.Array]:
        timers = state.distractor_timers
        cs_on = state.time < config.cs_duration
        us_on = (
            state.us_trial
            & (state.time >= state.isi)
            & (state.time < state.isi + config.us_duration)
        )
        observation = jnp.zeros((num_observations,), jnp.float32)
        observation = observation.at[config.us_index].set(us_on.astype(jnp.float32))
        observation = jax.lax.dynamic_update_slice(
            observation, (state.cs * cs_on).astype(jnp.float32), (config.cs_start,)
        )
        observation = jax.lax.dynamic_update_slice(
            observation, (timers > 0).astype(jnp.float32), (config.distractor_start,)
        )
        return observation, observation[config.us_index]

    return TrialStream(
        name, config, num_observations, config.gamma, reset, draws, next_state, observe
    )


def _spread(isi: int) -> tuple[int, int]:
    return isi - isi // 3, isi + isi // 3


def _rafiee_distractors(num_distractors: int) -> tuple[float, ...]:
    if not 0 <= num_distractors <= 10:
        raise ValueError(f"num_distractors must be between 0 and 10, got {num_distractors}")
    return tuple(1.0 / (10 * d) for d in range(1, num_distractors + 1))


def trace_conditioning(
    isi: int = 10, num_distractors: int = 10, iti: tuple[int, int] = (80, 120)
) -> TrialStream:
    """Trace conditioning (Rafiee et al. 2022).

    Observation ``[US, CS, distractor_1, ..., distractor_m]``. CS on for 4 steps at trial onset;
    US on for 2 steps from ISI steps after CS onset, ISI ~ U{isi - isi//3, ..., isi + isi//3};
    next trial ITI ~ U{iti} steps after the US onset. Distractor d (1-based) switches on, when
    off, with probability 1/(10 d) per step and stays on 4 steps. gamma = 1 - 1/isi.
    """
    if isi < 1:
        raise ValueError(f"isi must be at least 1, got {isi}")
    config = TrialConfig(
        num_cs=1, activation_patterns=((1,),), pattern_probability=1.0, other_patterns=None,
        isi=_spread(isi),
        iti=iti, cs_duration=4, us_duration=2,
        distractor_probabilities=_rafiee_distractors(num_distractors), distractor_duration=4,
        noise=0.0, us_index=0, cs_start=1, distractor_start=2, gamma=1.0 - 1.0 / isi,
    )  # fmt: skip
    return make_stream(f"trace_conditioning[isi={isi}]", config)


def _activation_patterns(num_cs: int, count: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """``count`` distinct patterns with num_cs // 2 bits on, chosen by ``seed``."""
    candidates = [
        tuple(int(i in on) for i in range(num_cs))
        for on in itertools.combinations(range(num_cs), num_cs // 2)
    ]
    if not 1 <= count <= len(candidates):
        raise ValueError(
            f"num_patterns must be between 1 and {len(candidates)} for {num_cs} CS bits, "
            f"got {count}"
        )
    chosen = np.random.default_rng(seed).choice(len(candidates), size=count, replace=False)
    return tuple(candidates[i] for i in sorted(chosen))


def trace_patterning(
    isi: int = 10,
    num_cs: int = 6,
    num_patterns: int = 10,
    noise: float = 0.0,
    num_distractors: int = 10,
    iti: tuple[int, int] = (80, 120),
    seed: int = 0,
) -> TrialStream:
    """Trace patterning (Rafiee et al. 2022).

    Observation ``[US, CS_1, ..., CS_n, distractor_1, ..., distractor_m]``. ``num_patterns``
    activation patterns with n//2 bits on are fixed by ``seed``. Each trial shows one of them with
    probability p' = (2^n/2 - k) / (2^n - k), otherwise a uniformly random n-bit vector, so about
    half the trials show an activation pattern; the US follows (as in trace conditioning) iff the
    pattern is an activation pattern, flipped with probability ``noise``.
    """
    if isi < 1:
        raise ValueError(f"isi must be at least 1, got {isi}")
    patterns = _activation_patterns(num_cs, num_patterns, seed)
    k, total = len(patterns), 2**num_cs
    config = TrialConfig(
        num_cs=num_cs, activation_patterns=patterns,
        pattern_probability=(total * 0.5 - k) / (total - k), other_patterns=None,
        isi=_spread(isi), iti=iti,
        cs_duration=4, us_duration=2,
        distractor_probabilities=_rafiee_distractors(num_distractors), distractor_duration=4,
        noise=noise, us_index=0, cs_start=1, distractor_start=1 + num_cs,
        gamma=1.0 - 1.0 / isi,
    )  # fmt: skip
    return make_stream(f"trace_patterning[isi={isi}]", config)


def noisy_patterning(**options) -> TrialStream:
    """Trace patterning with the US right after the CS (ISI = CS duration = 4, no spread)."""
    stream = trace_patterning(**{"isi": 4, **options})
    config = stream.config._replace(isi=(4, 4))
    return make_stream("noisy_patterning", config)


def javed_trace_patterning(seed: int = 0, isi: int = 30) -> TrialStream:
    """Trace patterning as in Javed et al. 2023 (the CCN paper's setting).

    Observation (12 values): indices 0-5 the CS pattern bits, 6 the US, 7-11 five distractors.
    Each trial shows a uniformly random 3-of-6 pattern for one step; 10 of the 20 patterns, fixed
    by ``seed``, are valid (about half the trials). On valid trials the US is a one-step pulse
    ISI ~ U{isi - isi//5 .. isi + isi//5} (U{24..36} for the paper's isi = 30) steps after CS
    onset; the next trial starts ITI ~ U{80..120} steps after the US time. Distractor k in 1..5
    is on for one step with probability 1/(10k), independently each step. gamma = 0.9.
    """
    if isi < 1:
        raise ValueError(f"isi must be at least 1, got {isi}")
    every_pattern = _activation_patterns(6, math.comb(6, 3), seed=0)  # all 20, in order
    config = TrialConfig(
        num_cs=6, activation_patterns=_activation_patterns(6, 10, seed), pattern_probability=0.0,
        other_patterns=every_pattern, isi=(isi - isi // 5, isi + isi // 5), iti=(80, 120),
        cs_duration=1, us_duration=1,
        distractor_probabilities=tuple(1.0 / (10 * k) for k in range(1, 6)),
        distractor_duration=1, noise=0.0, us_index=6, cs_start=0, distractor_start=7, gamma=0.9,
    )  # fmt: skip
    return make_stream(f"javed_trace_patterning[seed={seed},isi={isi}]", config)
