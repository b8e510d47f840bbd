"""Gradient estimators: how credit reaches the recurrent parameters."""

from rtrl.gradients import bptt
from rtrl.gradients.base import Estimator, online_value_and_grad
from rtrl.gradients.columnar import TraceState, columnar_rtrl, snap1, trace_size
from rtrl.gradients.full import SensitivityState, full_rtrl
from rtrl.gradients.tbptt import WindowState, block_value_and_grad, truncated_bptt
from rtrl.gradients.uoro import UOROState, uoro

# Estimators by name: each takes the cell, T-BPTT also its truncation.
ESTIMATORS = {
    "columnar_rtrl": columnar_rtrl,
    "full_rtrl": full_rtrl,
    "snap1": snap1,
    "uoro": uoro,
    "tbptt": truncated_bptt,
}


def make_estimator(name: str, cell, truncation: int | None = None):
    """Build an estimator by name for ``cell`` (``truncation``: T for "tbptt")."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}")
    if name == "tbptt":
        if truncation is None:
            raise ValueError("tbptt needs its truncation T")
        return truncated_bptt(cell, truncation)
    return ESTIMATORS[name](cell)


__all__ = [
    "ESTIMATORS",
    "Estimator",
    "SensitivityState",
    "TraceState",
    "UOROState",
    "WindowState",
    "block_value_and_grad",
    "bptt",
    "columnar_rtrl",
    "full_rtrl",
    "make_estimator",
    "online_value_and_grad",
    "snap1",
    "trace_size",
    "truncated_bptt",
    "uoro",
]
