"""The demo: what exact RTRL learns that truncated BPTT cannot. The CCN paper's trace-patterning
stream (a one-step 3-of-6 pattern; on half of the patterns the US follows 24-36 steps later), a
columnar LSTM with exact RTRL against a dense LSTM with T-BPTT of about the same per-step compute,
whose 2-step truncation cannot reach back from the US to the pattern. Several seeds each, with a
progress bar, a printed table and a plot with the best constant predictor as a reference line.

    python -m rtrl.experiments.demo --out runs/demo [--steps 1000000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

from rtrl import cells
from rtrl.experiments import configuration, engine
from rtrl.experiments.builders import build_prediction
from rtrl.experiments.kinds import kind_of
from rtrl.experiments.plots import plot_runs
from rtrl.experiments.prediction_runs import constant_predictor_error

# label -> (preset, overrides): the CCN study's presets as they are (rtrl list; step size 1e-3,
# which did best for both in a 1M-step check of 3e-4 ... 1e-2); multiply-adds per step 3,535
# and 4,095.
RUNS = {
    "columnar LSTM 7:7, exact RTRL": ("ccn-columnar", {}),
    "dense LSTM 13 units, T-BPTT T=2": ("ccn-tbptt-13-2", {}),
}
CONSTANT = "best constant predictor"


def run(out: Path, steps: int, seeds: int) -> dict[str, dict]:
    schedule = {"steps": str(steps), "chunk": "50000", "bin_size": "10000",
                "final_window": "100000"}  # fmt: skip
    results = {}
    for label, (preset, overrides) in RUNS.items():
        config = configuration.resolve(preset, {**schedule, **overrides})
        print(
            f"{label}: rtrl run {preset} --seeds {seeds} "
            + " ".join(f"--set {k}={v}" for k, v in {**schedule, **overrides}.items())
        )
        summary = engine.run(config, seeds, out / preset)
        stream, learner = build_prediction(config)
        params = learner.init(jax.random.PRNGKey(0), stream.num_observations).params["cell"]
        results[label] = {
            **summary,
            "recurrent_params": cells.count_params(cells.recurrent_params(params)),
            "multiply_adds": kind_of(config).multiply_adds(config),
        }
    # The level any learner reaches by predicting the mean return (an independent stream).
    constant = constant_predictor_error(stream, 1_000_000, jax.random.PRNGKey(12345))
    print(f"\n{'model':<34}{'params':>8}{'mult-adds':>11}{'final MSRE':>20}{'lifetime':>10}")
    for label, row in results.items():
        final = f"{row['final_msre_mean']:.4f} ± {row['final_msre_stderr']:.4f}"
        print(f"{label:<34}{row['recurrent_params']:>8}{row['multiply_adds']:>11,}{final:>20}"
              f"{row['lifetime_msre_mean']:>10.4f}")  # fmt: skip
    print(f"{CONSTANT:<53}{constant:>20.4f}")
    print(f"(trace patterning, ISI 24-36, {seeds} seeds, {steps:,} steps; "
          "final = last 100k steps)")  # fmt: skip
    plot = plot_runs([out / preset for preset, _ in RUNS.values()], out / "demo.png",
                     references={CONSTANT: constant})  # fmt: skip
    (out / "demo.json").write_text(json.dumps({**results, CONSTANT: constant}, indent=2))
    print(f"\nwrote {plot} and {out / 'demo.json'}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 200_000 or args.steps % 50_000:
        parser.error("need --seeds >= 1 and --steps >= 200000, a multiple of 50000 (the final "
                     "window is 100k steps)")  # fmt: skip
    run(args.out, args.steps, args.seeds)


if __name__ == "__main__":
    main()
