"""Per-step cost of online learning with each element-wise cell.

Measures a jitted ``lax.scan`` of the whole online step — forward, trace update, gradient of a
squared error through a linear head, and an SGD update of every parameter — for each cell, at
several sizes, for 1 and many vmapped independent learners (streams), after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
from collections import defaultdict

from rtrl import cells
from rtrl.bench.timing import fitted_exponent, measure_online_step
from rtrl.gradients import make_estimator

BENCH_CELLS = {
    "columnar_lstm": lambda n: cells.columnar_lstm(n),
    "elstm": lambda n: cells.elstm(n),
    "linear_rtu": lambda n: cells.linear_rtu(n),
    "nonlinear_rtu": lambda n: cells.nonlinear_rtu(n),
    "online_lru": lambda n: cells.online_lru(n),
    "elementwise_rnn": lambda n: cells.elementwise_rnn(n),
}
DEFAULT_UNITS = {"columnar_rtrl": (64, 256, 1024), "full_rtrl": (4, 8, 16)}


def measure(cell_name, estimator_name, units, inputs, streams, steps, min_seconds):
    cell = BENCH_CELLS[cell_name](units)
    row = measure_online_step(
        cell, make_estimator(estimator_name, cell), inputs, streams, steps, min_seconds
    )
    # The process's peak resident memory so far (rows run smallest first, so for the largest
    # row of a cell this is that row's peak).
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cell": cell_name, **row, "peak_rss_mb": peak_mb}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cells", default=",".join(BENCH_CELLS), help="comma-separated cells")
    parser.add_argument(
        "--estimator", default="columnar_rtrl", choices=sorted(DEFAULT_UNITS), help="estimator"
    )
    parser.add_argument(
        "--units", default=None, help="comma-separated sizes (default by estimator)"
    )
    parser.add_argument("--streams", default="1,32", help="comma-separated numbers of streams")
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed scan")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timing budget per row")


def run(args: argparse.Namespace) -> list[dict]:
    names = [c for c in args.cells.split(",") if c]
    unknown = sorted(set(names) - set(BENCH_CELLS))
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; choose from {sorted(BENCH_CELLS)}")
    units_list = (
        [int(u) for u in args.units.split(",")] if args.units else DEFAULT_UNITS[args.estimator]
    )
    streams_list = [int(s) for s in args.streams.split(",")]
    rows = []
    if not args.json:
        print(
            f"{'cell':<16}{'estimator':<15}{'units':>6}{'params':>9}{'recurrent':>10}{'streams':>8}"
            f"{'steps/s':>11}{'us/step':>10}{'stream-steps/s':>16}{'peak MB':>9}"
        )
    for name in names:
        for streams in streams_list:
            for units in units_list:
                row = measure(
                    name, args.estimator, units, args.inputs, streams, args.steps, args.min_seconds
                )
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print(
                        f"{row['cell']:<16}{row['estimator']:<15}{units:>6}{row['params']:>9}"
                        f"{row['recurrent_params']:>10}"
                        f"{streams:>8}{row['steps_per_s']:>11,.0f}{row['us_per_step']:>10.1f}"
                        f"{row['stream_steps_per_s']:>16,.0f}{row['peak_rss_mb']:>9,.0f}",
                        flush=True,
                    )
    report_exponents(rows, args.json)
    return rows


def report_exponents(rows: list[dict], as_json: bool) -> None:
    """Fitted exponent of time per step against the cell's parameter count, per (cell, streams).

    The count includes feed-forward readouts (eLSTM output gate, LRU readout), which are dense
    by those cells' definitions and dominate their cost at large sizes."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["cell"], row["estimator"], row["streams"])].append(row)
    if not as_json:
        print("\nfitted exponent of time per step vs. cell parameters (1 = linear):")
    for (cell, estimator, streams), group in groups.items():
        exponent = fitted_exponent([r["params"] for r in group], [r["us_per_step"] for r in group])
        if as_json:
            print(
                json.dumps(
                    {
                        "cell": cell,
                        "estimator": estimator,
                        "streams": streams,
                        "exponent_time_vs_params": exponent,
                    }
                )
            )
        else:
            print(f"  {cell:<16}{estimator:<15}streams={streams:<4} exponent {exponent:.2f}")
