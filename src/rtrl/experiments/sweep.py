"""Step-size sweeps: run presets over a grid of values, pick the best per preset.

``sweep(presets, grid, seeds, out, overrides)`` runs every preset at every grid value into
``out/PRESET/KEY=VALUE`` (each run resumes like ``rtrl run``), then writes

- ``out/sweep.csv``: one row per run (preset, value, final and lifetime MSRE with standard errors,
  multiply-adds per step);
- ``out/best.md``: per preset, the value with the lowest final-window MSRE, as a Markdown table;
- ``out/best.png``: the learning curves of those best runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments import presets
from rtrl.experiments.compute import multiply_adds
from rtrl.experiments.loop import DivergedError
from rtrl.experiments.results import write_table
from rtrl.experiments.runner import run_prediction


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
) -> list[dict[str, Any]]:
    """Run the grid and return the best run of each preset (lowest final MSRE)."""
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
            summary = run_prediction(config, seeds, run_dir, progress=progress)
        except DivergedError:
            summary = {"status": "diverged"}
        rows.append({
            "preset": name, key: value, "status": summary["status"],
            "final_msre": summary.get("final_msre_mean", float("nan")),
            "final_stderr": summary.get("final_msre_stderr", float("nan")),
            "lifetime_msre": summary.get("lifetime_msre_mean", float("nan")),
            "multiply_adds": multiply_adds(config), "run": str(run_dir),
        })  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_table(out / "sweep.csv", rows)
    best = []
    for name in names:
        done = [r for r in rows if r["preset"] == name and r["status"] == "complete"]
        if done:
            best.append(min(done, key=lambda r: r["final_msre"]))
    (out / "best.md").write_text(_table(best, key, seeds))
    if best:
        from rtrl.experiments.plots import plot_runs

        plot_runs([Path(r["run"]) for r in best], out / "best.png", log_scale=True)
    return best


def _table(best: list[dict[str, Any]], key: str, seeds: int) -> str:
    lines = [
        f"| preset | best {key} | final MSRE (± s.e., {seeds} seeds) | lifetime MSRE "
        "| multiply-adds / step |",
        "|---|---|---|---|---|",
    ]
    for r in best:
        lines.append(
            f"| {r['preset']} | {r[key]} | {r['final_msre']:.4f} ± {r['final_stderr']:.4f} "
            f"| {r['lifetime_msre']:.4f} | {r['multiply_adds']:,} |"
        )
    return "\n".join(lines) + "\n"
