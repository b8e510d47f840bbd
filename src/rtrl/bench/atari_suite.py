"""Atari prediction benchmark throughput: replaying a recorded stream in the ALE (frames/s,
emulation + grayscale screen + 16x16 resize, no cache) and learning from the cached stream
(steps/s per seed, as the runner compiles it). Needs the recorded streams ($RTRL_DATA or
--data) and ale-py."""

from __future__ import annotations

import argparse
import json
import os
import time

from rtrl.bench import loop_suite
from rtrl.envs import atari

DEFAULT_PRESETS = ("atari-columnar", "atari-ccn", "atari-constructive", "atari-tbptt-6-8",
                   "atari-rtu", "atari-elstm")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--data", default=None, metavar="DIR")
    parser.add_argument("--frames", type=int, default=50_000, help="frames replayed for timing")
    parser.add_argument("--presets", default=",".join(DEFAULT_PRESETS), help="comma-separated")
    parser.add_argument("--seeds", default="1,16", help="comma-separated numbers of seeds")
    parser.add_argument("--chunk", type=int, default=2000, help="steps per timed scan")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timing budget per row")


def run(args: argparse.Namespace) -> list[dict]:
    if args.data:
        os.environ["RTRL_DATA"] = args.data
    data = atari.read_stream_file(args.game, atari.data_directory())[: args.frames]
    started = time.perf_counter()
    atari.replay(args.game, data)
    seconds = time.perf_counter() - started
    row = {"suite": "atari-replay", "game": args.game, "frames": len(data),
           "frames_per_s": len(data) / seconds}  # fmt: skip
    if args.json:
        print(json.dumps(row), flush=True)
    else:
        rate = row["frames_per_s"]
        print(f"replay {args.game}: {len(data):,} frames in {seconds:.1f} s = {rate:,.0f} "
              "frames/s (ALE + grayscale + resize)\n", flush=True)  # fmt: skip
    atari.load_recording(args.game, progress=not args.json)  # fills the cache once
    # Only the timed chunk matters; a short budget lets short recordings build too.
    return [row] + loop_suite.run(args, {"game": args.game, "steps": str(2 * args.chunk)})
