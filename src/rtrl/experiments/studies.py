"""Studies: a paper's figure as a named grid of runs, run on any executor, then reported.

A ``Study`` is grids of (presets × values of some keys), a number of seeds, which keys the best
setting of each method is chosen over (``choose``, usually the step size), and what to draw.
Its default budget finishes in minutes here; ``paper=True`` gives the paper's grids, budgets and
seeds. ``run_study(study, out, executor)`` runs every run not yet finished into
``out/PRESET/KEY=VALUE,...`` (``out/PRESET`` when the grid has no keys), and writes

- ``study.csv``: one row per run (preset, the grid's values, status, final and lifetime figures
  with the final one's standard error, multiply-adds per step, seeds, and the wall time the run
  took in its worker, empty for runs finished by an earlier call);
  rewritten as runs finish, so an interrupted study keeps the rows of its finished runs;
- ``best.md``: per method (preset, and the grid's other keys), the best setting: lowest final
  error for prediction, highest final return for control; the tables each study adds;
- the figures the study names (``best.png`` and others).

Running a study again on its directory skips finished runs and continues interrupted ones from
their checkpoints. ``rtrl sweep`` is a study of the presets it is given over one key.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rtrl.experiments import configuration, engine, grouping
from rtrl.experiments.executors import Executor, Task
from rtrl.experiments.kinds import kind_of
from rtrl.experiments.results import STUDY_FILE, read_table, write_table
from rtrl.experiments.run_loop import RunInterrupted, refuse_file

BEST_FILE = "best.md"


@dataclass(frozen=True)
class Grid:
    """``presets`` each run at every combination of ``values`` (key -> values, as ``--set``
    would give them)."""

    presets: tuple[str, ...]
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # A figure panel the grid's runs are drawn in (studies with panels: one subplot and one
    # table per panel), and the panel's x-axis: a key of the grid's values, or a figure of the
    # study's rows (``parameters``, ``multiply_adds``); empty: the study's column.
    panel: str = ""
    column: str | None = None


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    grids: tuple[Grid, ...]
    paper_grids: tuple[Grid, ...]
    choose: tuple[str, ...] = ("step_size",)  # keys the best setting per method is chosen over
    seeds: int = 3
    paper_seeds: int = 30
    budget: dict[str, str] = field(default_factory=dict)  # overrides at the default budget
    games: tuple[str, ...] = ()  # Atari studies
    paper_games: tuple[str, ...] = ()
    # A configuration key whose values are the columns of the best table and the x-axis (or
    # the panels) of the figure: isi, env, density.
    column: str | None = None
    # Further keys with a table each (methods by their values), over the runs that set them.
    more_columns: tuple[str, ...] = ()
    # curves | compute | column | success (MemoryChain: success rate against the column) |
    # alignment | panels (the grids' panels side by side: STUDY.png)
    figures: tuple[str, ...] = ("curves",)

    def panels(self, paper: bool = False) -> dict[str, str]:
        """The study's panels in order, each with its x-axis."""
        panels: dict[str, str] = {}
        for grid in self.paper_grids if paper else self.grids:
            if grid.panel and (grid.column or grid.panel not in panels):
                panels[grid.panel] = grid.column or self.column
        return panels


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its preset, grid values and task."""

    preset: str
    settings: dict[str, str]
    task: Task
    panels: tuple[str, ...] = ()  # the figure panels the run is drawn in

    @property
    def config(self) -> dict[str, Any]:
        return self.task.config


def run_directory(preset: str, settings: dict[str, str]) -> str:
    return preset + ("/" + ",".join(f"{k}={v}" for k, v in settings.items()) if settings else "")


def plan(study: Study, paper: bool = False, seeds: int | None = None,
         overrides: dict[str, str] | None = None, games: list[str] | None = None,
         ) -> list[PlannedRun]:  # fmt: skip
    """Every run of the study, its configuration resolved and checked (nothing has run)."""
    seeds = seeds or (study.paper_seeds if paper else study.seeds)
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    games = tuple(games or (study.paper_games if paper else study.games))
    base = {**({} if paper else study.budget), **(overrides or {})}
    runs: dict[str, PlannedRun] = {}
    for grid in study.paper_grids if paper else study.grids:
        keys = list(grid.values)
        panels = (grid.panel,) if grid.panel else ()
        for preset in grid.presets:
            for combination in itertools.product(*grid.values.values()):
                settings = dict(zip(keys, combination))
                directory = run_directory(preset, settings)
                if directory in runs:  # a run that two panels share runs once
                    planned = runs[directory]
                    runs[directory] = replace(planned, panels=planned.panels + panels)
                    continue
                config = configuration.resolve(preset, {**base, **settings}, paper=paper)
                configuration.check_games(config, preset, games)
                task = Task(config, seeds, directory, games)
                runs[directory] = PlannedRun(preset, settings, task, panels)
    return list(runs.values())


def run_study(study: Study, out: Path, executor: Executor, paper: bool = False,
              seeds: int | None = None, overrides: dict[str, str] | None = None,
              games: list[str] | None = None, progress: bool = True,
              log: tuple[str, ...] = ()) -> list[dict[str, Any]]:  # fmt: skip
    """Run (or resume) the study into ``out`` and report it; returns the best run per method
    (rows of ``study.csv``). ``log``: loggers every run also writes to (``run_logging``); then
    each run runs as its own program, so that each logs its own metrics."""
    runs = plan(study, paper, seeds, overrides, games)
    refuse_file(out)
    finished = {}  # every directory is checked before anything runs
    for run in runs:
        summary = engine.finished(run.config, run.task.seeds, out / run.task.directory,
                                  list(run.task.games) or None)  # fmt: skip
        if summary is not None:
            finished[run.task.directory] = summary
    out.mkdir(parents=True, exist_ok=True)
    # A finished run keeps the wall time an earlier invocation recorded for it.
    took = {row["run"]: row.get("seconds", "") for row in read_table(out / STUDY_FILE)}
    rows = {d: _row(run, finished[d], float(took[d]) if took.get(d) else None)
            for run in runs if (d := run.task.directory) in finished}  # fmt: skip
    to_run = [run for run in runs if run.task.directory not in finished]
    by_directory = {run.task.directory: run for run in runs}
    total = sum(run.task.stream_steps for run in runs)
    bar = tqdm(total=total, unit="step", unit_scale=True, disable=not progress,
               desc=f"{study.name}: {len(rows)}/{len(runs)} runs",
               initial=sum(by_directory[d].task.stream_steps for d in rows))  # fmt: skip
    if log:
        tasks = [run.task._replace(log=log) for run in to_run]
    else:
        tasks = grouping.group_tasks([run.task for run in to_run], out, executor.parallel_runs)
    results = executor.run(tasks, out)
    try:
        for finished_task, finished_summary in results:
            for task, summary in grouping.outcomes(finished_task, finished_summary, out):
                run = by_directory[task.directory]
                rows[task.directory] = _row(run, summary, summary.get("seconds"))
                bar.update(task.stream_steps)
            _write_rows(out, runs, rows)
            bar.set_description(f"{study.name}: {len(rows)}/{len(runs)} runs", refresh=False)
    except (KeyboardInterrupt, RunInterrupted):  # here, or in a worker (its runs checkpoint)
        raise RunInterrupted(
            f"study interrupted with {len(rows)} of {len(runs)} runs finished; run the same "
            f"command again to resume ({out})"
        ) from None
    finally:
        results.close()  # stops the executor's work now, not when the generator is collected
        bar.close()
        executor.close()
    _write_rows(out, runs, rows)
    return report(study, out, runs, rows)


def _row(run: PlannedRun, summary: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    config = run.config
    kind = kind_of(config)
    macs = kind.multiply_adds(config) if kind.multiply_adds else ""
    parameters = {"parameters": kind.parameters(config)} if kind.parameters else {}
    return {"preset": run.preset, **run.settings, **engine.scores(config, summary),
            "multiply_adds": macs, **parameters, "seeds": run.task.seeds,
            "seconds": "" if seconds is None else round(seconds, 1),
            "run": run.task.directory}  # fmt: skip


def _write_rows(out: Path, runs: list[PlannedRun], rows: dict[str, dict[str, Any]]) -> None:
    """study.csv in the plan's order, with the union of the rows' columns."""
    ordered = [rows[run.task.directory] for run in runs if run.task.directory in rows]
    if not ordered:
        return
    columns = list(dict.fromkeys(k for row in ordered for k in row))
    write_table(out / STUDY_FILE, [{k: row.get(k, "") for k in columns} for row in ordered])


def _better(config: dict[str, Any]) -> int:
    """+1 where a higher final figure is better (returns, accuracies), -1 where lower is
    (errors)."""
    return 1 if kind_of(config).higher_is_better else -1


def best_runs(runs: list[PlannedRun], rows: dict[str, dict[str, Any]], choose: tuple[str, ...]
              ) -> list[tuple[PlannedRun, dict[str, Any]]]:  # fmt: skip
    """Per method (a preset and its values of the keys not chosen over), the complete run with
    the best final figure, in the plan's order."""
    groups: dict[tuple, list[tuple[PlannedRun, dict[str, Any]]]] = {}
    for run in runs:
        row = rows.get(run.task.directory)
        if row is None or row["status"] != "complete" or math.isnan(row.get("final", math.nan)):
            continue
        method = (run.preset, *((k, v) for k, v in run.settings.items() if k not in choose))
        groups.setdefault(method, []).append((run, row))
    return [max(group, key=lambda pair: _better(pair[0].config) * pair[1]["final"])
            for group in groups.values()]  # fmt: skip


