"""Experiment kinds: what differs between a prediction, a control, a copy-task and a
gradient-alignment experiment, in one place per kind.

A configuration's ``kind`` names its ``Kind``; the engine, the studies, the command line and
the benchmarks ask the kind (``kind_of(config)``) instead of comparing the name. A new kind of
experiment is one module in this package, ``NAME_kind.py``, holding its ``DEFAULTS`` and the
``KIND`` it builds, and one line in ``_kinds``; its presets go in ``rtrl.experiments.presets``.
A kind's module imports its machinery lazily, so looking a kind up costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

Config = dict[str, Any]
Summary = dict[str, Any]


def _nothing(config: Config) -> bool:
    return False


def refuse_games(games, kind: str) -> None:
    """Only Atari prediction runs go over several games."""
    if games:
        raise ValueError(f"--games is for Atari prediction presets, not {kind} presets")


def plot_best_in_one_figure(best: list[tuple[Config, Path]], out: Path, column) -> None:
    """The best runs' curves together in ``best.png``, on a log scale."""
    from rtrl.experiments.plots import plot_runs

    plot_runs([run_dir for _, run_dir in best], out / "best.png", log_scale=True)


def figure(summary: Summary, key: str) -> float:
    """A figure of a summary; NaN where it has none (strict JSON writes NaN as null)."""
    value = summary.get(key)
    return float("nan") if value is None else value


def shown(summary: Summary, key: str) -> str:
    """A figure of a summary as the command line prints it."""
    value = summary.get(key)
    return "n/a" if value is None else f"{value:.4f}"


@dataclass(frozen=True, eq=False)
class Kind:
    name: str
    defaults: dict[str, Any]  # every key of the kind's configurations, with its default value
    # (config, seeds, out, games, progress, stop_after) -> summary: run or resume into out
    run: Callable[..., Summary]
    # (config, summary) -> the figures studies compare: status, final, final_stderr and the
    # second figure (or the kind's own, e.g. per-estimator cosines)
    scores: Callable[[Config, Summary], dict[str, Any]]
    # (config, summary, out) -> the command line's one-line result
    headline: Callable[[Config, Summary, Path], str]
    # (run_dirs, out, log_scale, smooth) -> what to print: draws runs of this kind
    plot: Callable[[list[Path], Path, bool, int], str]
    # (config, games) -> the name of the final figure in tables and axes
    figure_name: Callable[[Config, tuple[str, ...]], str]
    higher_is_better: bool = True  # of the final figure: returns and accuracies; not errors
    second_figure: str = "lifetime"  # the study table's second column
    figure_slug: str = "figure"  # the final figure in file names (error-vs-isi.png)
    unit: str = "steps"  # what a step of the budget counts
    # (config, seeds) -> the run loop's Program, where the kind runs through the loop
    program: Callable[[Config, int], Any] | None = None
    # config -> multiply-adds per step, where the kind counts them
    multiply_adds: Callable[[Config], int] | None = None
    # config -> the network's parameters, where the kind counts them
    parameters: Callable[[Config], int] | None = None
    # ([(config, run dir) of each method's best run], study dir, column) -> draws their curves
    plot_best: Callable[[list[tuple[Config, Path]], Path, str | None], None] | None = None
    takes_games: Callable[[Config], bool] = _nothing  # runs over several Atari games
    groupable: Callable[[Config], bool] = _nothing  # step sizes may run as one program


def _kinds() -> dict[str, Kind]:
    from rtrl.experiments.kinds import alignment_kind, control_kind, copy_kind, prediction_kind

    kinds = (prediction_kind, control_kind, copy_kind, alignment_kind)
    return {module.KIND.name: module.KIND for module in kinds}


KINDS: dict[str, Kind] = _kinds()


def kind_of(config: Config) -> Kind:
    """The kind of a configuration (its ``kind`` key)."""
    try:
        return KINDS[config["kind"]]
    except KeyError:
        raise ValueError(
            f"unknown experiment kind {config.get('kind')!r}; choose one of {sorted(KINDS)}"
        ) from None
