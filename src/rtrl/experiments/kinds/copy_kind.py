"""The copy task (sequence classification, one update per batch of sequences): the fraction
of validation sequences recalled whole, higher is better, and the recalled length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments.kinds import Kind, figure, plot_best_in_one_figure, refuse_games, shown

# The keys, types and default values of a copy configuration: every preset of this kind
# is these with its own values (rtrl.experiments.presets), and --set may change any of them.
DEFAULTS: dict[str, Any] = {
    "kind": "copy",
    "max_length": 50,  # L: patterns of 1..L bits
    "cell": "elstm",
    "units": 128,
    "forget_bias": 3.0,  # eLSTM: added to the forget gate's initial bias (0: the reference's)
    "max_timescale": 0.0,  # eLSTM: forget biases spread over timescales 2..T (0: off)
    "estimator": "columnar_rtrl",  # an online estimator, or bptt (through whole sequences)
    "truncation": 10,  # T for tbptt: backpropagation within segments of T steps
    "batch_size": 128,
    "step_size": 1e-2,
    "max_grad_norm": 1.0,
    "adam_eps": 1e-8,
    "validation_size": 1000,
    "steps": 640_000,  # training sequences per seed (5,000 updates)
    "paper_steps": 5_000_000,  # 500 epochs of the reference's 10k sequences
    "chunk": 12_800,  # sequences between validations (100 updates)
    "seed": 0,
}


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


KIND = Kind(
    defaults=DEFAULTS, name="copy", run=run, scores=scores, headline=headline, plot=plot,
    figure_name=lambda config, games: "sequences recalled", second_figure="recalled_length",
    figure_slug="accuracy", unit="sequences", program=program, plot_best=plot_best_in_one_figure,
)  # fmt: skip