def report(study: Study, out: Path, runs: list[PlannedRun], rows: dict[str, dict[str, Any]]
           ) -> list[dict[str, Any]]:  # fmt: skip
    """Write best.md and the study's figures; returns the best rows."""
    if "alignment" in study.figures:
        from rtrl.experiments import gradient_alignment

        run_dirs = [out / r.task.directory for r in runs if r.task.directory in rows]
        table = gradient_alignment.report(run_dirs, out / "alignment.png")
        (out / BEST_FILE).write_text(
            "Cosine similarity with the true gradient, mean over seeds (fraction of "
            "parameters with the right sign)\n\n" + table
        )
        return [rows[r.task.directory] for r in runs if r.task.directory in rows]
    best = best_runs(runs, rows, study.choose)
    seeds = runs[0].task.seeds if runs else 0
    text = _best_table(best, study, seeds)
    columns = {**study.panels(), **study.panels(paper=True)}
    panels = {panel: columns[panel] for run in runs for panel in run.panels}
    if best and panels:
        for panel, column in panels.items():
            subset = [(run, row) for run, row in best if panel in run.panels]
            text += f"\n{panel}\n\n" + _panel_table(subset, column, study.choose)
        if "panels" in study.figures:
            _plot_panels(best, panels, out / f"{study.name}.png")
    elif best and study.column and not study.more_columns:
        text += "\n" + _column_table(best, study.column, study.choose)
        if kind_of(best[0][0].config).second_figure == "recalled_length":
            text += ("\nRecalled length: the longest k such that every validation pattern of k "
                     "bits or fewer is recalled without error (mean over seeds)\n\n"
                     + _column_table(best, study.column, study.choose,
                                     "recalled_length"))  # fmt: skip
    elif best and study.column:  # several tables: each over the runs whose grid sets its key
        for key in (study.column, *study.more_columns):
            subset = [(run, row) for run, row in best if key in run.settings]
            if subset:
                text += "\n" + _column_table(subset, key, study.choose)
    best_dirs = [out / run.task.directory for run, _ in best]
    if best and runs[0].task.games:
        from rtrl.experiments.atari_runs import games_table, plot_games

        text += "\n" + games_table(best_dirs)
        plot_games(best_dirs, out / "best.png")
    elif best and "curves" in study.figures:
        _plot_curves(best, out, study.column)
    if best and "compute" in study.figures:
        _plot_error_against_compute(best, out / "error-vs-compute.png")
    if best and "column" in study.figures:
        name = f"{kind_of(best[0][0].config).figure_slug}-vs-{study.column}.png"
        _plot_against_column(best, study.column, study.choose, out / name)
    if best and "success" in study.figures:
        chains = [(run, row) for run, row in best if study.column in run.settings]
        if chains:
            _plot_against_column(chains, study.column, study.choose,
                                 out / f"success-vs-{study.column}.png", success=True)  # fmt: skip
    (out / BEST_FILE).write_text(text)
    return [row for _, row in best]


