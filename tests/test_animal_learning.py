"""Animal-learning streams: layout, event statistics against their definitions, determinism."""

import functools

import jax
import numpy as np
import pytest

from rtrl.envs import animal_learning as al

STEPS = 200_000


@functools.lru_cache(maxsize=None)
def rollout(name: str, seed: int = 0, steps: int = STEPS):
    stream = PRESETS[name]()

    def one_step(state, key):
        state, observation, cumulant = stream.step(key, state)
        return state, (observation, cumulant, state.time)

    key = jax.random.PRNGKey(seed)
    _, (obs, cumulants, times) = jax.jit(lambda k: jax.lax.scan(
        one_step, stream.reset(k), jax.random.split(k, steps)))(key)  # fmt: skip
    return stream, np.asarray(obs), np.asarray(cumulants), np.asarray(times)


PRESETS = {
    "trace_conditioning": lambda: al.trace_conditioning(isi=10),
    "trace_patterning": lambda: al.trace_patterning(isi=10),
    "noisy_patterning": lambda: al.noisy_patterning(),
    "javed": lambda: al.javed_trace_patterning(),
}


def events(obs, cumulants, times, stream):
    """Trial onsets (from the state), US onsets, and each trial's CS pattern."""
    cfg = stream.config
    onsets = np.flatnonzero(times == 0)
    us = cumulants > 0
    us_onsets = np.flatnonzero(us & ~np.concatenate([[False], us[:-1]]))
    patterns = obs[onsets][:, cfg.cs_start : cfg.cs_start + cfg.num_cs]
    return onsets, us_onsets, patterns


@pytest.mark.parametrize(
    "name, size, us_index, cs, distractors",
    [
        ("trace_conditioning", 12, 0, [1], list(range(2, 12))),
        ("trace_patterning", 17, 0, list(range(1, 7)), list(range(7, 17))),
        ("javed", 12, 6, list(range(0, 6)), list(range(7, 12))),
    ],
)
def test_observation_layout(name, size, us_index, cs, distractors):
    stream, obs, cumulants, times = rollout(name)
    assert stream.num_observations == obs.shape[1] == size
    np.testing.assert_array_equal(cumulants, obs[:, us_index])
    onsets, _, _ = events(obs, cumulants, times, stream)
    assert obs[onsets][:, cs].any(axis=1).mean() > 0.95  # the CS shows at trial onset
    assert not obs[:, cs][times > stream.config.cs_duration].any()  # and only then
    assert set(np.unique(obs)) <= {0.0, 1.0}
    assert np.all(obs[:, distractors].mean(axis=0) > 0)


def test_trace_conditioning_timing():
    stream, obs, cumulants, times = rollout("trace_conditioning")
    assert stream.gamma == pytest.approx(0.9)
    onsets, us_onsets, _ = events(obs, cumulants, times, stream)
    assert len(onsets) == len(us_onsets) or len(onsets) == len(us_onsets) + 1  # every trial has US
    isi = us_onsets - onsets[: len(us_onsets)]
    assert isi.min() == 7 and isi.max() == 13 and abs(isi.mean() - 10) < 0.1
    iti = onsets[1:] - us_onsets[: len(onsets) - 1]
    assert iti.min() == 80 and iti.max() == 120 and abs(iti.mean() - 100) < 0.5
    # CS lasts 4 steps, US 2.
    cs_on = obs[:, 1] > 0
    assert cs_on.sum() == 4 * len(onsets) - max(0, 4 - (len(obs) - onsets[-1]))
    assert abs(cumulants.sum() - 2 * len(us_onsets)) <= 1


def test_rafiee_distractor_rates():
    """Distractor d: on for 4 steps, switching on w.p. p = 1/(10 d) when off: on-fraction
    4p / (1 + 3p) (off spells are geometric on {0, 1, ...})."""
    stream, obs, _, _ = rollout("trace_conditioning")
    for d in range(1, 11):
        p = 1 / (10 * d)
        assert abs(obs[:, 1 + d].mean() - 4 * p / (1 + 3 * p)) < 0.01, d


def test_trace_patterning_pattern_statistics():
    stream, obs, cumulants, times = rollout("trace_patterning")
    onsets, us_onsets, patterns = events(obs, cumulants, times, stream)
    activation = {tuple(p) for p in stream.config.activation_patterns}
    assert len(activation) == 10 and all(sum(p) == 3 for p in activation)
    is_activation = np.array([tuple(p) in activation for p in patterns.astype(int)])
    assert abs(is_activation.mean() - 0.5) < 0.03  # p' makes half of the trials activations
    # US follows exactly the activation trials (no noise), ISI after onset.
    us_trials = np.array([cumulants[o : o + 14].any() for o in onsets[:-1]])
    np.testing.assert_array_equal(us_trials, is_activation[:-1])


