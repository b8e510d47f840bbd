"""Where a step of the compiled online loop goes: for a preset and seed counts, the time of the
stream alone and of the learner alone per step, and the XLA operations (thunks) executed per step
by class, counted from a profiler trace of one chunk (the profiler's own overhead per operation
inflates its durations, so they are reported only as shares). For a PPO preset, where an
iteration goes instead: collecting the rollout against the update (epochs of minibatches), the
rollout's stored bytes (the trunk's carries apart), the XLA operations of an iteration by class,
and the process's peak resident memory."""

from __future__ import annotations

import argparse
import collections
import json
import re
import resource
import tempfile
from pathlib import Path

import jax

from rtrl import compiled
from rtrl.bench.timing import time_per_call
from rtrl.experiments import configuration
from rtrl.experiments.builders import build_prediction
from rtrl.experiments.kinds import control_kind, kind_of, prediction_kind
from rtrl.experiments.prediction_runs import compile_chunks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="ccn-columnar")
    parser.add_argument("--seeds", default="1,32", help="comma-separated numbers of seeds")
    parser.add_argument("--chunk", type=int, default=2000, help="steps per timed chunk")
    parser.add_argument("--classes", type=int, default=12, help="operation classes to list")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the preset (repeatable)")  # fmt: skip


def _thunks_per_step(run, args, steps: int) -> tuple[collections.Counter, collections.Counter]:
    """(operations per step, traced nanoseconds) by operation class, over one call of ``run``."""
    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory):
            jax.block_until_ready(run(*args))
        trace = next(Path(directory).rglob("*.xplane.pb"))
        profile = ProfileData.from_file(str(trace))
    counts, durations = collections.Counter(), collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):  # the threads that execute compiled code
                continue
            for event in line.events:
                if event.name.startswith(("ThunkExecutor", "end:")):
                    continue
                kind = re.sub(r"\.\d+", "", event.name)  # fusion.12 -> fusion
                counts[kind] += 1
                durations[kind] += event.duration_ns
    return collections.Counter({k: counts[k] / steps for k in counts}), durations


def _report(args: argparse.Namespace, row: dict, headline: str) -> None:
    """One row: a JSON line with --json, else its headline and the operation classes."""
    if args.json:
        print(json.dumps(row), flush=True)
        return
    print(headline)
    print(f"  {'operation class':<40}{'per step':>9}{'share of traced time':>22}")
    for kind, entry in row["classes"].items():
        print(f"  {kind:<40}{entry['per_step']:>9.1f}{entry['share']:>21.0%}")


def _classes(counts, durations, limit: int) -> dict:
    total = sum(durations.values())
    return {k: {"per_step": counts[k], "share": durations[k] / total}
            for k, _ in durations.most_common(limit)}  # fmt: skip


def _megabytes(tree) -> float:
    return sum(leaf.nbytes for leaf in jax.tree.leaves(tree)) / 2**20


def _profile_ppo(args: argparse.Namespace, config: dict) -> list[dict]:
    """A PPO iteration of every seed at once: collection, update and the whole iteration timed
    apart (each its own compiled, vmapped program), from the same state."""
    from rtrl.experiments import builders

    env = builders.control_env(config)
    agent = builders.build_ppo(config, env)
    steps = config["rollout_length"] * config["num_envs"]  # environment steps per iteration

    def collect(state):
        return agent.collect(state.params, state.envs, state.key)

    def update(state, rollout, last_values):
        return agent.update(state.params, state.opt_state, rollout, last_values, state.key)

    init, collect, update, iteration = (compiled.jit(jax.vmap(f)) for f in
                                        (agent.init, collect, update, agent.iteration))  # fmt: skip
    rows = []
    for seeds in [int(s) for s in args.seeds.split(",")]:
        state = init(jax.random.split(jax.random.PRNGKey(0), seeds))
        _, rollout, last_values = collect(state)
        times = {
            "collect": time_per_call(lambda: collect(state), args.min_seconds),
            "update": time_per_call(lambda: update(state, rollout, last_values), args.min_seconds),
            "iteration": time_per_call(lambda: iteration(state), args.min_seconds),
        }
        counts, durations = _thunks_per_step(iteration, (state,), steps)
        row = {
            "preset": args.preset, "seeds": seeds, "steps_per_iteration": steps,
            "steps_per_s": seeds * steps / times["iteration"],
            **{f"{part}_ms": 1e3 * t for part, t in times.items()},
            "rollout_mb": _megabytes(rollout), "stored_carries_mb": _megabytes(rollout.carry),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "operations_per_step": sum(counts.values()),
            "classes": _classes(counts, durations, args.classes),
        }  # fmt: skip
        rows.append(row)
        _report(args, row,
                f"{args.preset}, {seeds} seed(s): {row['steps_per_s']:,.0f} environment steps/s; "
                f"an iteration ({steps} steps per seed) {row['iteration_ms']:.1f} ms: collect "
                f"{row['collect_ms']:.1f} ms, update {row['update_ms']:.1f} ms; rollout "
                f"{row['rollout_mb']:.1f} MB, of which stored carries "
                f"{row['stored_carries_mb']:.1f} MB; peak resident {row['peak_rss_mb']:.0f} MB; "
                f"{row['operations_per_step']:.1f} XLA operations per step")  # fmt: skip
    return rows


def run(args: argparse.Namespace) -> list[dict]:
    config = configuration.resolve(args.preset, configuration.parse_overrides(args.set))
    kind = kind_of(config)
    if kind is control_kind.KIND and config["learner"] == "ppo":
        return _profile_ppo(args, config)
    if kind is not prediction_kind.KIND:
        raise SystemExit(f"profile: {args.preset} is neither a prediction nor a PPO preset")
    stream, learner = build_prediction(config)
    init, run_chunk = compile_chunks(stream, learner, args.chunk)
    rows = []
    for seeds in [int(s) for s in args.seeds.split(",")]:
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        state = init(keys)
        whole = time_per_call(lambda: run_chunk(*state, keys, stream.data), args.min_seconds)
        stream_only = compiled.jit(lambda k, s: stream.rollout_seeds(k, s, stream.data, args.chunk))
        env_seconds = time_per_call(lambda: stream_only(keys, state[1]), args.min_seconds)
        counts, durations = _thunks_per_step(run_chunk, (*state, keys, stream.data), args.chunk)
        row = {
            "preset": args.preset, "seeds": seeds,
            "us_per_step": 1e6 * whole / args.chunk,
            "stream_us_per_step": 1e6 * env_seconds / args.chunk,
            "learner_us_per_step": 1e6 * (whole - env_seconds) / args.chunk,
            "operations_per_step": sum(counts.values()),
            "classes": _classes(counts, durations, args.classes),
        }  # fmt: skip
        rows.append(row)
        _report(args, row,
                f"{args.preset}, {seeds} seed(s): {row['us_per_step']:.2f} us per step (stream "
                f"{row['stream_us_per_step']:.2f}, learner {row['learner_us_per_step']:.2f}), "
                f"{row['operations_per_step']:.0f} XLA operations per step")  # fmt: skip
    return rows