def _figure_name(run: PlannedRun) -> str:
    return kind_of(run.config).figure_name(run.config, run.task.games)


def _best_table(best: list[tuple[PlannedRun, dict[str, Any]]], study: Study, seeds: int) -> str:
    if not best:
        return "No run finished.\n"
    chosen = [k for k in study.choose if any(k in run.settings for run, _ in best)]
    others = [k for k in dict.fromkeys(k for run, _ in best for k in run.settings)
              if k not in study.choose]  # fmt: skip
    header = [
        "preset",
        *others,
        *(f"best {k}" for k in chosen),
        f"{_figure_name(best[0][0])} ± s.e. over {seeds} seeds",
    ]
    # Copy runs have no lifetime figure; their second figure is the recalled length.
    kind = kind_of(best[0][0].config)
    second = kind.second_figure
    header.append(second.replace("_", " "))
    counted = kind.multiply_adds is not None
    if counted:
        header.append("multiply-adds / step")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run, row in best:
        cells = [
            run.preset,
            *(run.settings.get(k, "") for k in others),
            *(run.settings.get(k, "") for k in chosen),
            f"{row['final']:.4g} ± {row['final_stderr']:.2g}",
            f"{row[second]:.4g}",
        ]
        if counted:
            cells.append(f"{row['multiply_adds']:,}")
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def method_label(run: PlannedRun, column: str | None) -> str:
    """The method a run belongs to, without the column's value in its name (the preset
    ``ppo-rtu-cartpole-p`` is method ``ppo-rtu`` on env ``cartpole-p``) or its family's (the
    preset ``r2ac-elstm-atari`` is method ``r2ac-elstm`` on env ``atari:Frostbite``). A column
    the grid sets as an override is not in the preset's name (``memory-ppo-gru-bptt-4`` at
    ``memory_length=4`` stays whole)."""
    if column is None or column not in run.config:
        return run.preset
    value = str(run.config[column])
    family, colon, _ = value.partition(":")
    suffixes = ([] if column in run.settings else [value]) + ([family] if colon else [])
    for suffix in suffixes:
        if run.preset.endswith(f"-{suffix}"):
            return run.preset.removesuffix(f"-{suffix}")
    return run.preset


