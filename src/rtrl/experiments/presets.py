"""Named experiment presets: one per paper setting, each a flat configuration dictionary.

Every value can be overridden from the command line with ``--set key=value``; the keys and types
of a preset are those of ``PREDICTION_DEFAULTS``.
"""

from __future__ import annotations

from typing import Any

PREDICTION_DEFAULTS: dict[str, Any] = {
    "kind": "prediction",
    "stream": "trace_patterning",  # see STREAMS in runner.py
    "isi": 10,  # Rafiee presets only
    "num_distractors": 10,  # Rafiee presets only
    "cell": "columnar_lstm",
    "units": 8,
    "estimator": "columnar_rtrl",  # columnar_rtrl | snap1 | uoro | full_rtrl | tbptt
    "truncation": 8,  # T for tbptt
    "optimizer": "rmsprop_on_update",  # sgd | adam | rmsprop_on_update
    "step_size": 1e-3,
    "lambda": 0.9,
    "feature_norm_rate": 1.0,  # < 1: normalise features by running statistics (1 = off)
    "steps": 200_000,
    "paper_steps": 5_000_000,  # the long budget that `rtrl run --paper` selects
    "chunk": 10_000,  # steps per compiled scan (and per checkpoint)
    "bin_size": 10_000,  # steps per point of the learning curve
    "final_window": 100_000,  # steps at the end scored as the final error
    "seed": 0,
}

_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {}


def _preset(name: str, description: str, **overrides: Any) -> None:
    unknown = set(overrides) - set(PREDICTION_DEFAULTS)
    assert not unknown, f"preset {name} sets unknown keys {unknown}"
    _PRESETS[name] = (description, {**PREDICTION_DEFAULTS, **overrides})


# Trace conditioning and trace patterning (Rafiee et al. 2022), one preset per architecture:
# slug -> (description, overrides).
_ADAM = {"optimizer": "adam", "step_size": 3e-4}
_ARCHITECTURES = {
    "columnar-lstm": ("columnar LSTM (8 columns), exact RTRL", {"cell": "columnar_lstm"}),
    "linear-rtu": ("linear RTU (8 units), exact RTRL", {"cell": "linear_rtu", **_ADAM}),
    "nonlinear-rtu": ("nonlinear RTU (8 units), exact RTRL", {"cell": "nonlinear_rtu", **_ADAM}),
    "elstm": ("eLSTM (8 units), exact RTRL", {"cell": "elstm", **_ADAM}),
    "online-lru": ("online LRU (8 units), exact RTRL", {"cell": "online_lru", **_ADAM}),
    "tbptt-lstm": (
        "dense LSTM (4 units), T-BPTT T=8",
        {"cell": "dense_lstm", "units": 4, "estimator": "tbptt", "truncation": 8},
    ),
    "tbptt-gru": (
        "dense GRU (4 units), T-BPTT T=8",
        {"cell": "dense_gru", "units": 4, "estimator": "tbptt", "truncation": 8},
    ),
}
for _short, _stream in (("tc", "trace_conditioning"), ("tp", "trace_patterning")):
    for _slug, (_description, _overrides) in _ARCHITECTURES.items():
        _preset(f"{_short}-{_slug}", f"{_stream}, {_description}", stream=_stream, **_overrides)


def preset_names() -> list[str]:
    return sorted(_PRESETS)


def describe(name: str) -> str:
    return _PRESETS[name][0]


def resolve(name: str, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The preset's configuration with ``--set`` overrides applied (strings converted to the
    type of the default); unknown presets and keys get errors that list the valid ones."""
    if name not in _PRESETS:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}")
    config = dict(_PRESETS[name][1])
    for key, text in (overrides or {}).items():
        if key not in config:
            raise KeyError(
                f"unknown key {key!r} for preset {name}; valid keys: {', '.join(sorted(config))}"
            )
        config[key] = _convert(key, text, config[key])
    return config


def _convert(key: str, text: str, default: Any) -> Any:
    """A ``--set`` string as the type of the key's default (ints accept 1e6 but not 1.5)."""
    try:
        if isinstance(default, int):
            value = float(text)
            if value != int(value):
                raise ValueError
            return int(value)
        return type(default)(text)
    except ValueError:
        raise ValueError(
            f"bad value {text!r} for {key}: expected {type(default).__name__}"
        ) from None
