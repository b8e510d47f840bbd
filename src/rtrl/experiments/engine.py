"""One entry for every experiment: ``run(config, seeds, out)`` and ``plot(run_dirs, out)``.

``run`` picks the program by the configuration's ``kind`` (prediction, control, alignment, copy) and
stream (recorded Atari play runs one directory per game); prediction and control drive the run
loop (``rtrl.experiments.loop``), the gradient-alignment test-bed is one batched computation.
``finished`` reads back the summary of a run directory that already holds the run, and ``scores``
reduces a summary to the figures studies compare. ``plot`` reads each run directory's
``config.json`` to draw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    if config["kind"] != "prediction" and games:
        raise ValueError(f"--games is for Atari prediction presets, not {config['kind']} presets")
    if config["kind"] == "control":
        from rtrl.experiments.control import run_control

        return run_control(config, seeds, out, progress, stop_after)
    if config["kind"] == "alignment":
        from rtrl.experiments.gradient_alignment import run_alignment

        return run_alignment(config, seeds, out)
    if config["kind"] == "copy":
        from rtrl.experiments.copy_task import run_copy

        return run_copy(config, seeds, out, progress, stop_after)
    if config["stream"] == "atari":
        from rtrl.experiments.atari import run_games

        return run_games(config, games or [config["game"]], seeds, out, progress)
    if games:
        raise ValueError(f"--games is for Atari presets; this one's stream is {config['stream']}")
    from rtrl.experiments.runner import run_prediction

    return run_prediction(config, seeds, out, progress, stop_after)


def finished(
    config: dict[str, Any], seeds: int, out: Path, games: list[str] | None = None
) -> dict[str, Any] | None:
    """The summary of the finished (complete or diverged) run of ``config`` with ``seeds`` seeds
    in ``out`` (for Atari games, their aggregate), or None when it has not finished; a directory
    holding a different run is an error."""
    if config["kind"] == "prediction" and config["stream"] == "atari":
        games = games or [config["game"]]
        if not all(_finished_run({**config, "game": g}, seeds, out / g) for g in games):
            return None
        from rtrl.experiments.atari import summarise_games

        return summarise_games(out)
    return _finished_run(config, seeds, out)


def _finished_run(config: dict[str, Any], seeds: int, out: Path) -> dict[str, Any] | None:
    """``finished`` for one run directory."""
    record_path, summary_path = out / CONFIG_FILE, out / SUMMARY_FILE
    if not record_path.exists():
        return None
    record = read_json(record_path)
    if (record.get("config"), record.get("seeds")) != (config, seeds):
        from rtrl.experiments.loop import another_run

        raise another_run(out)
    summary = read_json(summary_path) if summary_path.exists() else {}
    # A diverged run would diverge again at the same step: it is finished too.
    return summary if summary.get("status") in ("complete", "diverged") else None


def scores(config: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """What studies compare runs by: ``final`` (the final-window figure), its standard error
    and ``lifetime`` for prediction (squared return error; for Atari games the normalised
    error, mean over games) and control (return); per-estimator cosines for alignment."""
    status = summary.get("status", "complete")
    if config["kind"] == "alignment":
        return {"status": status, **{k: v for k, v in summary.items() if k.startswith("cosine_")}}
    if config["kind"] == "copy":
        return {"status": status, "final": _value(summary, "final_sequence_accuracy_mean"),
                "final_stderr": _value(summary, "final_sequence_accuracy_stderr"),
                "recalled_length": _value(summary, "final_recalled_length_mean"),
                "recalled_length_stderr": _value(summary, "final_recalled_length_stderr"),
                }  # fmt: skip
    if "games" in summary:  # the aggregate of a multi-game Atari run
        final, lifetime = "normalised_final", "normalised_lifetime"
    else:
        name = "return" if config["kind"] == "control" else "msre"
        final, lifetime = f"final_{name}", f"lifetime_{name}"
    keys = {"final": f"{final}_mean", "final_stderr": f"{final}_stderr",
            "lifetime": f"{lifetime}_mean"}  # fmt: skip
    return {"status": status, **{k: _value(summary, key) for k, key in keys.items()}}


def _value(summary: dict[str, Any], key: str) -> float:
    """A figure of a summary; NaN where it has none (strict JSON writes NaN as null)."""
    value = summary.get(key)
    return float("nan") if value is None else value


def result_line(config: dict[str, Any], summary: dict[str, Any], out: Path) -> str:
    """The headline figure of a finished run, for the command line."""
    if config["kind"] == "alignment":
        cosines = scores(config, summary)
        return ("cosine with the true gradient: " + ", ".join(
            f"{k.removeprefix('cosine_')} {v:.3f}" for k, v in cosines.items()
            if k != "status") + f" ({out})")  # fmt: skip
    if config["kind"] == "control":
        return (f"final return {_figure(summary, 'final_return_mean')} ± "
                f"{_figure(summary, 'final_return_stderr')} ({out})")  # fmt: skip
    if config["kind"] == "copy":
        return (f"validation: per-sequence accuracy "
                f"{_figure(summary, 'final_sequence_accuracy_mean')}, per-bit "
                f"{_figure(summary, 'final_accuracy_mean')}; every pattern recalled up to "
                f"{summary.get('final_recalled_length_per_seed')} bits (per seed); sequences "
                f"until every one was recalled: {summary.get('sequences_to_all_recalled')} "
                f"({out})")  # fmt: skip
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
    if kind == "alignment":
        from rtrl.experiments import gradient_alignment

        return gradient_alignment.report(run_dirs, out) + f"wrote {out}\n"
    if kind == "control":
        from rtrl.experiments.control import plot_control_runs

        return f"wrote {plot_control_runs(run_dirs, out, smooth)}\n"
    if kind == "copy":
        from rtrl.experiments.copy_task import plot_copy_runs

        return f"wrote {plot_copy_runs(run_dirs, out)}\n"
    from rtrl.experiments.plots import plot_runs

    return f"wrote {plot_runs(run_dirs, out, log_scale)}\n"
