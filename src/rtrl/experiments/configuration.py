"""Configurations: a preset resolved with overrides, the one place for the rules that
``rtrl run``, ``rtrl sweep`` and ``rtrl study run`` share.

- ``resolve(name, overrides, paper)``: the preset's configuration (``rtrl.experiments.presets``)
  with ``--set key=value`` overrides converted to the type of the default and range-checked;
  ``paper``: the preset's long budget (``paper_steps``). Unknown presets and keys, and earlier
  spellings of a key, get one-line errors that name the fix.
- ``budget_overrides(items, steps, paper)``: ``--set`` items plus ``--steps`` (not with
  ``--paper``).
- ``games(text)``: ``--games`` (Atari games, checked) and ``check_games``: only configurations
  whose kind runs over games take them.
"""

from __future__ import annotations

import math
from typing import Any

from rtrl.experiments.presets import PRESETS


def preset_names() -> list[str]:
    return sorted(PRESETS)


def describe(name: str) -> str:
    return PRESETS[name][0]


# Earlier spellings of a key, rejected with the current one.
RENAMED_KEYS = {
    "learning_rate": "step_size",
    "lr": "step_size",
    "actor_step_size": "step_size",
    "critic_step_size": "step_size",
}
# Rates replaced by windows in steps (rate = 1 - 1/window).
RATES_AS_WINDOWS = {
    "input_norm_rate": "input_norm_window",
    "feature_norm_rate": "feature_norm_window",
}

# Ranges of the keys that have one (every float must also be finite).
_AT_LEAST_ONE = {"units", "steps", "paper_steps", "chunk", "bin_size", "final_window",
                 "truncation", "isi", "frame_size", "rollout_length", "num_envs", "epochs",
                 "minibatches", "sequence_length", "columns", "inputs",
                 "segment_length", "max_length", "batch_size", "validation_size",
                 "memory_length", "encoder_units"}  # fmt: skip
_AT_LEAST_ZERO = {"num_distractors", "stage_size", "stage_steps", "seed", "hidden", "clip",
                  "value_clip", "value_coef", "entropy_coef", "max_grad_norm",
                  "adam_eps", "input_norm_window", "feature_norm_window", "baseline_coef",
                  "reward_clip", "behaviour_lag", "rmsprop_eps", "max_timescale",
                  "encoder_layers", "h_regularizer"}  # fmt: skip
_UNIT_INTERVAL = {
    "gamma",
    "lambda",
    "gae_lambda",
    "final_fraction",
    "density",
    "epsilon_start",
    "epsilon_end",
    "exploration_fraction",
    "sparsity",
}  # [0, 1]
_POSITIVE = {"step_size", "norm_floor", "init_scale", "meta_step_size", "rho_bar", "c_bar",
             "kappa", "actor_kappa", "critic_kappa", "q_kappa", "h_step_size"}  # fmt: skip
# Choices of the string keys that have a fixed set.
_CHOICES = {"resize": ("area", "bilinear"), "torso": ("resnet", "nature"),
            "ac_optimizer": ("adam", "obgd", "adaptive_obgd"),
            "q_optimizer": ("adam", "sgd", "obgd", "adaptive_obgd")}  # fmt: skip


