"""Example: element-wise recurrent networks learning online, with exact RTRL, to predict a noisy
delayed signal. Several seeds run in one vmapped, compiled scan; Python only runs between chunks.

    python examples/delayed_signal.py --out runs/delayed-signal [--steps 20000]

Each model's run is a run directory under ``--out`` (resumable, through the run loop).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax
import numpy as np
import optax

from rtrl import cells, compiled
from rtrl.envs import delayed_signal
from rtrl.experiments.plots import new_figure, plot_mean_band, save_figure
from rtrl.experiments.results import read_seed_table, write_json
from rtrl.experiments.run_loop import Program, chunks_for, run_loop
from rtrl.gradients import columnar_rtrl
from rtrl.learners import online_regression

MODELS = {
    "linear RTU (32)": lambda: cells.linear_rtu(32, "identity"),
    "nonlinear RTU (32)": lambda: cells.nonlinear_rtu(32, "tanh"),
    "online LRU (32)": lambda: cells.online_lru(32),
    "columnar LSTM (32)": lambda: cells.columnar_lstm(32, init_scale=0.1),
    "eLSTM (32)": lambda: cells.elstm(32),
}


CHUNK = 500  # steps per compiled call and per point of the curves


def model_program(cell, env_params, step_size: float, seeds: int, key) -> Program:
    """Every seed advanced ``CHUNK`` steps per call; outputs each step's squared error."""
    learner = online_regression(columnar_rtrl(cell), optax.adam(step_size))

    def init(key):
        k_learner, k_env = jax.random.split(key)
        return learner.init(k_learner, delayed_signal.NUM_OBSERVATIONS), delayed_signal.reset(
            k_env, env_params
        )

    def run_chunk(state, key):
        def one_step(carry, step_key):
            learner_state, env_state = carry
            env_state, x, y = delayed_signal.step(step_key, env_state, env_params)
            learner_state, metrics = learner.step(learner_state, x, y)
            return (learner_state, env_state), 2.0 * metrics["loss"]  # squared error

        return jax.lax.scan(one_step, state, jax.random.split(key, CHUNK))

    init, run_chunk = compiled.jit(jax.vmap(init)), compiled.jit(jax.vmap(run_chunk))

    def run(state, index):
        state, errors = run_chunk(
            state, jax.random.split(jax.random.fold_in(key, index + 1), seeds)
        )
        return state, {"squared_error": errors}

    return Program(lambda: init(jax.random.split(key, seeds)), run, CHUNK)


class MeanErrorRecorder:
    """One row per seed and chunk: the mean squared error of the chunk's steps."""

    metrics_file = "curve.csv"
    header = ["seed", "step", "mse"]
    watched = "squared_error"

    def initial(self):
        return ()

    def record(self, carry, index, outputs):
        means = outputs["squared_error"].mean(axis=1)
        return carry, [[s, (index + 1) * CHUNK, f"{m:.6g}"] for s, m in enumerate(means)]

    def finish(self, carry, chunks):
        return []

    def summary(self, out: Path) -> dict:
        return {}


def run(out: Path, steps: int, seeds: int, delay: int, noise: float, step_size: float, seed: int):
    """Run every model (each a resumable run directory under ``out``), then compare them."""
    num_chunks = chunks_for(steps, CHUNK, exact=False)
    env_params = delayed_signal.DelayedSignalParams(delay=delay, noise=noise)
    curves: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}  # seconds per chunk, compilation included
    for model_index, (name, make_cell) in enumerate(MODELS.items()):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), model_index)
        program = model_program(make_cell(), env_params, step_size, seeds, key)
        record = {"config": {"model": name, "steps": num_chunks * CHUNK, "delay": delay,
                             "noise": noise, "step_size": step_size, "seed": seed},
                  "seeds": seeds}  # fmt: skip
        run_dir = out / name.split(" (")[0].replace(" ", "-").lower()
        started = time.perf_counter()
        run_loop(program, MeanErrorRecorder(), run_dir, record, num_chunks)
        timings[name] = (time.perf_counter() - started) / num_chunks
        curves[name] = read_seed_table(run_dir / MeanErrorRecorder.metrics_file, "mse")[1]

    summary = summarise(curves, timings, CHUNK, seeds, noise)
    write_outputs(out, curves, summary, CHUNK, noise)
    print_table(summary, noise)
    print(f"\nwrote {out / 'curves.csv'}, {out / 'summary.json'} and {out / 'demo.png'}")
    return summary


def summarise(curves, timings, chunk, seeds, noise):
    summary = {"noise_floor": noise**2, "memoryless_floor": 1.0 + noise**2, "models": {}}
    for name, curve in curves.items():
        tail = curve[:, -max(1, curve.shape[1] // 10) :].mean(axis=1)  # last 10% per seed
        summary["models"][name] = {
            "final_mse_mean": float(tail.mean()),
            "final_mse_stderr": float(tail.std(ddof=1) / np.sqrt(seeds)) if seeds > 1 else 0.0,
            "first_bin_mse": float(curve[:, 0].mean()),
            "steps_per_s_per_seed": chunk / timings[name],
        }
    return summary


def print_table(summary, noise):
    print(f"\n{'model':<22}{'final MSE':>16}{'first-bin MSE':>15}{'steps/s/seed':>14}")
    for name, row in summary["models"].items():
        final = f"{row['final_mse_mean']:.4f} ± {row['final_mse_stderr']:.4f}"
        print(
            f"{name:<22}{final:>16}{row['first_bin_mse']:>15.4f}{row['steps_per_s_per_seed']:>14,.0f}"
        )
    print(f"noise floor {noise**2:.4f}; best memoryless predictor {1 + noise**2:.4f}")


def write_outputs(out: Path, curves, summary, chunk, noise):
    with open(out / "curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "seed", "step", "mse"])
        for name, curve in curves.items():
            for s, row in enumerate(curve):
                for b, value in enumerate(row):
                    writer.writerow([name, s, (b + 1) * chunk, f"{value:.6g}"])
    write_json(out / "summary.json", summary)

    fig, ax = new_figure()
    for name, curve in curves.items():
        plot_mean_band(ax, (np.arange(curve.shape[1]) + 1) * chunk, np.asarray(curve), name)
    ax.axhline(1 + noise**2, color="gray", ls="--", lw=1, label="best without memory")
    ax.axhline(noise**2, color="black", ls=":", lw=1, label="noise floor")
    ax.set_yscale("log")
    ax.set_xlabel("online steps")
    ax.set_ylabel(f"squared error (mean of {chunk}-step bins)")
    ax.set_title("Online prediction of a delayed signal, exact RTRL")
    ax.legend(fontsize=8)
    save_figure(fig, out / "demo.png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/delayed-signal"))
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--delay", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--step-size", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("steps", "seeds", "delay"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.step_size <= 0:
        parser.error("--step-size must be positive")
    run(args.out, args.steps, args.seeds, args.delay, args.noise, args.step_size, args.seed)


if __name__ == "__main__":
    main()
