"""Throughput of the whole online loop: environment step, network step, estimator bookkeeping
and TD(lambda) update, as the runner compiles it (one jitted scan per chunk, seeds vmapped)."""

from __future__ import annotations

import argparse
import json

import jax

from rtrl.bench.timing import time_per_call
from rtrl.experiments import configuration
from rtrl.experiments.builders import build_prediction
from rtrl.experiments.prediction_runs import compile_chunks

DEFAULT_PRESETS = ("tp-columnar-lstm", "tp-linear-rtu", "tp-tbptt-lstm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", default=",".join(DEFAULT_PRESETS), help="comma-separated")
    parser.add_argument("--seeds", default="1,32", help="comma-separated numbers of seeds")
    parser.add_argument("--chunk", type=int, default=2000, help="steps per timed scan")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="timing budget per row")


def run(args: argparse.Namespace, overrides: dict[str, str] | None = None) -> list[dict]:
    rows = []
    if not args.json:
        print(f"{'preset':<20}{'cell':<16}{'estimator':<14}{'seeds':>6}"
              f"{'steps/s/seed':>14}{'total steps/s':>15}")  # fmt: skip
    for name in args.presets.split(","):
        config = configuration.resolve(name, overrides)
        stream, learner = build_prediction(config)
        init, run_chunk = compile_chunks(stream, learner, args.chunk)
        for seeds in [int(s) for s in args.seeds.split(",")]:
            keys = jax.random.split(jax.random.PRNGKey(0), seeds)
            state = init(keys)
            seconds = time_per_call(lambda: run_chunk(*state, keys, stream.data), args.min_seconds)
            row = {
                "preset": name,
                "cell": config["cell"],
                "units": config["units"],
                "estimator": config["estimator"],
                "seeds": seeds,
                "steps_per_s_per_seed": args.chunk / seconds,
                "total_steps_per_s": seeds * args.chunk / seconds,
                "backend": jax.default_backend(),
            }
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{name:<20}{row['cell']:<16}{row['estimator']:<14}{seeds:>6}"
                      f"{row['steps_per_s_per_seed']:>14,.0f}{row['total_steps_per_s']:>15,.0f}",
                      flush=True)  # fmt: skip
    return rows
