"""Side-by-side throughput against memorax's stream AC(lambda) with an exact-RTRL RTU on
MemoryChain (the same workload: ObGD, separate actor and critic networks, an encoder layer of
64 and an RTU of 64 units, memory length 15).

memorax runs in a scratch environment of its own (``--memorax-python``: that environment's
Python, with memorax installed from its repository; see ``benchmarks/README.md``), through the
timing script ``benchmarks/peers/memorax_stream_ac.py``. Rounds alternate between memorax and
the library's ``stream-memory-ac-rtu`` preset, each in fresh processes pinned to one core, and
the medians and their ratio are printed for 1 stream and for 32 (memorax: streams sharing one
parameter vector; here: independent seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from rtrl.bench.peers import add_alternation_arguments, check_rounds, json_rows

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "peers" / "memorax_stream_ac.py"
PRESET = "stream-memory-ac-rtu"
SETUP_HINT = (
    "no memorax environment given (--memorax-python PATH): make a scratch environment, install "
    "memorax from its repository (with gymnax < 1.0, whose step returns 5 values) and pass its "
    "Python; benchmarks/README.md has the commands"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memorax-python", default=None, help="the scratch environment's python")
    parser.add_argument("--script", default=str(SCRIPT), help="memorax's timing script")
    add_alternation_arguments(parser)
    parser.add_argument("--seeds", default="1,32", help="streams (comma-separated)")
    parser.add_argument("--peer-steps", type=int, default=32_000,
                        help="memorax: environment steps per timed call, all streams")  # fmt: skip
    parser.add_argument("--min-seconds", type=float, default=3.0, help="rtrl timing per row")


def _run_memorax(args, streams: int) -> float:
    command = [args.memorax_python, args.script, "--streams", str(streams), "--steps",
               str(max(args.peer_steps // streams, 100)), "--rounds", "1"]  # fmt: skip
    return json_rows(command, args.core)[-1]["steps_per_s_total"]


def _run_rtrl(args) -> dict[int, float]:
    command = [sys.executable, "-m", "rtrl.bench", "control", "--json", "--presets", PRESET,
               "--seeds", args.seeds, "--chunk", "10000", "--backends", "",
               "--min-seconds", str(args.min_seconds)]  # fmt: skip
    return {row["seeds"]: row["steps_per_s_total"] for row in json_rows(command, args.core)}


def run(args: argparse.Namespace) -> list[dict]:
    if args.memorax_python is None or not Path(args.memorax_python).is_file():
        missing = "" if args.memorax_python is None else f"{args.memorax_python} is no file; "
        print(missing + SETUP_HINT)
        return []
    check_rounds(args.rounds)
    seed_counts = [int(s) for s in args.seeds.split(",")]
    peer = {s: [] for s in seed_counts}
    ours = {s: [] for s in seed_counts}
    for _ in range(args.rounds):
        for seeds in seed_counts:
            peer[seeds].append(_run_memorax(args, seeds))
        for seeds, rate in _run_rtrl(args).items():
            ours[seeds].append(rate)
    rows = []
    if not args.json:
        print(f"{'streams':>8}{'memorax steps/s':>17}{'rtrl steps/s':>14}{'ratio':>8}"
              f"   (totals; medians of {args.rounds} alternating rounds)")  # fmt: skip
    for seeds in seed_counts:
        reference, total = statistics.median(peer[seeds]), statistics.median(ours[seeds])
        row = {"streams": seeds, "memorax_steps_per_s": reference, "rtrl_steps_per_s": total,
               "ratio": total / reference, "memorax_rounds": peer[seeds],
               "rtrl_rounds": ours[seeds]}  # fmt: skip
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{seeds:>8}{reference:>17,.0f}{total:>14,.0f}{row['ratio']:>7.2f}x", flush=True)
    return rows
