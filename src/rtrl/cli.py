"""The ``rtrl`` command line: list presets, run them, sweep them, plot runs.

rtrl list
rtrl run PRESET [--seeds N] [--steps N | --paper] [--set key=value ...] [--out DIR]
rtrl sweep PRESET ... --grid key=v1,v2,... [--seeds N] [--steps N | --paper] [--set ...] --out DIR
rtrl plot RUN_DIR ... [--out FILE.png] [--log]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtrl.experiments import presets


def _parse_sets(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def _parse_grid(text: str) -> tuple[str, list[str]]:
    key, sep, values = text.partition("=")
    grid = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key or not grid:
        raise ValueError(f"--grid expects key=v1,v2,..., got {text!r}")
    return key.strip(), grid


def _check_seeds(seeds: int) -> int:
    if seeds < 1:
        raise ValueError("--seeds must be at least 1")
    return seeds


def _add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """Seeds, budget and overrides: the same options for ``run`` and ``sweep``."""
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="shorthand for --set steps=N")
    parser.add_argument("--paper", action="store_true", help="the long budget (paper_steps)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")


def _budget_overrides(args) -> dict[str, str]:
    """--set pairs plus --steps; --paper is applied after resolving (it reads the preset)."""
    overrides = _parse_sets(args.set)
    if args.steps is not None and args.paper:
        raise ValueError("give either --steps or --paper, not both")
    if args.steps is not None:
        overrides["steps"] = str(args.steps)
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rtrl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="presets with one-line descriptions")
    run = sub.add_parser("run", help="run a preset (resumes if --out holds a partial run)")
    run.add_argument("preset")
    _add_budget_arguments(run)
    run.add_argument("--out", type=Path, default=None, help="run directory (runs/PRESET)")
    sweep = sub.add_parser("sweep", help="run presets over a grid of one key; best per preset")
    sweep.add_argument("presets", nargs="+")
    sweep.add_argument("--grid", required=True, metavar="KEY=V1,V2,...")
    _add_budget_arguments(sweep)
    sweep.add_argument("--out", type=Path, required=True, help="sweep directory")
    plot = sub.add_parser("plot", help="learning curves of run directories")
    plot.add_argument("runs", nargs="+", type=Path)
    plot.add_argument("--out", type=Path, default=Path("runs/plot.png"))
    plot.add_argument("--log", action="store_true", help="log-scale error axis")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            from rtrl.experiments.compute import multiply_adds

            print(f"{'preset':<22} {'MACs/step':>10}  description")
            for name in presets.preset_names():
                macs = multiply_adds(presets.resolve(name))
                print(f"{name:<22} {macs:>10,}  {presets.describe(name)}")
        elif args.command == "sweep":
            from rtrl.experiments.sweep import sweep as run_sweep

            key, values = _parse_grid(args.grid)
            best = run_sweep(args.presets, key, values, _check_seeds(args.seeds), args.out,
                             _budget_overrides(args), paper=args.paper)  # fmt: skip
            print((args.out / "best.md").read_text(), end="")
            print(f"wrote {args.out / 'sweep.csv'}, {args.out / 'best.md'}" +
                  (f", {args.out / 'best.png'}" if best else ""))  # fmt: skip
        elif args.command == "run":
            from rtrl.experiments.runner import run_prediction

            config = presets.resolve(args.preset, _budget_overrides(args))
            if args.paper:
                config["steps"] = config["paper_steps"]
            out = args.out or Path("runs") / args.preset
            summary = run_prediction(config, _check_seeds(args.seeds), out)
            final = f"{summary['final_msre_mean']:.4f} ± {summary['final_msre_stderr']:.4f}"
            print(f"final MSRE {final}, lifetime {summary['lifetime_msre_mean']:.4f} ({out})")
        else:
            from rtrl.experiments.plots import plot_runs

            print(f"wrote {plot_runs(args.runs, args.out, args.log)}")
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as error:
        message = error.args[0] if isinstance(error, KeyError) else str(error)
        print(f"rtrl {args.command}: {message}", file=sys.stderr)
        return 2 if not isinstance(error, RuntimeError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