def check_value(key: str, value: Any) -> None:
    """A one-line error when ``value`` is outside the range ``key`` allows."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ValueError(f"{key} must be one of {', '.join(_CHOICES[key])}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    problem = None
    if key in _AT_LEAST_ONE and value < 1:
        problem = "must be at least 1"
    elif key in _AT_LEAST_ZERO and value < 0:
        problem = "must be at least 0"
    elif key in _UNIT_INTERVAL and not 0 <= value <= 1:
        problem = "must lie in [0, 1]"
    elif key in _POSITIVE and value <= 0:
        problem = "must be positive"
    if problem:
        raise ValueError(f"{key} {problem}, got {value}")


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``--set key=value`` arguments as {key: value text}."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def resolve(name: str, overrides: dict[str, str] | None = None, paper: bool = False
            ) -> dict[str, Any]:  # fmt: skip
    """The preset's configuration with ``--set`` overrides applied (strings converted to the
    type of the default, and range-checked); unknown presets and keys get errors that list the
    valid ones. ``paper``: the budget is the preset's long one, ``paper_steps`` (``--paper``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}")
    config = dict(PRESETS[name][1])
    for key, text in (overrides or {}).items():
        if key in RENAMED_KEYS and key not in config:
            new = RENAMED_KEYS[key]
            raise KeyError(f"{key!r} is now called {new!r}: use --set {new}={text}")
        if key in RATES_AS_WINDOWS and key not in config:
            new = RATES_AS_WINDOWS[key]
            raise KeyError(
                f"{key!r} is now {new!r}, a window in steps (rate = 1 - 1/window, 0 = off): "
                f"use --set {new}=N"
            )
        if key not in config:
            raise KeyError(
                f"unknown key {key!r} for preset {name}; valid keys: {', '.join(sorted(config))}"
            )
        config[key] = _convert(key, text, config[key])
        check_value(key, config[key])
    if paper:
        config["steps"] = config["paper_steps"]
    _match_units(config, overrides or {})
    return config


# Keys that size a network like another preset's: key -> what is matched (rtrl.experiments.compute).
MATCHED = {"match_compute": "compute", "match_parameters": "parameters"}


def _match_units(config: dict[str, Any], overrides: dict[str, str]) -> None:
    """``match_compute=PRESET`` (``match_parameters=PRESET``): the most units whose multiply-adds
    per step (network parameters) stay within that preset's, as the preset stands (its own
    stream and sizes, not this run's other overrides)."""
    keys = [key for key in MATCHED if config.get(key)]
    if not keys:
        return
    if len(keys) > 1:
        raise ValueError("set one of match_compute and match_parameters, not both")
    key = keys[0]
    if "units" in overrides:
        raise ValueError(f"{key} chooses the units: leave units unset, or set {key}= (empty)")
    reference = config[key]
    if reference not in PRESETS:
        raise ValueError(f"{key}: unknown preset {reference!r}; rtrl list shows the presets")
    reference_config = resolve(reference)
    if reference_config["kind"] != config["kind"] or reference_config.get(key):
        raise ValueError(f"{key}: {reference} must be a {config['kind']} preset sized by its "
                         "own units")  # fmt: skip
    from rtrl.experiments import compute

    target = compute.measure_of(reference_config, MATCHED[key])
    config["units"] = compute.matched_units(config, MATCHED[key], target)


def _convert(key: str, text: str, default: Any) -> Any:
    """A ``--set`` string as the type of the key's default (ints accept 1e6 but not 1.5)."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            value = float(text)
            if value != int(value):
                raise ValueError
            return int(value)
        return type(default)(text)
    except (ValueError, OverflowError):
        raise ValueError(
            f"bad value {text!r} for {key}: expected {type(default).__name__}"
        ) from None


def budget_overrides(items: list[str], steps: int | None = None, paper: bool = False
                     ) -> dict[str, str]:  # fmt: skip
    """``--set`` items plus ``--steps`` as overrides; ``--paper`` is applied when resolving (it
    reads the preset), so the two cannot be given together."""
    overrides = parse_overrides(items)
    if steps is not None and paper:
        raise ValueError("give either --steps or --paper, not both")
    if steps is not None:
        overrides["steps"] = str(steps)
    return overrides


def games(text: str | None) -> list[str] | None:
    """``--games``: the Atari games named (``Pong,Breakout`` or ``all``, checked), or None."""
    if not text:
        return None
    from rtrl.envs.atari import parse_games

    return parse_games(text)


def check_games(config: dict[str, Any], preset: str, games: list[str] | tuple[str, ...] | None
                ) -> None:  # fmt: skip
    """Only presets whose kind runs over several Atari games take ``--games``."""
    from rtrl.experiments.kinds import kind_of

    if games and not kind_of(config).takes_games(config):
        raise ValueError(f"--games is for Atari prediction presets, not {preset}")
