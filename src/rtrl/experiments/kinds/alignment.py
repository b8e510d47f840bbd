"""The gradient-alignment test-bed: each estimator's cosine with the true gradient, one
batched computation per run (not the run loop)."""

from __future__ import annotations

from pathlib import Path

from rtrl.experiments.kinds import Kind, refuse_games


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
    name="alignment", run=run, scores=scores, headline=headline, plot=plot,
    figure_name=lambda config, games: "cosine with the true gradient", figure_slug="cosine",
)  # fmt: skip
