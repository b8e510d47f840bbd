"""Throughput against the number of seeds, on whatever device JAX runs on (a GPU when the
``cuda`` extra is installed and one is visible): the online CCN loop (``ccn-columnar``), PPO
with an RTRL trunk (``ppo-rtu-repeat_previous-easy``) and the copy task's 2048-unit eLSTM with
exact RTRL, each through the program its runs use, one compiled chunk timed per row.

Seeds double along ``--seeds`` until a row runs out of device memory or one chunk takes longer
than ``--max-call-seconds``; the rest of that workload's rows are then skipped with the reason.
Run it on CPU first (small ``--seeds``) to check it, then once on the GPU."""

from __future__ import annotations

import argparse
import json
import time

import jax

from rtrl.experiments import configuration
from rtrl.experiments.kinds import kind_of

# (name, preset, overrides): chunks short enough that 4096 seeds stay in minutes
WORKLOADS = {
    "ccn-columnar": ("ccn-columnar", {"chunk": "2000", "bin_size": "1000"}),
    "ppo-rtu": ("ppo-rtu-repeat_previous-easy", {}),
    "copy-elstm-2048": ("copy-elstm-rtrl",
                        {"units": "2048", "chunk": "256", "batch_size": "128"}),
}  # fmt: skip
DEFAULT_SEEDS = "1,4,16,64,256,1024,4096"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: "
                        + ", ".join(WORKLOADS))  # fmt: skip
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated, increasing")
    parser.add_argument("--max-call-seconds", type=float, default=60.0,
                        help="stop a workload's seeds once a chunk takes longer")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of every workload's preset (repeatable)")  # fmt: skip


def program_for(config: dict, seeds: int):
    """The run loop's program of a configuration whose kind runs through the loop."""
    kind = kind_of(config)
    if kind.program is None:
        raise SystemExit(f"bench gpu: no program for {kind.name} configurations")
    return kind.program(config, seeds)


def _out_of_memory(error: Exception) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def time_chunk(program) -> tuple[float, float]:
    """(seconds of the first call, compilation included; seconds of the second call)."""
    state = program.init()
    times = []
    for index in range(2):
        started = time.perf_counter()
        state, outputs = program.run_chunk(state, index)
        jax.block_until_ready((state, outputs))
        times.append(time.perf_counter() - started)
    return times[0], times[1]


def run(args: argparse.Namespace) -> list[dict]:
    device = jax.devices()[0]
    where = f"{jax.default_backend()} ({device.device_kind})"
    rows = []
    if not args.json:
        print(f"device: {where}")
        print("steps: environment steps, or for the copy task sequences")
        print(f"{'workload':<18}{'seeds':>6}{'steps/s/seed':>14}{'total steps/s':>15}"
              f"{'first call s':>14}")  # fmt: skip
    for name in filter(None, args.workloads.split(",")):
        if name not in WORKLOADS:
            raise SystemExit(f"bench gpu: unknown workload {name!r}; choose from "
                             f"{', '.join(WORKLOADS)}")  # fmt: skip
        preset, overrides = WORKLOADS[name]
        try:
            config = configuration.resolve(
                preset, {**overrides, **configuration.parse_overrides(args.set)}
            )
        except (KeyError, ValueError) as error:
            raise SystemExit(f"bench gpu: {str(error).strip(chr(34))}") from None
        for seeds in map(int, args.seeds.split(",")):
            try:
                program = program_for(config, seeds)
                first, seconds = time_chunk(program)
            except Exception as error:  # noqa: BLE001: report and go on to the next workload
                if not _out_of_memory(error):
                    raise
                print(f"{name:<18}{seeds:>6}  out of device memory; larger counts skipped")
                break
            steps = program.chunk_steps
            unit = kind_of(config).unit
            row = {"suite": "gpu", "workload": name, "preset": preset, "device": where,
                   "unit": unit, "seeds": seeds, "steps_per_s_per_seed": steps / seconds,
                   "steps_per_s_total": steps * seeds / seconds, "first_call_s": first}  # fmt: skip
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{name:<18}{seeds:>6}{row['steps_per_s_per_seed']:>14,.0f}"
                      f"{row['steps_per_s_total']:>15,.0f}{first:>14.1f}", flush=True)  # fmt: skip
            if seconds > args.max_call_seconds:
                print(f"{name:<18} one chunk took {seconds:.0f} s; larger counts skipped")
                break
    return rows
