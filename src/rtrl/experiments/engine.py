"""One entry for every experiment: ``run(config, seeds, out)`` and ``plot(run_dirs, out)``.

``run`` picks the program by the configuration's ``kind`` (prediction, control) and stream
(recorded Atari play runs one directory per game); each drives the run loop
(``rtrl.experiments.loop``). ``plot`` reads each run directory's ``config.json`` to draw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments.results import read_record


def run(
    config: dict[str, Any],
    seeds: int,
    out: Path,
    games: list[str] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``config`` with ``seeds`` seeds into ``out``; returns the summary (for
    several Atari games, the aggregate over games)."""
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if config["kind"] == "control":
        from rtrl.experiments.control import run_control

        if games:
            raise ValueError("--games is for Atari prediction presets, not control presets")
        return run_control(config, seeds, out, progress, stop_after)
    if config["stream"] == "atari":
        from rtrl.experiments.atari import run_games

        return run_games(config, games or [config["game"]], seeds, out, progress)
    if games:
        raise ValueError(f"--games is for Atari presets; this one's stream is {config['stream']}")
    from rtrl.experiments.runner import run_prediction

    return run_prediction(config, seeds, out, progress, stop_after)


def result_line(config: dict[str, Any], summary: dict[str, Any], out: Path) -> str:
    """The headline figure of a finished run, for the command line."""
    if config["kind"] == "control":
        return (f"final return {_figure(summary, 'final_return_mean')} ± "
                f"{_figure(summary, 'final_return_stderr')} ({out})")  # fmt: skip
    if config["stream"] == "atari":
        return (f"normalised final error over {len(summary['games'])} games: "
                f"{_figure(summary, 'normalised_final_mean')} ± "
                f"{_figure(summary, 'normalised_final_stderr')} ({out})")  # fmt: skip
    return (f"final MSRE {_figure(summary, 'final_msre_mean')} ± "
            f"{_figure(summary, 'final_msre_stderr')}, lifetime "
            f"{_figure(summary, 'lifetime_msre_mean')} ({out})")  # fmt: skip


def _figure(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    return "n/a" if value is None else f"{value:.4f}"


def plot(run_dirs: list[Path], out: Path, log_scale: bool = False, smooth: int = 1) -> str:
    """Draw runs of one kind into ``out``; returns what to print (a table for Atari games)."""
    records = [read_record(run_dir) for run_dir in run_dirs]
    kinds = {"games" if "games" in r else r["config"]["kind"] for r in records}
    if len(kinds) > 1:
        raise ValueError(f"cannot plot different kinds of run together: {sorted(kinds)}")
    kind = kinds.pop()
    if kind == "games":
        from rtrl.experiments.atari import games_table, plot_games

        return games_table(run_dirs) + f"wrote {plot_games(run_dirs, out)}\n"
    if kind == "control":
        from rtrl.experiments.control import plot_control_runs

        return f"wrote {plot_control_runs(run_dirs, out, smooth)}\n"
    from rtrl.experiments.plots import plot_runs

    return f"wrote {plot_runs(run_dirs, out, log_scale)}\n"
