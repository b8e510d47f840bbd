"""Gradient estimators: how credit reaches the recurrent parameters."""

from rtrl.gradients import bptt
from rtrl.gradients.base import Estimator, online_value_and_grad
from rtrl.gradients.columnar import TraceState, columnar_rtrl, snap1, trace_size
from rtrl.gradients.full import SensitivityState, full_rtrl
from rtrl.gradients.tbptt import WindowState, block_value_and_grad, truncated_bptt
from rtrl.gradients.uoro import UOROState, uoro


def _active_stage_rtrl(network):
    """Exact RTRL for the active stage of a staged network, which provides it
    (``rtrl.networks.staged_network(...).exact_rtrl()``): the network's layer sits above this
    one."""
    if not hasattr(network, "exact_rtrl"):
        raise ValueError(
            "staged_rtrl needs a staged network (rtrl.networks.staged_network), not a cell"
        )
    return network.exact_rtrl()


# Estimators by name: each takes the cell (staged_rtrl: the staged network), T-BPTT also its
# truncation.
ESTIMATORS = {
    "columnar_rtrl": columnar_rtrl,
    "full_rtrl": full_rtrl,
    "snap1": snap1,
    "uoro": uoro,
    "tbptt": truncated_bptt,
    "staged_rtrl": _active_stage_rtrl,
}


def make_estimator(name: str, cell, truncation: int | None = None):
    """Build an estimator by name for ``cell`` (``truncation``: T for "tbptt", which may also be
    written into the name, ``tbptt_4``, so that one list holds several truncations;
    "staged_rtrl" takes a staged network)."""
    base, _, written = name.partition("_")
    if base == "tbptt" and written.isdigit():
        name, truncation = "tbptt", int(written)
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}")
    if name == "tbptt":
        if truncation is None:
            raise ValueError("tbptt needs its truncation T: write it as tbptt_T, e.g. tbptt_4")
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
