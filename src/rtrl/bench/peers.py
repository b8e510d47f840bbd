"""Side-by-side throughput against the C++ CCN reference (Javed et al. 2023) on trace patterning.

Runs a timing harness built from the reference implementation and the matching rtrl presets
alternately, each round in fresh processes pinned to the same core (``taskset -c CORE``, when
``taskset`` exists), and prints the median steps/s of each and their ratio, for 1 seed and for
32 seeds in total. The harness is a binary taking ``columnar N S STEPS``, ``hybrid N S STEPS K``
or ``tbptt H T STEPS`` and printing ``ALG A:B steps/s X mse Y`` (TD(lambda), gamma 0.9,
lambda 0.99, RMSProp, the reference's trace-patterning stream).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

# preset -> the harness's arguments before and after STEPS (K: a new stage every steps / 5).
WORKLOADS = {
    "ccn-columnar": (["columnar", "7", "7"], []),
    "ccn": (["hybrid", "20", "4"], ["STAGE"]),
    "ccn-tbptt-15-4": (["tbptt", "15", "4"], []),
}
BUILD_HINT = (
    "no C++ harness given (--ccn-cpp PATH): build the CCN reference implementation's "
    "trace-patterning timing loop as a binary taking 'columnar N S STEPS', 'hybrid N S STEPS K' "
    "or 'tbptt H T STEPS' and printing 'ALG A:B steps/s X ...', then pass its path"
)


def add_alternation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every side-by-side suite shares: rounds and the core both sides run on."""
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (at least 3)")
    parser.add_argument("--core", type=int, default=0, help="the core both programs run on")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ccn-cpp", default=None, help="path of the C++ harness binary")
    parser.add_argument("--presets", default=",".join(WORKLOADS), help="comma-separated")
    add_alternation_arguments(parser)
    parser.add_argument("--cpp-steps", type=int, default=1_000_000, help="steps per C++ run")
    parser.add_argument("--seeds", default="1,32", help="rtrl seed counts (comma-separated)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="rtrl timing per row")


def _pinned(command: list[str], core: int) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(core), *command] if taskset else command


def _run_cpp(binary: str, preset: str, steps: int, core: int) -> float:
    before, after = WORKLOADS[preset]
    extra = [str(steps // 5) if a == "STAGE" else a for a in after]
    out = subprocess.run(_pinned([binary, *before, str(steps), *extra], core),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    match = re.search(r"steps/s\s+([0-9.eE+]+)", out)
    if match is None:
        raise SystemExit(f"{binary} printed no 'steps/s' figure:\n{out[-500:]}")
    return float(match.group(1))


def json_rows(command: list[str], core: int) -> list[dict]:
    """The JSON lines a benchmark command prints, run pinned to ``core``."""
    out = subprocess.run(_pinned(command, core), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed:\n{out.stderr[-800:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def check_rounds(rounds: int) -> None:
    if rounds < 3:
        raise SystemExit(f"--rounds must be at least 3 for a median, got {rounds}")


def _run_rtrl(preset: str, seeds: str, min_seconds: float, core: int) -> dict[int, float]:
    command = [sys.executable, "-m", "rtrl.bench", "loop", "--json", "--presets", preset,
               "--seeds", seeds, "--chunk", "10000", "--min-seconds", str(min_seconds)]  # fmt: skip
    return {row["seeds"]: row["total_steps_per_s"] for row in json_rows(command, core)}


def run(args: argparse.Namespace) -> list[dict]:
    if args.ccn_cpp is None or not Path(args.ccn_cpp).is_file():
        missing = "" if args.ccn_cpp is None else f"{args.ccn_cpp} does not exist; "
        print(missing + BUILD_HINT)
        return []
    check_rounds(args.rounds)
    presets = [p for p in args.presets.split(",") if p]
    unknown = sorted(set(presets) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"no C++ counterpart for {unknown}; choose from {sorted(WORKLOADS)}")
    seed_counts = [int(s) for s in args.seeds.split(",")]
    cpp = {p: [] for p in presets}
    ours = {(p, s): [] for p in presets for s in seed_counts}
    for _ in range(args.rounds):
        for preset in presets:  # alternate: C++, then rtrl, workload by workload
            cpp[preset].append(_run_cpp(args.ccn_cpp, preset, args.cpp_steps, args.core))
            for seeds, rate in _run_rtrl(preset, args.seeds, args.min_seconds, args.core).items():
                ours[(preset, seeds)].append(rate)
    rows = []
    if not args.json:
        print(f"{'preset':<16}{'C++ steps/s':>13}{'seeds':>7}{'rtrl total steps/s':>20}"
              f"{'ratio':>8}   (medians of {args.rounds} alternating rounds)")  # fmt: skip
    for preset in presets:
        reference = statistics.median(cpp[preset])
        for seeds in seed_counts:
            total = statistics.median(ours[(preset, seeds)])
            row = {"preset": preset, "cpp_steps_per_s": reference, "seeds": seeds,
                   "rtrl_total_steps_per_s": total, "ratio": total / reference,
                   "cpp_rounds": cpp[preset], "rtrl_rounds": ours[(preset, seeds)]}  # fmt: skip
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{preset:<16}{reference:>13,.0f}{seeds:>7}{total:>20,.0f}"
                      f"{row['ratio']:>7.2f}x", flush=True)  # fmt: skip
    return rows
