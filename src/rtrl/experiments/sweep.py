"""Step-size sweeps: run presets over a grid of values, pick the best per preset.

``sweep(presets, grid, seeds, out, overrides)`` runs every preset at every grid value into
``out/PRESET/KEY=VALUE`` (each run resumes like ``rtrl run``), then writes

- ``out/sweep.csv``: one row per run (preset, value, final and lifetime MSRE with standard errors,
  multiply-adds per step);
- ``out/best.md``: per preset, the value with the lowest final-window MSRE, as a Markdown table;
- ``out/best.png``: the learning curves of those best runs.

With ``games`` (Atari presets), each run is a multi-game run (``rtrl.experiments.atari``) and is
scored by its normalised final error, averaged over the games; ``best.md`` then also holds the
per-game table of the best runs, and ``best.png`` their per-game bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments import engine, presets
from rtrl.experiments.compute import multiply_adds
from rtrl.experiments.loop import DivergedError
from rtrl.experiments.results import write_table


def _run_dir(out: Path, preset: str, key: str, value: str) -> Path:
    return out / preset / f"{key}={value}"


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
) -> list[dict[str, Any]]:
    """Run the grid and return the best run of each preset (lowest final error)."""
    configs = {}
    for name in names:  # validate everything before running anything
        for value in values:
            config = presets.resolve(name, {**(overrides or {}), key: value})
            if config["kind"] != "prediction":
                raise ValueError(f"sweeps are for prediction presets; {name} is a control preset")
            if paper:
                config["steps"] = config["paper_steps"]
            configs[name, value] = config
    rows = []
    for (name, value), config in configs.items():
        run_dir = _run_dir(out, name, key, value)
        try:
            summary = engine.run(config, seeds, run_dir, games=games, progress=progress)
            scores = _scores(summary, multi_game=bool(games))
        except DivergedError:
            scores = {"status": "diverged", **dict.fromkeys(_SCORES, float("nan"))}
        rows.append({"preset": name, key: value, **scores,
                     "multiply_adds": multiply_adds(config), "run": str(run_dir)})  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_table(out / "sweep.csv", rows)
    best = []
    for name in names:
        done = [r for r in rows if r["preset"] == name and r["status"] == "complete"]
        if done:
            best.append(min(done, key=lambda r: r["final"]))
    spread = f"± s.e. over {seeds} seeds"
    error = (f"normalised final error (mean over {len(games)} games, {spread})" if games
             else f"final MSRE ({spread})")  # fmt: skip
    table = _table(best, key, error)
    if best and games:
        from rtrl.experiments.atari import games_table, plot_games

        runs = [Path(r["run"]) for r in best]
        table += "\n" + games_table(runs)
        plot_games(runs, out / "best.png")
    elif best:
        from rtrl.experiments.plots import plot_runs

        plot_runs([Path(r["run"]) for r in best], out / "best.png", log_scale=True)
    (out / "best.md").write_text(table)
    return best


_SCORES = ("final", "final_stderr", "lifetime")


def _scores(summary: dict[str, Any], multi_game: bool) -> dict[str, Any]:
    """A run's scores: its final and lifetime MSRE, or for a multi-game run its normalised
    errors averaged over games."""
    if multi_game:
        return {"status": "complete", "final": summary["normalised_final_mean"],
                "final_stderr": summary["normalised_final_stderr"],
                "lifetime": summary["normalised_lifetime_mean"]}  # fmt: skip
    return {"status": summary["status"], "final": summary.get("final_msre_mean", float("nan")),
            "final_stderr": summary.get("final_msre_stderr", float("nan")),
            "lifetime": summary.get("lifetime_msre_mean", float("nan"))}  # fmt: skip


def _table(best: list[dict[str, Any]], key: str, error: str) -> str:
    lines = [
        f"| preset | best {key} | {error} | lifetime | multiply-adds / step |",
        "|---|---|---|---|---|",
    ]
    for r in best:
        lines.append(
            f"| {r['preset']} | {r[key]} | {r['final']:.4f} ± {r['final_stderr']:.4f} "
            f"| {r['lifetime']:.4f} | {r['multiply_adds']:,} |"
        )
    return "\n".join(lines) + "\n"