def test_noisy_patterning_us_right_after_cs_and_noise_flips():
    stream, obs, cumulants, times = rollout("noisy_patterning")
    onsets, us_onsets, _ = events(obs, cumulants, times, stream)
    assert set(np.unique(us_onsets - onsets[np.searchsorted(onsets, us_onsets) - 1])) == {4}
    noisy = al.trace_patterning(noise=0.2)
    assert noisy.config.noise == 0.2


def test_javed_preset_statistics():
    stream, obs, cumulants, times = rollout("javed")
    cfg = stream.config
    assert cfg.gamma == 0.9 and len(cfg.activation_patterns) == 10
    onsets, us_onsets, patterns = events(obs, cumulants, times, stream)
    assert np.all(patterns.sum(axis=1) == 3)  # always a 3-of-6 pattern
    counts = np.unique(patterns, axis=0, return_counts=True)[1]
    assert len(counts) == 20 and counts.min() > 0.7 * counts.mean()  # all 20, about uniformly
    valid = {tuple(p) for p in cfg.activation_patterns}
    is_valid = np.array([tuple(p) in valid for p in patterns.astype(int)])
    assert abs(is_valid.mean() - 0.5) < 0.04
    # The CS is shown for one step; the US is a one-step pulse ISI in 24..36 after onset.
    assert np.all(obs[onsets + 1][:, :6] == 0)
    trial_of_us = np.searchsorted(onsets, us_onsets, side="right") - 1
    isi = us_onsets - onsets[trial_of_us]
    assert isi.min() == 24 and isi.max() == 36 and abs(isi.mean() - 30) < 0.3
    np.testing.assert_array_equal(np.unique(trial_of_us), np.flatnonzero(is_valid)[: len(isi)])
    assert cumulants.sum() == len(us_onsets)  # one-step pulses
    iti = onsets[trial_of_us[:-1] + 1] - us_onsets[:-1]
    assert iti.min() == 80 and iti.max() == 120
    for k in range(1, 6):  # independent one-step distractors
        assert abs(obs[:, 6 + k].mean() - 1 / (10 * k)) < 0.005, k


def test_same_key_same_stream_and_golden_first_steps():
    _, obs_a, _, _ = rollout("javed", seed=3, steps=400)
    _, obs_b, _, _ = rollout("javed", seed=3, steps=400)
    _, obs_c, _, _ = rollout("javed", seed=4, steps=400)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a, obs_c)
    stream, obs, _, _ = rollout("javed", seed=0, steps=400)
    assert stream.config.activation_patterns == GOLDEN_JAVED_VALID
    np.testing.assert_array_equal(np.flatnonzero(obs.sum(axis=1)), GOLDEN_JAVED_ACTIVE_STEPS)


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="num_distractors must be between 0 and 10"):
        al.trace_conditioning(num_distractors=11)
    with pytest.raises(ValueError, match="num_patterns must be between 1 and 20"):
        al.trace_patterning(num_patterns=30)
    with pytest.raises(ValueError, match="isi must be at least 1"):
        al.trace_conditioning(isi=0)


# Golden values (PRNGKey(0), seed 0): a change to the stream's definition or its use of random
# numbers shows up here.
GOLDEN_JAVED_VALID = (
    (1, 1, 1, 0, 0, 0), (1, 1, 0, 1, 0, 0), (1, 1, 0, 0, 0, 1), (1, 0, 1, 1, 0, 0),
    (1, 0, 1, 0, 0, 1), (1, 0, 0, 1, 1, 0), (1, 0, 0, 0, 1, 1), (0, 0, 1, 1, 1, 0),
    (0, 0, 1, 1, 0, 1), (0, 0, 1, 0, 1, 1),
)  # fmt: skip
GOLDEN_JAVED_ACTIVE_STEPS = [
    0, 1, 7, 9, 11, 12, 19, 21, 30, 32, 35, 42, 44, 52, 53, 61, 66, 67, 79, 80, 81, 85, 90, 103,
    114, 117, 120, 123, 128, 131, 136, 137, 141, 143, 144, 155, 159, 162, 165, 167, 174, 177, 189,
    195, 196, 197, 199, 205, 210, 216, 218, 224, 226, 227, 228, 229, 231, 232, 234, 243, 244, 246,
    258, 259, 270, 271, 279, 297, 298, 305, 308, 325, 327, 329, 335, 341, 348, 354, 359, 364, 376,
    391, 394, 397, 398, 399,
]  # fmt: skip
