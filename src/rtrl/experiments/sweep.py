"""Sweeps: presets over a grid of one key, the best value per preset; a study of one grid.

``sweep(presets, key, values, seeds, out)`` runs every preset at every value into
``out/PRESET/KEY=VALUE`` (each run resumable) on an executor (``rtrl.experiments.executors``;
default: this machine's cores) and writes what every study writes (``rtrl.experiments.studies``):
``study.csv`` (every run), ``best.md`` (per preset, the value with the best final figure) and
``best.png`` (the learning curves of those runs). With ``games`` (Atari presets), each run is a
multi-game run scored by its normalised final error averaged over the games; ``best.md`` then
also holds the per-game table of the best runs, and ``best.png`` their per-game bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments.executors import Executor, LocalExecutor
from rtrl.experiments.studies import Grid, Study, run_study


def sweep(
    names: list[str],
    key: str,
    values: list[str],
    seeds: int,
    out: Path,
    overrides: dict[str, str] | None = None,
    paper: bool = False,
    progress: bool = True,
    games: list[str] | None = None,
    executor: Executor | None = None,
    log: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Run the grid and return the best run of each preset (rows of ``study.csv``)."""
    grid = (Grid(tuple(names), {key: tuple(values)}),)
    study = Study("sweep", f"{', '.join(names)} over {key}", grids=grid, paper_grids=grid,
                  choose=(key,), seeds=seeds, paper_seeds=seeds)  # fmt: skip
    return run_study(study, out, executor or LocalExecutor(), paper=paper, seeds=seeds,
                     overrides=overrides, games=games, progress=progress, log=log)  # fmt: skip
