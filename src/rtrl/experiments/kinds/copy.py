"""The copy task (sequence classification, one update per batch of sequences): the fraction
of validation sequences recalled whole, higher is better, and the recalled length."""

from __future__ import annotations

from pathlib import Path

from rtrl.experiments.kinds import Kind, figure, refuse_games, shown


def run(config, seeds: int, out: Path, games=None, progress=True, stop_after=None):
    refuse_games(games, KIND.name)
    from rtrl.experiments.copy_runs import run_copy

    return run_copy(config, seeds, out, progress, stop_after)


def scores(config, summary):
    return {"status": summary.get("status", "complete"),
            "final": figure(summary, "final_sequence_accuracy_mean"),
            "final_stderr": figure(summary, "final_sequence_accuracy_stderr"),
            "recalled_length": figure(summary, "final_recalled_length_mean"),
            "recalled_length_stderr": figure(summary, "final_recalled_length_stderr"),
            }  # fmt: skip


def headline(config, summary, out: Path) -> str:
    return (f"validation: per-sequence accuracy {shown(summary, 'final_sequence_accuracy_mean')}, "
            f"per-bit {shown(summary, 'final_accuracy_mean')}; every pattern recalled up to "
            f"{summary.get('final_recalled_length_per_seed')} bits (per seed); sequences "
            f"until every one was recalled: {summary.get('sequences_to_all_recalled')} "
            f"({out})")  # fmt: skip


def plot(run_dirs: list[Path], out: Path, log_scale: bool = False, smooth: int = 1) -> str:
    from rtrl.experiments.copy_runs import plot_copy_runs

    return f"wrote {plot_copy_runs(run_dirs, out)}\n"


def program(config, seeds: int):
    from rtrl.experiments.copy_runs import copy_program

    return copy_program(config, seeds)


def plot_best(best, out: Path, column) -> None:
    from rtrl.experiments.plots import plot_runs

    plot_runs([run_dir for _, run_dir in best], out / "best.png", log_scale=True)


KIND = Kind(
    name="copy", run=run, scores=scores, headline=headline, plot=plot,
    figure_name=lambda config, games: "sequences recalled", second_figure="recalled_length",
    figure_slug="accuracy", unit="sequences", program=program, plot_best=plot_best,
)  # fmt: skip
