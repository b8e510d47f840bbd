"""The ``rtrl`` command line: list presets, run them, sweep them, run studies, plot runs.

rtrl list
rtrl run PRESET [--seeds N] [--steps N | --paper] [--set key=value ...] [--out DIR]
         [--games Pong,Breakout | all] [--data DIR]          (Atari presets)
rtrl sweep PRESET ... --grid key=v1,v2,... [--seeds N] [--steps N | --paper] [--set ...] --out DIR
           [--games Pong,Breakout | all] [--data DIR]        (Atari presets)   [EXECUTOR]
rtrl study list
rtrl study run NAME [--paper] [--seeds N] [--steps N] [--set ...] [--out DIR] [--games ...]
                    [EXECUTOR]
    EXECUTOR: [--backend local|ray] [--workers N] (local) [--address ADDR] (ray)
              [--cpus-per-run C] [--gpus-per-run G] (ray)
rtrl plot RUN_DIR ... [--out FILE.png] [--log]   (multi-game Atari runs: per-game bars + table;
                                                  control runs: returns, [--smooth N])
rtrl data check DIR [--length N]                  (validate recorded Atari streams)
rtrl data prepare --games G1,G2 | all [--data DIR] [--frame-size N] [--resize area|bilinear]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rtrl.experiments import configuration
from rtrl.experiments.run_logging import logging_to, parse_loggers


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
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="recorded Atari streams (default: $RTRL_DATA or cache)")  # fmt: skip
    parser.add_argument("--log", default=None, metavar="tensorboard,wandb",
                        help="also write the metrics to TensorBoard or Weights & Biases "
                             "(offline) as each chunk finishes")  # fmt: skip


def _budget_overrides(args) -> dict[str, str]:
    return configuration.budget_overrides(args.set, args.steps, args.paper)


def _add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: parallel processes on this machine; ray: a Ray cluster",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="local: runs at a time (default: one per core)"
    )
    parser.add_argument(
        "--address", default=None, help="ray: the cluster (auto, HOST:PORT or ray://HOST:10001)"
    )
    parser.add_argument("--cpus-per-run", type=float, default=1, help="ray: CPUs per run")
    parser.add_argument("--gpus-per-run", type=float, default=0, help="ray: GPUs per run")


def _executor(args):
    from rtrl.experiments.executors import make_executor

    return make_executor(args.backend, args.address, args.workers, args.cpus_per_run,
                         args.gpus_per_run)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rtrl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="presets with one-line descriptions")
    run = sub.add_parser("run", help="run a preset (resumes if --out holds a partial run)")
    run.add_argument("preset")
    _add_budget_arguments(run)
    run.add_argument("--out", type=Path, default=None, help="run directory (runs/PRESET)")
    run.add_argument("--games", default=None, help="Atari presets: Pong,Breakout,... or all")
    sweep = sub.add_parser("sweep", help="run presets over a grid of one key; best per preset")
    sweep.add_argument("presets", nargs="+")
    sweep.add_argument("--grid", required=True, metavar="KEY=V1,V2,...")
    _add_budget_arguments(sweep)
    sweep.add_argument("--out", type=Path, required=True, help="sweep directory")
    sweep.add_argument("--games", default=None, help="Atari presets: Pong,Breakout,... or all")
    _add_executor_arguments(sweep)
    study = sub.add_parser("study", help="named grids of runs that reproduce a paper's figure")
    study_sub = study.add_subparsers(dest="action", required=True)
    study_sub.add_parser("list", help="studies, with the size of their default and paper grids")
    study_run = study_sub.add_parser("run", help="run (or resume) a study and report it")
    study_run.add_argument("name")
    _add_budget_arguments(study_run)
    study_run.set_defaults(seeds=None)
    study_run.add_argument("--out", type=Path, default=None, help="study directory")
    study_run.add_argument("--games", default=None, help="Atari studies: Pong,Breakout or all")
    _add_executor_arguments(study_run)
    plot = sub.add_parser("plot", help="learning curves of run directories")
    plot.add_argument("runs", nargs="+", type=Path)
    plot.add_argument("--out", type=Path, default=Path("runs/plot.png"))
    plot.add_argument("--log", action="store_true", help="log-scale error axis")
    plot.add_argument("--smooth", type=int, default=1, help="control runs: moving-average points")
    data = sub.add_parser("data", help="recorded Atari streams: validate, replay into the cache")
    data_sub = data.add_subparsers(dest="action", required=True)
    check = data_sub.add_parser("check", help="validate every recorded stream in DIR")
    check.add_argument("directory", type=Path)
    check.add_argument("--length", type=int, default=None,
                       help="steps per file (default: the benchmark's; 0: any)")  # fmt: skip
    prepare = data_sub.add_parser("prepare", help="replay games into the stream cache")
    prepare.add_argument("--games", required=True, help="Pong,Breakout,... or all")
    prepare.add_argument("--data", default=None, metavar="DIR")
    prepare.add_argument("--frame-size", type=int, default=16)
    prepare.add_argument("--resize", choices=("area", "bilinear"), default="area")
    args = parser.parse_args(argv)
    if getattr(args, "data", None):  # the streams' loader reads it wherever it runs
        os.environ["RTRL_DATA"] = str(args.data)

    try:
        if args.command == "list":
            _list_presets()
        elif args.command == "sweep":
            from rtrl.experiments.sweep import sweep as run_sweep

            key, values = _parse_grid(args.grid)
            run_sweep(args.presets, key, values, _check_seeds(args.seeds), args.out,
                      _budget_overrides(args), paper=args.paper,
                      games=configuration.games(args.games), executor=_executor(args),
                      log=parse_loggers(args.log))  # fmt: skip
            _print_report(args.out)
        elif args.command == "study":
            return _study_command(args)
        elif args.command == "run":
            from rtrl.experiments import engine

            config = configuration.resolve(args.preset, _budget_overrides(args), paper=args.paper)
            out = args.out or Path("runs") / args.preset
            with logging_to(parse_loggers(args.log)):
                summary = engine.run(config, args.seeds, out,
                                     games=configuration.games(args.games))  # fmt: skip
            if "games" in summary:
                print((out / "games.csv").read_text(), end="")
            print(engine.result_line(config, summary, out))
        elif args.command == "data":
            return _data_command(args)
        else:
            from rtrl.experiments import engine

            print(engine.plot(args.runs, args.out, args.log, args.smooth), end="")
    except KeyboardInterrupt:  # between the loop's own handling and ours
        print(f"rtrl {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (rtrl list | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (KeyError, ValueError, FileNotFoundError, RuntimeError, ImportError) as error:
        from rtrl.experiments.run_loop import RunInterrupted

        message = error.args[0] if isinstance(error, KeyError) else str(error)
        print(f"rtrl {args.command}: {message}", file=sys.stderr)
        if isinstance(error, RunInterrupted):
            return 130
        return 2 if not isinstance(error, RuntimeError) else 1
    return 0


def _print_report(out: Path) -> None:
    """The best table a study or sweep wrote, and the files it wrote."""
    from rtrl.experiments.studies import BEST_FILE

    print((out / BEST_FILE).read_text(), end="")
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    print(f"wrote {', '.join(written)} in {out}")


def _study_command(args) -> int:
    from rtrl.experiments import studies, study_catalogue

    if args.action == "list":
        _list_studies()
        return 0
    if args.name not in study_catalogue.STUDIES:
        raise KeyError(f"unknown study {args.name!r}; valid studies: "
                       f"{', '.join(study_catalogue.STUDIES)} (rtrl study list)")  # fmt: skip
    out = args.out or Path("runs") / "studies" / (args.name + ("-paper" if args.paper else ""))
    seeds = None if args.seeds is None else _check_seeds(args.seeds)
    studies.run_study(study_catalogue.STUDIES[args.name], out, _executor(args), paper=args.paper,
                      seeds=seeds, overrides=_budget_overrides(args),
                      games=configuration.games(args.games),
                      log=parse_loggers(args.log))  # fmt: skip
    _print_report(out)
    return 0


def _list_studies() -> None:
    """One line per study: the size of its default grid and of the paper's."""
    from rtrl.experiments import studies, study_catalogue

    print(f"{'study':<22} {'runs':>5} {'stream-steps':>12} {'paper runs':>10} "
          f"{'paper stream-steps':>18} {'paper multiply-adds':>19}  description")  # fmt: skip
    for name, study in study_catalogue.STUDIES.items():
        size = studies.describe(study)
        default, paper = size["default"], size["paper"]
        macs = f"{paper['multiply_adds']:.2e}" if paper["multiply_adds"] else "-"
        print(f"{name:<22} {default['runs']:>5} {default['stream_steps']:>12.2e} "
              f"{paper['runs']:>10} {paper['stream_steps']:>18.2e} {macs:>19}  "
              f"{study.description}")  # fmt: skip


