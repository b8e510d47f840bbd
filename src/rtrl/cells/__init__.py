"""Recurrent architectures: parameters, state and one-step update, as pure functions."""

from rtrl.cells.base import (
    Cell,
    Coupling,
    count_params,
    is_elementwise,
    is_unit_form,
    recurrent_params,
    step,
    streams_last,
)
from rtrl.cells.coupled import coupled_columns
from rtrl.cells.dense import dense_gru, dense_lstm, dense_rnn
from rtrl.cells.elstm import elstm
from rtrl.cells.feedforward import FEEDFORWARD, feedforward
from rtrl.cells.lru import nonlinear_lru, online_lru
from rtrl.cells.lstm import columnar_lstm
from rtrl.cells.rnn import elementwise_rnn
from rtrl.cells.rtu import linear_rtu, nonlinear_rtu, rtu

# Constructors by name, for configuration files and the command line.
CELLS = {
    "columnar_lstm": columnar_lstm,
    "elstm": elstm,
    "linear_rtu": linear_rtu,
    "nonlinear_rtu": nonlinear_rtu,
    "online_lru": online_lru,
    "nonlinear_lru": nonlinear_lru,
    "elementwise_rnn": elementwise_rnn,
    "dense_rnn": dense_rnn,
    "dense_gru": dense_gru,
    "dense_lstm": dense_lstm,
    FEEDFORWARD: feedforward,  # no state: the feed-forward control trunk
}


def make_cell(name: str, units: int, **options) -> Cell:
    """Build a cell by name, e.g. ``make_cell("linear_rtu", 64, r_max=0.99)``."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; choose one of {sorted(CELLS)}")
    return CELLS[name](units, **options)


__all__ = [
    "FEEDFORWARD",
    "feedforward",
    "CELLS",
    "Cell",
    "Coupling",
    "coupled_columns",
    "dense_gru",
    "dense_lstm",
    "dense_rnn",
    "is_unit_form",
    "columnar_lstm",
    "count_params",
    "elementwise_rnn",
    "elstm",
    "is_elementwise",
    "linear_rtu",
    "make_cell",
    "nonlinear_lru",
    "nonlinear_rtu",
    "online_lru",
    "recurrent_params",
    "rtu",
    "step",
    "streams_last",
]
