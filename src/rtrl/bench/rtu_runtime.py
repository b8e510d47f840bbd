"""The RTU paper's runtime figure (Elelimy et al. 2024, Fig. 3): time per update against the
truncation T, incremental (one stream, an update every step), for T-BPTT (GRU and online LRU)
and RTRL (linear RTU and online LRU, whose cost does not depend on T); and the batch setting,
PPO's environment steps/s on Ant-P with the RTU (RTRL) and GRU (BPTT) trunks.

``--out DIR`` writes ``study.csv`` (one row per measurement), ``best.md`` (the tables) and
``rtu-runtime.png`` (the two panels). A benchmark, not a study: timings are taken one at a time,
pinned (``taskset -c 0``), never beside other runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rtrl import cells
from rtrl.bench.control_suite import preset_seconds
from rtrl.bench.timing import measure_online_step
from rtrl.gradients import make_estimator

# label -> (cell, estimator); the RTRL rows do not depend on T and are measured once.
INCREMENTAL = {
    "linear RTU, RTRL": ("linear_rtu", "columnar_rtrl"),
    "online LRU, RTRL": ("online_lru", "columnar_rtrl"),
    "online LRU, T-BPTT": ("online_lru", "tbptt"),
    "GRU, T-BPTT": ("dense_gru", "tbptt"),
}
TRUNCATIONS = (1, 2, 4, 8, 16, 32)
PAPER_TRUNCATIONS = (1, 2, 4, 8, 16, 32, 64, 128)
PPO_PRESETS = ("ppo-rtu-ant-p", "ppo-gru-bptt-ant-p")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", type=int, default=32,
                        help="units of every network (RTU, LRU: complex)")  # fmt: skip
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--truncations", default=",".join(map(str, TRUNCATIONS)))
    parser.add_argument("--paper", action="store_true",
                        help=f"T up to {PAPER_TRUNCATIONS[-1]} and 128 units")  # fmt: skip
    parser.add_argument("--steps", type=int, default=100, help="steps per timed scan")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timing budget per row")
    parser.add_argument("--ppo-presets", default=",".join(PPO_PRESETS),
                        help="PPO presets timed in the batch setting ('' to skip)")  # fmt: skip
    parser.add_argument("--ppo-seconds", type=float, default=3.0, help="timing budget per preset")
    parser.add_argument("--out", type=Path, default=None, help="write the tables and figure here")


def incremental_rows(units: int, inputs: int, truncations, steps: int, min_seconds: float,
                     emit=print) -> list[dict]:  # fmt: skip
    rows = []
    for label, (cell_name, estimator_name) in INCREMENTAL.items():
        for truncation in truncations if estimator_name == "tbptt" else (None,):
            cell = cells.make_cell(cell_name, units)
            estimator = make_estimator(estimator_name, cell, truncation=truncation)
            timing = measure_online_step(cell, estimator, inputs, 1, steps, min_seconds)
            row = {"setting": "incremental", "network": label, "truncation": truncation or "",
                   "units": units, "params": timing["params"],
                   "us_per_update": timing["us_per_step"]}  # fmt: skip
            rows.append(row)
            emit(row)
    return rows


def ppo_rows(names, min_seconds: float, emit=print) -> list[dict]:
    rows = []
    for name in names:
        steps, seconds = preset_seconds(name, 1, 2048, min_seconds)
        row = {"setting": "batch", "network": name, "steps_per_s": steps / seconds}
        rows.append(row)
        emit(row)
    return rows


def tables(rows: list[dict]) -> str:
    incremental = [r for r in rows if r["setting"] == "incremental"]
    truncations = sorted({r["truncation"] for r in incremental if r["truncation"] != ""})
    lines = ["Microseconds per update, one stream (an update every step)\n",
             "| network | " + " | ".join(f"T = {t}" for t in truncations) + " | any T |",
             "|---|" + "---|" * (len(truncations) + 1)]  # fmt: skip
    for network in dict.fromkeys(r["network"] for r in incremental):
        by_t = {r["truncation"]: r["us_per_update"] for r in incremental if r["network"] == network}
        cells_ = [f"{by_t[t]:.1f}" if t in by_t else "–" for t in (*truncations, "")]
        lines.append(f"| {network} | " + " | ".join(cells_) + " |")
    batch = [r for r in rows if r["setting"] == "batch"]
    if batch:
        lines += ["", "PPO on Ant-P, environment steps per second (1 seed)\n",
                  "| preset | steps/s |", "|---|---|"]  # fmt: skip
        lines += [f"| {r['network']} | {r['steps_per_s']:,.0f} |" for r in batch]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    from rtrl.experiments.plots import new_figure, save_figure

    batch = [r for r in rows if r["setting"] == "batch"]
    fig, axes = new_figure(1, 2 if batch else 1, figsize=(9.5 if batch else 5.5, 3.8))
    ax = axes[0] if batch else axes
    incremental = [r for r in rows if r["setting"] == "incremental"]
    for index, network in enumerate(dict.fromkeys(r["network"] for r in incremental)):
        points = [r for r in incremental if r["network"] == network]
        if points[0]["truncation"] == "":
            ax.axhline(points[0]["us_per_update"], color=f"C{index}", linestyle="--", label=network)
        else:
            ax.plot([r["truncation"] for r in points], [r["us_per_update"] for r in points],
                    marker="o", color=f"C{index}", label=network)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("truncation T")
    ax.set_ylabel("µs per update (one stream)")
    ax.set_title("incremental", fontsize=9)
    ax.legend(fontsize=7)
    if batch:
        axes[1].bar([r["network"] for r in batch], [r["steps_per_s"] for r in batch],
                    color=["C0", "C3"][: len(batch)])  # fmt: skip
        axes[1].set_ylabel("environment steps/s")
        axes[1].set_title("batch: PPO on Ant-P", fontsize=9)
        axes[1].tick_params(axis="x", labelsize=7)
    save_figure(fig, path)


def run(args: argparse.Namespace) -> list[dict]:
    def emit(row: dict) -> None:
        print(json.dumps(row) if args.json else "  ".join(
            f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
            flush=True)  # fmt: skip

    truncations = PAPER_TRUNCATIONS if args.paper else [int(t) for t in args.truncations.split(",")]
    units = 128 if args.paper else args.units
    rows = incremental_rows(units, args.inputs, truncations, args.steps, args.min_seconds, emit)
    rows += ppo_rows(list(filter(None, args.ppo_presets.split(","))), args.ppo_seconds, emit)
    if args.out is not None:
        from rtrl.experiments.results import write_table

        args.out.mkdir(parents=True, exist_ok=True)
        columns = list(dict.fromkeys(k for row in rows for k in row))
        write_table(args.out / "study.csv", [{k: row.get(k, "") for k in columns} for row in rows])
        (args.out / "best.md").write_text(tables(rows))
        plot(rows, args.out / "rtu-runtime.png")
        print(f"wrote best.md, rtu-runtime.png, study.csv in {args.out}")
    return rows
