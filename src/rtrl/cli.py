"""The ``rtrl`` command line: list presets, run them, plot runs.

rtrl list
rtrl run PRESET [--seeds N] [--steps N] [--set key=value ...] [--out DIR]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rtrl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="presets with one-line descriptions")
    run = sub.add_parser("run", help="run a preset (resumes if --out holds a partial run)")
    run.add_argument("preset")
    run.add_argument("--seeds", type=int, default=3)
    run.add_argument("--steps", type=int, default=None, help="shorthand for --set steps=N")
    run.add_argument("--paper", action="store_true", help="the preset's long budget (paper_steps)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--out", type=Path, default=None, help="run directory (runs/PRESET)")
    plot = sub.add_parser("plot", help="learning curves of run directories")
    plot.add_argument("runs", nargs="+", type=Path)
    plot.add_argument("--out", type=Path, default=Path("runs/plot.png"))
    plot.add_argument("--log", action="store_true", help="log-scale error axis")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            for name in presets.preset_names():
                print(f"{name:<22} {presets.describe(name)}")
        elif args.command == "run":
            from rtrl.experiments.runner import run_prediction

            if args.seeds < 1:
                raise ValueError("--seeds must be at least 1")
            overrides = _parse_sets(args.set)
            if args.steps is not None and args.paper:
                raise ValueError("give either --steps or --paper, not both")
            if args.steps is not None:
                overrides["steps"] = str(args.steps)
            config = presets.resolve(args.preset, overrides)
            if args.paper:
                config["steps"] = config["paper_steps"]
            out = args.out or Path("runs") / args.preset
            summary = run_prediction(config, args.seeds, out)
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
