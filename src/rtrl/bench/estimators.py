"""Per-step cost of each gradient estimator, against network size and truncation length.

The same measurement as the cells benchmark (a jitted scan of the whole online step, after a
warm-up), for: exact columnar RTRL on a columnar LSTM, and SnAp-1, UORO, T-BPTT and full RTRL on
a dense LSTM, at several sizes; and T-BPTT on a dense LSTM against its truncation T.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from rtrl import cells
from rtrl.bench.timing import fitted_exponent, measure_online_step
from rtrl.gradients import columnar_rtrl, full_rtrl, snap1, truncated_bptt, uoro

# name -> (cell constructor, estimator constructor, default sizes)
SIZE_SWEEPS = {
    "columnar_rtrl": (cells.columnar_lstm, columnar_rtrl, (16, 32, 64, 128)),
    "snap1": (cells.dense_lstm, snap1, (16, 32, 64, 128)),
    "uoro": (cells.dense_lstm, uoro, (16, 32, 64, 128)),
    "tbptt": (cells.dense_lstm, None, (16, 32, 64, 128)),
    "full_rtrl": (cells.dense_lstm, full_rtrl, (8, 16, 32, 64)),
}
TRUNCATIONS = (1, 2, 4, 8, 16, 32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--estimators", default=",".join(SIZE_SWEEPS), help="comma-separated")
    parser.add_argument(
        "--units", default=None, help="comma-separated sizes (default per estimator)"
    )
    parser.add_argument("--truncation", type=int, default=8, help="T for the T-BPTT size sweep")
    parser.add_argument("--truncations", default=",".join(map(str, TRUNCATIONS)))
    parser.add_argument("--tbptt-units", type=int, default=32, help="size for the T sweep")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100, help="steps per timed scan")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timing budget per row")


def _emit(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    truncation = "" if row["truncation"] is None else row["truncation"]
    print(
        f"{row['cell']:<14}{row['estimator']:<14}{truncation!s:>5}{row['units']:>7}"
        f"{row['params']:>9}{row['steps_per_s']:>11,.0f}{row['us_per_step']:>11.1f}",
        flush=True,
    )


def run(args: argparse.Namespace) -> list[dict]:
    names = [n for n in args.estimators.split(",") if n]
    unknown = sorted(set(names) - set(SIZE_SWEEPS))
    if unknown:
        raise SystemExit(f"unknown estimators {unknown}; choose from {sorted(SIZE_SWEEPS)}")
    if not args.json:
        print(
            f"{'cell':<14}{'estimator':<14}{'T':>5}{'units':>7}{'params':>9}"
            f"{'steps/s':>11}{'us/step':>11}"
        )

    def measure(make_cell, make_estimator, units, truncation, sweep):
        cell = make_cell(units)
        row = measure_online_step(
            cell, make_estimator(cell), args.inputs, args.streams, args.steps, args.min_seconds
        )
        row = {"cell": cell.name, **row, "truncation": truncation, "sweep": sweep}
        _emit(row, args.json)
        return row

    rows = []
    for name in names:
        make_cell, make_estimator, default_sizes = SIZE_SWEEPS[name]
        truncation = args.truncation if name == "tbptt" else None
        if name == "tbptt":
            make_estimator = lambda cell: truncated_bptt(cell, args.truncation)  # noqa: E731
        sizes = [int(u) for u in args.units.split(",")] if args.units else default_sizes
        for units in sizes:
            rows.append(measure(make_cell, make_estimator, units, truncation, "units"))
    if "tbptt" in names:
        for truncation in [int(t) for t in args.truncations.split(",")]:
            rows.append(
                measure(
                    cells.dense_lstm,
                    lambda c, t=truncation: truncated_bptt(c, t),
                    args.tbptt_units,
                    truncation,
                    "truncation",
                )
            )
    report_exponents(rows, args.json)
    return rows


def report_exponents(rows: list[dict], as_json: bool) -> None:
    """Growth exponents: time per step against units (size sweeps) and against T (T sweep)."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["estimator"] if row["sweep"] == "units" else "tbptt", row["sweep"])].append(row)
    if not as_json:
        print("\nfitted growth exponents of time per step:")
    for (estimator, sweep), group in groups.items():
        times = [r["us_per_step"] for r in group]
        if sweep == "units":
            fits = {
                "units": fitted_exponent([r["units"] for r in group], times),
                "params": fitted_exponent([r["params"] for r in group], times),
            }
        else:  # parameters are fixed along the truncation sweep
            fits = {"truncation": fitted_exponent([r["truncation"] for r in group], times)}
        if as_json:
            exponents = {f"exponent_time_vs_{k}": v for k, v in fits.items()}
            print(json.dumps({"estimator": estimator, "sweep": sweep, **exponents}))
        else:
            print(f"  {estimator:<14} " + ", ".join(f"vs {k} {v:.2f}" for k, v in fits.items()))
