"""The gradient-alignment test-bed: each estimator's cosine with the true gradient, one
batched computation per run (not the run loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments.kinds import Kind, refuse_games

# The keys, types and default values of a alignment configuration: every preset of this kind
# is these with its own values (rtrl.experiments.presets), and --set may change any of them.
DEFAULTS: dict[str, Any] = {
    "kind": "alignment",
    "density": 0.1,  # fraction of the other columns' h_{t-1} each column reads
    "columns": 20,  # columnar LSTM columns
    "init_scale": 0.5,  # weights ~ U(-init_scale, init_scale)
    "inputs": 50,  # Bernoulli(0.5) inputs per step
    "steps": 50,  # length of each stream
    "paper_steps": 50,
    # estimators by registry name, tbptt_T for truncation T (rtrl.gradients.ESTIMATORS)
    "estimators": "full_rtrl,columnar_rtrl,snap1,uoro,tbptt_1,tbptt_2,tbptt_5,tbptt_10",
    "meta": False,  # learn the head online inside the stream (meta-gradients)
    "meta_step_size": 0.1,
    "seed": 0,
}


def run(config, seeds: int, out: Path, games=None, progress=True, stop_after=None):
    refuse_games(games, KIND.name)
    from rtrl.experiments.gradient_alignment import run_alignment

    return run_alignment(config, seeds, out)


def scores(config, summary):
    cosines = {k: v for k, v in summary.items() if k.startswith("cosine_")}
    return {"status": summary.get("status", "complete"), **cosines}


def headline(config, summary, out: Path) -> str:
    cosines = scores(config, summary)
    return ("cosine with the true gradient: " + ", ".join(
        f"{k.removeprefix('cosine_')} {v:.3f}" for k, v in cosines.items()
        if k != "status") + f" ({out})")  # fmt: skip


def plot(run_dirs: list[Path], out: Path, log_scale: bool = False, smooth: int = 1) -> str:
    from rtrl.experiments import gradient_alignment

    return gradient_alignment.report(run_dirs, out) + f"wrote {out}\n"


KIND = Kind(
    defaults=DEFAULTS, name="alignment", run=run, scores=scores, headline=headline, plot=plot,
    figure_name=lambda config, games: "cosine with the true gradient", figure_slug="cosine",
)  # fmt: skip
