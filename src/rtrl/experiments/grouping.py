"""Runs that differ only in their step size run as one program: the step sizes as data.

The optimisers hold their step size in their state (``rtrl.learners.optim``), so one compiled
program serves every value, and a grid of k step sizes x n seeds runs as k blocks of n rows side
by side, as seeds run, instead of k programs compiled and run one after another. Each block's
seeds use the keys a run of its own would use, so its numbers are that run's.

``group_tasks`` gathers a study's unstarted prediction runs that differ only in ``step_size``
into grouped tasks (at most one per worker, so the cores stay busy), each running into
``.grouped/<id>`` under the study directory; ``outcomes`` splits a finished grouped run into
the run directories of its members (``rtrl.experiments.prediction_runs.split_grouped_prediction``),
which are then finished runs like any other, and removes the grouped directory. Runs that have
started on their own (an interrupted study) resume on their own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterator

from rtrl.experiments.executors import Task
from rtrl.experiments.kinds import kind_of

GROUPED_KEY = "step_size"
GROUPS_DIRECTORY = ".grouped"


def groupable(task: Task, root: Path) -> bool:
    """Prediction runs on a generated stream, not yet started in their own directory."""
    config = task.config
    return (kind_of(config).groupable(config) and not task.games
            and not (root / task.directory).exists())  # fmt: skip


def _identity(task: Task) -> str:
    rest = {k: v for k, v in task.config.items() if k != GROUPED_KEY}
    return json.dumps([rest, task.seeds], sort_keys=True, default=str)


def _grouped(members: list[Task]) -> Task:
    config = {**members[0].config, GROUPED_KEY: [m.config[GROUPED_KEY] for m in members]}
    digest = hashlib.sha1(json.dumps([m.directory for m in members]).encode()).hexdigest()[:12]
    return Task(config, members[0].seeds, f"{GROUPS_DIRECTORY}/{digest}", members=tuple(members))


def group_tasks(tasks: list[Task], root: Path, parallel_runs: int = 1) -> list[Task]:
    """``tasks`` with the groupable ones that differ only in the step size gathered into
    grouped tasks, each set split into at most ``parallel_runs`` groups of near-equal size."""
    sets: dict[str, list[Task]] = {}
    out: list[Task | str] = []
    for task in tasks:
        if not groupable(task, root):
            out.append(task)
            continue
        identity = _identity(task)
        if identity not in sets:
            sets[identity] = []
            out.append(identity)
        sets[identity].append(task)
    result = []
    for entry in out:
        if isinstance(entry, Task):
            result.append(entry)
            continue
        members = sets[entry]
        if len(members) == 1:
            result.extend(members)
            continue
        parts = max(1, min(parallel_runs, len(members)))
        size = -(-len(members) // parts)
        for part in (members[i : i + size] for i in range(0, len(members), size)):
            result.append(_grouped(part) if len(part) > 1 else part[0])
    return result


def outcomes(task: Task, summary: dict[str, Any], root: Path
             ) -> Iterator[tuple[Task, dict[str, Any]]]:  # fmt: skip
    """(run, summary) for a finished task: itself, or each member of a grouped run, written
    into its own directory (each member is credited an equal share of the wall time)."""
    if not task.members:
        yield task, summary
        return
    from rtrl.experiments.prediction_runs import split_grouped_prediction

    group = root / task.directory
    members = [(member.config, root / member.directory) for member in task.members]
    summaries = split_grouped_prediction(group, members, task.seeds)
    shutil.rmtree(group)
    if not any(group.parent.iterdir()):
        group.parent.rmdir()
    share = summary.get("seconds", 0.0) / len(task.members)
    for member, member_summary in zip(task.members, summaries):
        yield member, {**member_summary, "seconds": share}
