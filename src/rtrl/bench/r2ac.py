"""R2AC on EnvPool (Atari, ProcGen): environment frames/s and learner frames/s on 1 and 2 cores.

Per preset and number of cores, in a process of its own pinned to that many cores (EnvPool's
threads and XLA's see only those), one seed of ``num_envs`` environments:
- environment: EnvPool's batch alone, random actions;
- actors: the agents' jitted step of the batch (policy and trunk, no environment);
- learner: one update on a collected segment (re-run, V-trace loss, gradient, RMSProp);
- loop: what a run does, segments of collecting then updating (``HostActors.train``;
  ``--set behaviour_lag=1``: the actors trail the learner by one update).
Frames count emulator frames (Atari: 4 per agent step, its frame skip; ProcGen: 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from rtrl.bench.timing import time_per_call
from rtrl.experiments import configuration

DEFAULT_PRESETS = ("r2ac-elstm-atari", "r2ac-lstm-tbptt-atari", "r2ac-ff-atari")
PARTS = ("environment", "actors", "learner", "loop")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", default=",".join(DEFAULT_PRESETS), help="comma-separated")
    parser.add_argument("--cores", default="1,2", help="comma-separated numbers of cores")
    parser.add_argument("--segments", type=int, default=1, help="segments timed in the loop")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="timing budget per part")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of every preset, e.g. env=procgen:maze")  # fmt: skip
    parser.add_argument("--pinned", default="", help=argparse.SUPPRESS)  # a child's CPUs: 0,1


def _text(row: dict) -> str:
    rates = "  ".join(f"{part} {row[f'{part}_frames_per_s']:>8,.0f}" for part in PARTS)
    return f"{row['preset']:<24} {row['env']:<16} {row['cores']} core(s): frames/s  {rates}"


def run(args: argparse.Namespace) -> list[dict]:
    if args.pinned:  # a child: pin its threads, and the ones JAX and EnvPool will start
        cpus = set(map(int, args.pinned.split(",")))
        for thread in os.listdir("/proc/self/task"):  # threads started at import (NumPy's)
            os.sched_setaffinity(int(thread), cpus)
        return [_measure(args, name) for name in filter(None, args.presets.split(","))]
    rows = []
    available = sorted(os.sched_getaffinity(0))
    for cores in map(int, args.cores.split(",")):
        if cores > len(available):
            print(f"skipping {cores} cores: this process may use {len(available)}", flush=True)
            continue
        cpus = ",".join(map(str, available[:cores]))
        command = [sys.executable, "-m", "rtrl.bench", "r2ac", "--json", "--pinned", cpus,
                   "--presets", args.presets, "--segments", str(args.segments),
                   "--min-seconds", str(args.min_seconds),
                   *(f"--set={item}" for item in args.set)]  # fmt: skip
        child = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        for line in child.stdout.splitlines():
            row = json.loads(line)
            rows.append(row)
            print(json.dumps(row) if args.json else _text(row), flush=True)
    return rows


def _measure(args: argparse.Namespace, name: str) -> dict:
    from rtrl.experiments.control_runs import envpool_actors

    config = configuration.resolve(name, configuration.parse_overrides(args.set))
    cores = len(os.sched_getaffinity(0))
    actors = envpool_actors(config, seeds=1, num_threads=cores)
    envs, num_envs, length = actors.envs, config["num_envs"], config["segment_length"]
    learner, state = actors.init()
    params, opt_state, _ = learner
    rng = np.random.default_rng(0)

    def environment():
        return envs.step(rng.integers(envs.action_space.n, size=num_envs))

    def act():
        return actors.act(params, *state)

    segment, state = actors.collect(params, state)  # compiles the actors

    def update():
        return actors.update(params, opt_state, segment)

    seconds = {
        "environment": time_per_call(environment, args.min_seconds) / num_envs,
        "actors": time_per_call(act, args.min_seconds) / num_envs,
        "learner": time_per_call(update, args.min_seconds, max_calls=20) / (num_envs * length),
    }
    start = time.perf_counter()
    actors.train(learner, state, args.segments)
    seconds["loop"] = (time.perf_counter() - start) / (args.segments * num_envs * length)
    row = {"suite": "r2ac", "preset": name, "env": config["env"], "cores": cores,
           "num_envs": num_envs, "segment_length": length, "torso": config["torso"],
           "behaviour_lag": config["behaviour_lag"],
           "frames_per_step": envs.frames_per_step}  # fmt: skip
    for part, per_step in seconds.items():
        row[f"{part}_steps_per_s"] = 1.0 / per_step
        row[f"{part}_frames_per_s"] = envs.frames_per_step / per_step
    envs.close()
    print(json.dumps(row), flush=True)
    return row