def method_name(run: PlannedRun, column: str | None, choose: tuple[str, ...]) -> str:
    """A method's name in tables and figures: its label, then its grid values other than the
    column's and the chosen keys' (``copy-lstm-tbptt truncation=5``)."""
    rest = [f"{k}={v}" for k, v in run.settings.items() if k != column and k not in choose]
    return " ".join([method_label(run, column), *rest])


def _column_table(best: list[tuple[PlannedRun, dict[str, Any]]], column: str,
                  choose: tuple[str, ...], figure: str = "final") -> str:  # fmt: skip
    """Methods as rows (a method's grid values other than the column's and the chosen keys are
    part of its name), the column key's values as columns, the best run's ``figure`` (with its
    standard error) in each."""

    def method(run: PlannedRun) -> str:
        return method_name(run, column, choose)

    values = list(dict.fromkeys(run.config[column] for run, _ in best))
    methods = list(dict.fromkeys(method(run) for run, _ in best))
    cell = {(method(run), run.config[column]): row for run, row in best}
    lines = ["| method | " + " | ".join(f"{column} {v}" for v in values) + " |",
             "|---|" + "---|" * len(values)]  # fmt: skip
    for method in methods:
        entries = [f"{cell[method, v][figure]:.4g} ± {cell[method, v][f'{figure}_stderr']:.2g}"
                   if (method, v) in cell else "–" for v in values]  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(entries) + " |")
    return "\n".join(lines) + "\n"


