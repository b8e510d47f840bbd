"""Control (PPO, IMPALA/R2AC, the real-time actor-critic): the return of finished episodes,
higher is better."""

from __future__ import annotations

from pathlib import Path

from rtrl.experiments.kinds import Kind, figure, refuse_games, shown


def run(config, seeds: int, out: Path, games=None, progress=True, stop_after=None):
    refuse_games(games, KIND.name)
    from rtrl.experiments.control_runs import run_control

    return run_control(config, seeds, out, progress, stop_after)


def scores(config, summary):
    return {"status": summary.get("status", "complete"),
            "final": figure(summary, "final_return_mean"),
            "final_stderr": figure(summary, "final_return_stderr"),
            "lifetime": figure(summary, "lifetime_return_mean")}  # fmt: skip


def headline(config, summary, out: Path) -> str:
    return (f"final return {shown(summary, 'final_return_mean')} ± "
            f"{shown(summary, 'final_return_stderr')} ({out})")  # fmt: skip


def plot(run_dirs: list[Path], out: Path, log_scale: bool = False, smooth: int = 1) -> str:
    from rtrl.experiments.control_runs import plot_control_runs

    return f"wrote {plot_control_runs(run_dirs, out, smooth)}\n"


def program(config, seeds: int):
    from rtrl.experiments.control_runs import build_program

    return build_program(config, seeds)


def plot_best(best, out: Path, column) -> None:
    """One figure per task where the study has a column (tasks): ``returns-TASK.png``
    (``atari:Pong``: ``returns-atari-Pong.png``); else ``best.png``."""
    from rtrl.experiments.control_runs import plot_control_runs

    panels: dict[str, list[Path]] = {}
    for config, run_dir in best:
        name = f"returns-{str(config[column]).replace(':', '-')}.png" if column else "best.png"
        panels.setdefault(name, []).append(run_dir)
    for name, run_dirs in panels.items():
        plot_control_runs(run_dirs, out / name, smooth=3)


KIND = Kind(
    name="control", run=run, scores=scores, headline=headline, plot=plot,
    figure_name=lambda config, games: "final return", figure_slug="return", program=program,
    plot_best=plot_best,
)  # fmt: skip