def _list_presets() -> None:
    """One line per preset, columns aligned to the longest name."""
    from rtrl.experiments.kinds import kind_of

    names = configuration.preset_names()
    width = max(len("preset"), *(len(name) for name in names))
    print(f"{'preset':<{width}}  {'MACs/step':>10}  description")
    for name in names:
        config = configuration.resolve(name)
        count = kind_of(config).multiply_adds
        macs = f"{count(config):,}" if count else "-"
        print(f"{name:<{width}}  {macs:>10}  {configuration.describe(name)}")


def _data_command(args) -> int:
    from rtrl.envs import atari

    if args.action == "check":
        length = atari.RECORDED_LENGTH if args.length is None else (args.length or None)
        report = atari.check_directory(args.directory, length)
        bad = {name: problems for name, problems in report.items() if problems}
        for name, problems in bad.items():
            print(f"{args.directory / name}:")
            for problem in problems:
                print(f"  {problem}")
        missing = [g for g in atari.GAMES if atari.file_name(g) not in report]
        print(f"{len(report) - len(bad)} of {len(report)} files valid"
              + (f"; {len(missing)} benchmark games have no file" if missing else ""))  # fmt: skip
        if bad:
            print("Replace the files listed above with the originals.", file=sys.stderr)
        return 1 if bad or not report else 0
    import time

    for game in atari.parse_games(args.games):
        started = time.perf_counter()
        recording = atari.load_recording(
            game, frame_size=args.frame_size, progress=True, resize=args.resize
        )
        seconds = time.perf_counter() - started
        scores = recording.episode_returns()
        mean_score = f"{scores.mean():.1f}" if len(scores) else "-"
        print(f"{game}: {len(recording.frames):,} frames in {seconds:.1f} s "
              f"({len(recording.frames) / seconds:,.0f} frames/s, cached or replayed); "
              f"{len(scores)} complete episodes, mean score {mean_score}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
