"""The Atari prediction benchmark over several games: one run directory per game, then a table.

``run_games(config, games, seeds, out)`` runs a preset on each game into ``out/<Game>`` (each a
resumable run directory, see ``runner``) and writes

- ``out/<Game>/returns.json``: mean and variance of that game's returns G_t over the scored steps;
- ``out/games.csv``: per game, the final-window and lifetime squared return errors (mean and
  standard error over seeds), and both divided by the variance of the game's returns;
- ``out/aggregate.json``: the normalised errors averaged over games, per seed, then mean and
  standard error over seeds (and the median over games of the seed-mean).

Normalisation: an error of 1 is that of the best constant predictor (the mean return) over the
scored steps, so games with large and small returns weigh the same in the aggregate.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from rtrl.envs import atari
from rtrl.experiments.plots import new_figure, save_figure
from rtrl.experiments.prediction_runs import run_prediction
from rtrl.experiments.results import (
    CONFIG_FILE,
    read_json,
    run_name,
    standard_error,
    write_json,
    write_table,
)
from rtrl.experiments.run_loop import refuse_file
from rtrl.learners import discounted_returns, unreliable_tail


def return_statistics(config: dict[str, Any]) -> dict[str, float]:
    """Mean and variance of the returns of a game's stream over the steps a run scores (all but
    the last 10 / (1 - gamma) of ``steps``)."""
    recording = atari.load_recording(
        config["game"], frame_size=config["frame_size"], resize=config["resize"]
    )
    steps = config["steps"]
    discounts = recording.discounts(config["gamma"])[:steps]
    cumulants = recording.clipped_rewards[:steps].astype(np.float64)
    returns = np.asarray(discounted_returns(jnp.asarray(cumulants), jnp.asarray(discounts)))
    scored = returns[: steps - unreliable_tail(config["gamma"])]
    return {"mean": float(scored.mean()), "variance": float(scored.var()), "steps": len(scored)}


def run_games(
    config: dict[str, Any], games: list[str], seeds: int, out: Path, progress: bool = True
) -> dict[str, Any]:
    """Run ``config`` on each game (resuming finished or partial games); returns the aggregate."""
    if config["stream"] != "atari":
        raise ValueError(f"--games needs an Atari preset; this one's stream is {config['stream']}")
    refuse_file(out)
    out.mkdir(parents=True, exist_ok=True)
    # The directory's record lists every game run into it (games may be added later).
    record_path = out / CONFIG_FILE
    earlier = read_json(record_path).get("games", []) if record_path.exists() else []
    record = {"config": {k: v for k, v in config.items() if k != "game"}, "seeds": seeds,
              "games": sorted(set(earlier) | set(games))}  # fmt: skip
    write_json(record_path, record)
    for game in games:
        game_config = {**config, "game": game}
        run_prediction(game_config, seeds, out / game, progress=progress)
        write_json(out / game / "returns.json", return_statistics(game_config))
    return summarise_games(out)


def _game_dirs(out: Path) -> list[Path]:
    return sorted(
        p.parent for p in out.glob("*/returns.json") if (p.parent / "summary.json").exists()
    )


def summarise_games(out: Path) -> dict[str, Any]:
    """Write games.csv and aggregate.json for the finished games under ``out``."""
    rows, normalised_final, normalised_lifetime = [], [], []
    for game_dir in _game_dirs(out):
        summary = read_json(game_dir / "summary.json")
        if summary["status"] != "complete":
            continue
        variance = read_json(game_dir / "returns.json")["variance"]
        scale = 1.0 / variance if variance > 0 else np.nan  # no rewards: nothing to normalise by
        final = np.asarray(summary["final_msre_per_seed"])
        lifetime = np.asarray(summary["lifetime_msre_per_seed"])
        normalised_final.append(final * scale)
        normalised_lifetime.append(lifetime * scale)
        rows.append({
            "game": game_dir.name,
            "final_msre": final.mean(), "final_stderr": standard_error(final),
            "lifetime_msre": lifetime.mean(), "return_variance": variance,
            "normalised_final": final.mean() * scale,
            "normalised_final_stderr": standard_error(final) * scale,
            "normalised_lifetime": lifetime.mean() * scale,
        })  # fmt: skip
    if not rows:
        raise FileNotFoundError(f"{out} holds no finished game runs")
    write_table(out / "games.csv", [{k: v if isinstance(v, str) else f"{v:.6g}"
                                     for k, v in r.items()} for r in rows])  # fmt: skip
    # (seeds,): mean over the games that have rewards in their scored steps
    per_seed_final = np.nanmean(normalised_final, axis=0)
    per_seed_lifetime = np.nanmean(normalised_lifetime, axis=0)
    aggregate = {
        "games": [r["game"] for r in rows],
        "games_without_rewards": [r["game"] for r in rows if not r["return_variance"] > 0],
        "seeds": len(per_seed_final),
        "normalised_final_mean": float(per_seed_final.mean()),
        "normalised_final_stderr": standard_error(per_seed_final),
        "normalised_lifetime_mean": float(per_seed_lifetime.mean()),
        "normalised_lifetime_stderr": standard_error(per_seed_lifetime),
        "normalised_final_median_over_games": float(
            np.nanmedian([r["normalised_final"] for r in rows])
        ),
    }
    write_json(out / "aggregate.json", aggregate)
    return aggregate


def read_games(out: Path) -> list[dict[str, Any]]:
    if not (out / "games.csv").exists():
        raise FileNotFoundError(f"{out} has no games.csv; is it a multi-game Atari run?")
    with open(out / "games.csv") as f:
        return [
            {k: v if k == "game" else float(v) for k, v in r.items()} for r in csv.DictReader(f)
        ]


def games_table(run_dirs: list[Path]) -> str:
    """A markdown table: one row per game, the normalised final error of each run, then the
    aggregate row (mean over games, +- standard error over seeds)."""
    tables = {d: {r["game"]: r for r in read_games(d)} for d in run_dirs}
    games = sorted(set().union(*(t.keys() for t in tables.values())))
    lines = ["| game | " + " | ".join(map(run_name, run_dirs)) + " |",
             "|---|" + "---|" * len(run_dirs)]  # fmt: skip
    for game in games:
        rows = [tables[d].get(game) for d in run_dirs]
        cells = ["–" if r is None else f"{r['normalised_final']:.3f} ± "
                 f"{r['normalised_final_stderr']:.3f}" for r in rows]  # fmt: skip
        lines.append(f"| {game} | " + " | ".join(cells) + " |")
    aggregates = [read_json(d / "aggregate.json") for d in run_dirs]
    lines.append("| **mean over games** | " + " | ".join(
        f"**{a['normalised_final_mean']:.3f} ± {a['normalised_final_stderr']:.3f}**"
        for a in aggregates) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_games(run_dirs: list[Path], out: Path) -> Path:
    """Grouped bars: per game, each run's normalised final error (+- standard error)."""
    tables = {d: {r["game"]: r for r in read_games(d)} for d in run_dirs}
    games = sorted(set().union(*(t.keys() for t in tables.values())))
    width = 0.8 / len(run_dirs)
    fig, ax = new_figure(figsize=(max(6, 1.1 * len(games) + 2), 4.2))
    for i, d in enumerate(run_dirs):
        rows = [tables[d].get(g) for g in games]
        heights = [r["normalised_final"] if r else np.nan for r in rows]
        errors = [r["normalised_final_stderr"] if r else 0 for r in rows]
        positions = np.arange(len(games)) + (i - (len(run_dirs) - 1) / 2) * width
        ax.bar(positions, heights, width, yerr=errors, label=run_name(d), capsize=2)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")  # the best constant predictor
    ax.set_xticks(np.arange(len(games)), games, rotation=30, ha="right")
    ax.set_ylabel("final squared return error / Var(G)")
    ax.legend(fontsize=8)
    return save_figure(fig, out)