def _panel_table(members: list[tuple[PlannedRun, dict[str, Any]]], column: str,
                 choose: tuple[str, ...]) -> str:  # fmt: skip
    """A panel's methods against its x-axis: a key the grids set (in increasing order; a method
    that does not vary it, as the RTU over T-BPTT's T, has one figure under "any"), or a figure
    of the rows (``parameters``: one line per run)."""

    def figure(row) -> str:
        return f"{row['final']:.4g} ± {row['final_stderr']:.2g}"

    if not any(column in run.settings for run, _ in members):  # a figure of the rows
        lines = [f"| method | {column.replace('_', ' ')} | final ± s.e. |", "|---|---|---|"]
        lines += [f"| {method_name(run, column, choose)} | {row[column]:,} | {figure(row)} |"
                  for run, row in members]  # fmt: skip
        return "\n".join(lines) + "\n"
    values = sorted({run.settings[column] for run, _ in members if column in run.settings},
                    key=float)  # fmt: skip
    fixed = any(column not in run.settings for run, _ in members)
    headers = [f"{column} {v}" for v in values] + (["any"] if fixed else [])
    lines = ["| method | " + " | ".join(headers) + " |", "|---|" + "---|" * len(headers)]
    cells: dict[str, dict[str, str]] = {}
    for run, row in members:
        cells.setdefault(method_name(run, column, choose), {})[run.settings.get(column, "any")] = (
            figure(row)
        )
    for method, entries in cells.items():
        keys = [*values, *(["any"] if fixed else [])]
        lines.append(f"| {method} | " + " | ".join(entries.get(k, "–") for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _plot_curves(best, out: Path, column: str | None) -> None:
    """The best runs' learning curves: ``best.png``; control studies with a column (tasks)
    draw one figure per task, ``returns-TASK.png`` (``atari:Pong``: ``returns-atari-Pong.png``)."""
    plot_best = kind_of(best[0][0].config).plot_best
    if plot_best is not None:
        plot_best([(run.config, out / run.task.directory) for run, _ in best], out, column)


def _plot_error_against_compute(best, path: Path) -> None:
    """Best final error against multiply-adds per step, one labelled point per method."""
    from rtrl.experiments.plots import new_figure, save_figure

    fig, ax = new_figure(figsize=(7, 4.5))
    for run, row in best:
        ax.errorbar(
            row["multiply_adds"],
            row["final"],
            yerr=row["final_stderr"],
            fmt="o",
            capsize=3,
            color="C0" if run.config["estimator"] != "tbptt" else "C1",
        )
        ax.annotate(run.preset, (row["multiply_adds"], row["final"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds per step (network and gradient estimator)")
    ax.set_ylabel(f"{_figure_name(best[0][0])}, best step size")
    save_figure(fig, path)


def success_rate(final_return: float) -> float:
    """MemoryChain's success rate from a mean return: each episode returns +1 or -1."""
    return (final_return + 1.0) / 2.0


def _plot_against_column(best, column: str, choose: tuple[str, ...], path: Path,
                         success: bool = False) -> None:  # fmt: skip
    """The best final figure against a numeric key (e.g. the ISI), one line per method;
    ``success``: MemoryChain's success rate, on a log-2 axis of memory lengths."""
    import numpy as np

    from rtrl.experiments.plots import new_figure, save_figure

    fig, ax = new_figure(figsize=(6.5, 4.2))
    methods = list(dict.fromkeys(method_name(run, column, choose) for run, _ in best))
    for index, method in enumerate(methods):
        points = sorted((run.config[column], row["final"], row["final_stderr"]) for run, row
                        in best if method_name(run, column, choose) == method)  # fmt: skip
        x, y, e = (np.array(v, float) for v in zip(*points))
        if success:
            y, e = success_rate(y), e / 2.0
        # Past the ten colours of the cycle, lines change style so that no two look alike.
        ax.errorbar(x, y, yerr=e, marker="os^D"[index // 10 % 4], capsize=3, label=method,
                    linestyle=("-", "--", ":", "-.")[index // 10 % 4])  # fmt: skip
    ax.set_xlabel(column)
    ax.set_ylabel(_figure_name(best[0][0]))
    if success:
        ax.set_xscale("log", base=2)
        ax.set_ylabel("success rate (final window; 0.5 = chance)")
        ax.set_ylim(0.0, 1.02)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _plot_panels(best, panels: dict[str, str], path: Path) -> None:
    """One subplot per panel: the best final figure against the panel's x-axis, one line per
    preset. A preset whose runs do not vary the x-axis (the RTU in a panel over T-BPTT's T) is
    a horizontal line with its standard error as a band."""
    import numpy as np

    from rtrl.experiments.plots import new_figure, save_figure

    fig, axes = new_figure(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    axes = np.atleast_1d(axes)
    for ax, (panel, column) in zip(axes, panels.items()):
        members = [(run, row) for run, row in best if panel in run.panels]
        # One line per preset: a panel varies one key (or, through it, the parameters). Colours
        # go by place in the panel, so that the panels' first presets (the RTU) match.
        for index, method in enumerate(dict.fromkeys(run.preset for run, _ in members)):
            colour = f"C{index % 10}"
            points = [(run, row) for run, row in members if run.preset == method]
            varies = column in points[0][0].settings or not any(
                column in run.settings for run, _ in members
            )  # a figure of the rows varies
            if not varies:
                row = points[0][1]
                ax.axhline(row["final"], color=colour, linestyle="--", label=method)
                ax.axhspan(row["final"] - row["final_stderr"], row["final"] + row["final_stderr"],
                           color=colour, alpha=0.15)  # fmt: skip
                continue
            xs = sorted((float(run.settings.get(column, row.get(column))), row["final"],
                         row["final_stderr"]) for run, row in points)  # fmt: skip
            x, y, e = (np.array(v, float) for v in zip(*xs))
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, color=colour, label=method)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel(column.replace("_", " "))
        if column in ("parameters", "multiply_adds", "units", "truncation"):
            ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(_figure_name(best[0][0]))
    save_figure(fig, path)


def describe(study: Study) -> dict[str, Any]:
    """Size of the default and the paper grid: runs, stream-steps (steps × seeds × games) and
    multiply-adds (prediction runs)."""
    sizes = {}
    for label, paper in (("default", False), ("paper", True)):
        runs = plan(study, paper)
        steps = sum(run.task.stream_steps for run in runs)
        macs = sum(run.task.stream_steps * kind_of(run.config).multiply_adds(run.config)
                   for run in runs if kind_of(run.config).multiply_adds)  # fmt: skip
        sizes[label] = {"runs": len(runs), "stream_steps": steps, "multiply_adds": macs,
                        "seeds": runs[0].task.seeds}  # fmt: skip
    return sizes
