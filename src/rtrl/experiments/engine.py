"""One entry for every experiment: ``run(config, seeds, out)`` and ``plot(run_dirs, out)``.

Each is a lookup of the configuration's kind (``rtrl.experiments.kinds``: prediction, control,
copy, alignment), which owns its program, scores, headline and plot. ``finished`` reads back the
summary of a run directory that already holds the run, and ``scores`` reduces a summary to the
figures studies compare. ``plot`` reads each run directory's ``config.json`` to draw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments.kinds import kind_of
from rtrl.experiments.results import CONFIG_FILE, SUMMARY_FILE, read_json, read_record


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
    return kind_of(config).run(config, seeds, out, games, progress, stop_after)


def finished(
    config: dict[str, Any], seeds: int, out: Path, games: list[str] | None = None
) -> dict[str, Any] | None:
    """The summary of the finished (complete or diverged) run of ``config`` with ``seeds`` seeds
    in ``out`` (for Atari games, their aggregate), or None when it has not finished; a directory
    holding a different run is an error."""
    if kind_of(config).takes_games(config):
        games = games or [config["game"]]
        if not all(_finished_run({**config, "game": g}, seeds, out / g) for g in games):
            return None
        from rtrl.experiments.atari_runs import summarise_games

        return summarise_games(out)
    return _finished_run(config, seeds, out)


def _finished_run(config: dict[str, Any], seeds: int, out: Path) -> dict[str, Any] | None:
    """``finished`` for one run directory."""
    record_path, summary_path = out / CONFIG_FILE, out / SUMMARY_FILE
    if not record_path.exists():
        return None
    record = read_json(record_path)
    if (record.get("config"), record.get("seeds")) != (config, seeds):
        from rtrl.experiments.run_loop import another_run

        raise another_run(out)
    summary = read_json(summary_path) if summary_path.exists() else {}
    # A diverged run would diverge again at the same step: it is finished too.
    return summary if summary.get("status") in ("complete", "diverged") else None


def scores(config: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """What studies compare runs by: ``status``, ``final`` (the final-window figure), its
    standard error and a second figure (the kind's: ``lifetime``, ``recalled_length``), or the
    kind's own figures (per-estimator cosines for alignment)."""
    return kind_of(config).scores(config, summary)


def result_line(config: dict[str, Any], summary: dict[str, Any], out: Path) -> str:
    """The headline figure of a finished run, for the command line."""
    return kind_of(config).headline(config, summary, out)


def plot(run_dirs: list[Path], out: Path, log_scale: bool = False, smooth: int = 1) -> str:
    """Draw runs of one kind into ``out``; returns what to print (a table for Atari games)."""
    kinds = {kind_of(read_record(run_dir)["config"]) for run_dir in run_dirs}
    if len(kinds) > 1:
        raise ValueError(f"cannot plot different kinds of run together: "
                         f"{sorted(k.name for k in kinds)}")  # fmt: skip
    return kinds.pop().plot(run_dirs, out, log_scale, smooth)
