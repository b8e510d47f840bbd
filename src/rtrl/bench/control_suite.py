"""Online control throughput: environment steps/s including learning, for the real-time
actor-critic and PPO with RTRL traces, with 1 and 8 parallel seeds (vmapped in one program);
and the raw step rate of Brax HalfCheetah per backend (random actions, 8 environments)."""

from __future__ import annotations

import argparse
import json

import jax

from rtrl import compiled
from rtrl.bench.timing import time_per_call
from rtrl.envs.mujoco import brax_env
from rtrl.experiments import configuration
from rtrl.experiments.control_runs import build_program
from rtrl.spaces import random_actions

DEFAULT_PRESETS = ("ac-rtu-cartpole-p", "ppo-rtu-cartpole-p", "ac-rtu-halfcheetah-p",
                   "ppo-rtu-halfcheetah-p")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", default=",".join(DEFAULT_PRESETS), help="comma-separated")
    parser.add_argument("--seeds", default="1,8", help="comma-separated numbers of seeds")
    parser.add_argument(
        "--chunk",
        type=int,
        default=4096,
        help="environment steps per timed call (PPO: whole iterations)",
    )
    parser.add_argument(
        "--backends",
        default="spring,positional,generalized",
        help="Brax backends for the raw HalfCheetah rate ('' to skip)",
    )
    parser.add_argument("--min-seconds", type=float, default=3.0, help="timing budget per row")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of every preset (repeatable)")  # fmt: skip


def _emit(args, row: dict, text: str) -> None:
    print(json.dumps(row) if args.json else text, flush=True)


def preset_seconds(name: str, seeds: int, chunk: int, min_seconds: float,
                   overrides: dict[str, str] | None = None) -> tuple[int, float]:  # fmt: skip
    """(environment steps per seed of one compiled chunk, seconds per chunk) of a control
    preset learning with ``seeds`` seeds, after a warm-up chunk."""
    chunked = {"chunk": str(chunk), "bin_size": str(chunk)}
    program = build_program(configuration.resolve(name, {**chunked, **(overrides or {})}), seeds)
    holder = [program.init()]

    def call():
        holder[0], outputs = program.run_chunk(holder[0], 0)
        return outputs

    return program.chunk_steps, time_per_call(call, min_seconds, max_calls=50)


def run(args: argparse.Namespace) -> list[dict]:
    rows = []
    for name in filter(None, args.presets.split(",")):
        for seeds in map(int, args.seeds.split(",")):
            steps, seconds = preset_seconds(name, seeds, args.chunk, args.min_seconds,
                                            configuration.parse_overrides(args.set))  # fmt: skip
            row = {"suite": "control", "preset": name, "seeds": seeds,
                   "steps_per_s_per_seed": steps / seconds,
                   "steps_per_s_total": steps * seeds / seconds}  # fmt: skip
            rows.append(row)
            _emit(args, row, f"{name:<26} seeds {seeds:>2}: {steps / seconds:>9,.0f} steps/s "
                  f"per seed, {steps * seeds / seconds:>9,.0f} in all")  # fmt: skip
    for backend in filter(None, args.backends.split(",")):
        env = brax_env("halfcheetah", backend=backend)
        environments, length = 8, 500

        def rollout(states, key):
            def per_step(states, step_key):
                keys = jax.random.split(step_key, environments)
                actions = random_actions(step_key, env.action_space, (environments,))
                return jax.vmap(env.step)(keys, states, actions)[0], None

            return jax.lax.scan(per_step, states, jax.random.split(key, length))[0]

        states, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), environments))
        run_rollout = compiled.jit(rollout)
        seconds = time_per_call(lambda: run_rollout(states, jax.random.PRNGKey(1)),
                                args.min_seconds, max_calls=20)  # fmt: skip
        row = {"suite": "control-env", "env": "halfcheetah", "backend": backend,
               "steps_per_s_total": environments * length / seconds}  # fmt: skip
        rows.append(row)
        _emit(args, row, f"Brax halfcheetah {backend:<12} {row['steps_per_s_total']:>9,.0f} "
              f"steps/s ({environments} environments, random actions)")  # fmt: skip
    return rows
