"""Reading and writing run directories, and the statistics every report uses.

Every run directory holds ``config.json`` (``{"config": ..., "seeds": N}``, plus ``"games"`` for
a multi-game Atari run), a metrics CSV (``metrics.csv`` for prediction, ``curve.csv`` for
control), ``summary.json`` and, while it can resume, ``checkpoint.npz``. CSV files use ``\\n``
line ends; JSON files are strict (a non-finite number is written as ``null``).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from rtrl.files import atomic_path

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
STUDY_FILE = "study.csv"  # what marks a study's or sweep's directory


def standard_error(per_seed) -> float:
    """Standard error of the mean over seeds (0 for a single seed)."""
    per_seed = np.asarray(per_seed)
    return float(per_seed.std(ddof=1) / np.sqrt(len(per_seed))) if len(per_seed) > 1 else 0.0


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: Path, value: Any) -> None:
    """Write strict JSON atomically (a crash never leaves half a file)."""
    text = json.dumps(_strict(value), indent=2, allow_nan=False)
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def run_name(run_dir: Path) -> str:
    """How tables and legends name a run: its directory, with the preset's directory in front
    for a sweep's runs (``PRESET/key=value``)."""
    return f"{run_dir.parent.name} {run_dir.name}" if "=" in run_dir.name else run_dir.name


def read_record(run_dir: Path) -> dict[str, Any]:
    """The ``config.json`` of a run directory, with a clear error where there is none."""
    path = run_dir / CONFIG_FILE
    if not path.exists() and (run_dir / STUDY_FILE).exists():
        figures = ", ".join(sorted(p.name for p in run_dir.glob("*.png"))) or "none yet"
        raise FileNotFoundError(
            f"{run_dir} is a study or sweep, not a run: its figures are in it ({figures}); "
            f"to plot some of its runs, give their directories (listed in {STUDY_FILE})"
        )
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no {CONFIG_FILE}; is it a run directory?")
    return read_json(path)


def append_rows(path: Path, header: list[str], rows: Iterable[list[Any]]) -> int:
    """Append ``rows`` to a CSV file (writing ``header`` first when it is new); returns the
    number of rows written."""
    new_file = not path.exists()
    count = 0
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if new_file:
            writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def truncate_rows(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` rows (drop rows written after a checkpoint)."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        lines = handle.readlines()
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        handle.writelines(lines[: rows + 1])


def read_metrics(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Prediction runs: (steps (bins,), squared return error (seeds, bins))."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.csv; is it a prediction run directory?")
    return read_seed_table(path, "msre")


def read_seed_table(path: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A CSV file of ``seed, step, <column>`` rows as (steps (points,), values (seeds, points)),
    NaN where a seed has no row for a step."""
    with open(path, newline="") as f:
        rows = [(int(r["seed"]), int(r["step"]), float(r[column])) for r in csv.DictReader(f)]
    if not rows:
        return np.zeros(0, int), np.zeros((0, 0))
    seeds = max(r[0] for r in rows) + 1
    steps = sorted({r[1] for r in rows})
    table = np.full((seeds, len(steps)), np.nan)
    position = {s: i for i, s in enumerate(steps)}
    for seed, step, value in rows:
        table[seed, position[step]] = value
    return np.asarray(steps), table


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Control runs: (steps, mean episodic return of shape (seeds, points)); NaN where no
    episode ended."""
    path = run_dir / "curve.csv"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no curve.csv; is it a control run directory?")
    table = np.genfromtxt(path, delimiter=",", skip_header=1, ndmin=2)
    if table.size == 0:
        return np.zeros(0), np.zeros((0, 0))
    return table[:, 0], table[:, 1:].T


def final_and_lifetime(table: np.ndarray, window: int, name: str) -> dict[str, Any]:
    """Per-seed means of the last ``window`` points and of all points of a (seeds, points)
    table, with their mean and standard error over seeds, keyed ``{final,lifetime}_{name}_*``.
    Points without a value (NaN: no episode ended there) are left out; NaN where none is left."""
    summary: dict[str, Any] = {}
    with warnings.catch_warnings():  # a seed or a window without any value gives NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        for prefix, points in (("final", table[:, -window:]), ("lifetime", table)):
            per_seed = np.nanmean(points, axis=1)
            summary[f"{prefix}_{name}_per_seed"] = per_seed.tolist()
            summary[f"{prefix}_{name}_mean"] = float(np.nanmean(per_seed))
            summary[f"{prefix}_{name}_stderr"] = standard_error(per_seed)
    return summary


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV table as dictionaries of strings (none when there is no file)."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write dictionaries as a CSV table (columns from the first row), atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
