"""Learning-curve plots of run directories, and the figure helpers every plot uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtrl.experiments.results import read_metrics, read_record, run_name


def new_figure(*grid: int, figsize: tuple[float, float] = (7, 4.2)):
    """``plt.subplots(*grid)`` drawn off-screen (no display needed); matplotlib loads on use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*grid, figsize=figsize)


def save_figure(fig, out: Path) -> Path:
    """Lay out, write (creating the directory) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_mean_band(ax, steps, per_seed: np.ndarray, label: str) -> None:
    """Mean over seeds (rows of ``per_seed``, NaN ignored) shaded +- its standard error."""
    mean = np.nanmean(per_seed, axis=0)
    seeds = per_seed.shape[0]
    err = np.nanstd(per_seed, axis=0, ddof=1) / np.sqrt(seeds) if seeds > 1 else 0 * mean
    ax.plot(steps, mean, label=label)
    ax.fill_between(steps, mean - err, mean + err, alpha=0.25)


def plot_runs(
    run_dirs: list[Path],
    out: Path,
    log_scale: bool = False,
    references: dict[str, float] | None = None,
) -> Path:
    """One line per run: mean squared return error across seeds, shaded +- standard error;
    ``references`` adds labelled horizontal lines (e.g. the best constant predictor's error)."""
    fig, ax = new_figure()
    for label, level in (references or {}).items():
        ax.axhline(level, color="gray", lw=1.0, ls="--", label=label)
    for run_dir in run_dirs:
        steps, table = read_metrics(run_dir)
        record = read_record(run_dir)
        label = f"{run_name(run_dir)} ({record['config']['cell']}, {record['config']['estimator']})"
        plot_mean_band(ax, steps, table, label)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("steps")
    ax.set_ylabel("mean squared return error")
    ax.legend(fontsize=8)
    return save_figure(fig, out)
