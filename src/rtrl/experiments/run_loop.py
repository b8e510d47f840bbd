"""The one run loop every experiment goes through.

An experiment is a ``Program`` (its compiled step, run a chunk at a time for all seeds at once)
and a ``Recorder`` (what a chunk's outputs add to the run directory). ``run_loop`` drives them:

- it refuses a directory that holds a different run, and a path that is a file;
- it runs the chunks with a progress bar (steps/s over all seeds, ETA);
- after each chunk it appends the recorder's rows to the metrics CSV, then saves the program's
  state, the recorder's carry and the row count in ``checkpoint.npz`` (atomically), so a run
  stopped at any point resumes from the last completed chunk with the numbers an uninterrupted
  run gives (rows written after the checkpoint are dropped on resume);
- a non-finite output ends the run with ``DivergedError`` (after writing what was scored);
- Ctrl-C ends it with ``RunInterrupted``, which says where it stopped and how to resume.

The loop knows nothing about what is learned, so any executor (a process pool, a cluster) can
run ``run_loop`` for a run directory wherever the program can be built.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from rtrl.experiments.results import (
    CONFIG_FILE,
    SUMMARY_FILE,
    append_rows,
    read_json,
    truncate_rows,
    write_json,
)
from rtrl.experiments.run_logging import open_loggers
from rtrl.files import atomic_path

CHECKPOINT_FILE = "checkpoint.npz"


class DivergedError(RuntimeError):
    """A learner produced a non-finite value; the run directory keeps what was scored."""


class RunInterrupted(RuntimeError):
    """The run was stopped (Ctrl-C) between checkpoints; the same command resumes it."""


class Program(NamedTuple):
    """A chunked experiment for a fixed number of seeds.

    ``init() -> state``; ``run_chunk(state, index) -> (state, outputs)`` advances every seed by
    ``chunk_steps`` steps (``index`` counts chunks from 0, for chunk keys); ``outputs`` is a
    dict of arrays with the seed axis first. ``checkpointable``: False when the state holds
    objects outside JAX (host environments); such runs restart when stopped."""

    init: Callable[[], Any]
    run_chunk: Callable[[Any, int], tuple[Any, dict[str, Any]]]
    chunk_steps: int
    checkpointable: bool = True


class Recorder(Protocol):
    """Turns chunk outputs into rows of one CSV file and a summary."""

    metrics_file: str  # the CSV file in the run directory
    header: list[str]
    watched: str  # the output whose non-finite values mean divergence (named in the error)

    def initial(self) -> Any:
        """The carry before the first chunk (a tree of arrays, saved in checkpoints)."""

    def record(self, carry: Any, index: int, outputs: dict[str, Any]) -> tuple[Any, list]:
        """Rows for chunk ``index``; returns (carry, rows)."""

    def finish(self, carry: Any, chunks: int) -> list:
        """Rows owed after the last chunk (e.g. a tail scored without look-ahead)."""

    def summary(self, out: Path) -> dict[str, Any]:
        """Statistics of what the metrics file holds (``status`` is added by the loop)."""


def _save_checkpoint(path: Path, tree: Any, **extra: Any) -> None:
    leaves = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}
    with atomic_path(path) as temporary:
        np.savez(temporary, **leaves, **{k: np.asarray(v) for k, v in extra.items()})


def _load_checkpoint(path: Path, like: Any) -> tuple[Any, dict[str, np.ndarray]]:
    data = np.load(path)
    leaves, treedef = jax.tree.flatten(like)
    restored = [jnp.asarray(data[f"leaf_{i}"], dtype=x.dtype) for i, x in enumerate(leaves)]
    extra = {k: data[k] for k in data.files if not k.startswith("leaf_")}
    return jax.tree.unflatten(treedef, restored), extra


def refuse_file(out: Path) -> None:
    """A run directory cannot be a path that names a file."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory for the run")


def another_run(out: Path) -> ValueError:
    """The error for a run directory that holds a run with another configuration."""
    return ValueError(
        f"{out} holds a run with a different configuration; choose another --out "
        "or delete that directory"
    )


def prepare_directory(out: Path, record: dict[str, Any]) -> None:
    """Create ``out`` and write ``config.json``; refuse a file, or a directory holding another
    run's configuration."""
    refuse_file(out)
    config_path = out / CONFIG_FILE
    if config_path.exists() and read_json(config_path) != record:
        raise another_run(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(config_path, record)


def run_loop(
    program: Program,
    recorder: Recorder,
    out: Path,
    record: dict[str, Any],
    chunks: int,
    progress: bool = True,
    stop_after: int | None = None,
    stop_on_divergence: bool = True,
) -> dict[str, Any]:
    """Run (or resume) ``chunks`` chunks of ``program`` into ``out``; returns the summary,
    whose ``status`` is complete, partial (``stop_after`` chunks ran) or diverged.
    ``stop_on_divergence=False``: run on past non-finite outputs (a grouped run, whose
    members diverge apart, records them and is split afterwards)."""
    prepare_directory(out, record)
    seeds = record["seeds"]
    metrics_path, checkpoint_path = out / recorder.metrics_file, out / CHECKPOINT_FILE
    state, carry = program.init(), recorder.initial()
    start, rows_written, finished = 0, 0, False
    if checkpoint_path.exists() and program.checkpointable:
        (state, carry), saved = _load_checkpoint(checkpoint_path, (state, carry))
        start, rows_written = int(saved["next_chunk"]), int(saved["rows_written"])
        finished = bool(saved["finished"])
        truncate_rows(metrics_path, rows_written)
    elif metrics_path.exists():  # nothing to resume from: start again
        metrics_path.unlink()

    def summarise(status: str) -> dict[str, Any]:
        summary = {"status": status, **recorder.summary(out)}
        write_json(out / SUMMARY_FILE, summary)
        return summary

    def checkpoint(next_chunk: int, done: bool) -> None:
        if program.checkpointable:
            _save_checkpoint(checkpoint_path, (state, carry), next_chunk=next_chunk,
                             rows_written=rows_written, finished=done)  # fmt: skip

    steps = program.chunk_steps
    last = chunks if stop_after is None else min(chunks, start + stop_after)
    bar = tqdm(total=chunks * steps * seeds, initial=start * steps * seeds, unit="step",
               unit_scale=True, disable=not progress, desc=out.name)  # fmt: skip
    with open_loggers(out, record) as loggers:  # TensorBoard, W&B: mirrors of the metrics

        def append(rows: list) -> int:
            for logger in loggers:
                logger.write(recorder.header, rows)
            return append_rows(metrics_path, recorder.header, rows)

        index = start
        try:
            for index in range(start, last):
                state, outputs = program.run_chunk(state, index)
                outputs = jax.tree.map(np.asarray, outputs)
                watched = outputs[recorder.watched].reshape(seeds, -1)
                carry, rows = recorder.record(carry, index, outputs)
                rows_written += append(list(rows))
                bad = ~np.isfinite(watched).all(axis=1)
                if bad.any() and stop_on_divergence:
                    summarise("diverged")
                    kept = (f"the {rows_written} rows recorded before are kept in {metrics_path}"
                            if rows_written else "nothing had been recorded yet")  # fmt: skip
                    raise DivergedError(
                        f"non-finite {recorder.watched} in steps {index * steps}-"
                        f"{(index + 1) * steps} for seeds {np.flatnonzero(bad).tolist()}; "
                        f"{kept}. Lower step_size (--set step_size=...) and start a new run "
                        "directory."
                    )
                checkpoint(index + 1, False)
                bar.update(steps * seeds)
        except KeyboardInterrupt:
            bar.close()
            summarise("interrupted")
            where = (f"after step {index * steps} of {chunks * steps}" if program.checkpointable
                     else "(this run cannot be checkpointed; it starts again)")  # fmt: skip
            raise RunInterrupted(
                f"interrupted {where}; run the same command again to resume ({out})"
            ) from None
        bar.close()
        if last < chunks:
            return summarise("partial")
        if not finished:
            rows_written += append(list(recorder.finish(carry, chunks)))
            checkpoint(chunks, True)
        return summarise("complete")


def chunks_for(steps: int, chunk_steps: int, exact: bool, announce: bool = False,
               unit: str = "steps") -> int:  # fmt: skip
    """The number of chunks a budget of ``steps`` takes. ``exact``: the budget must be a whole
    number of chunks (an error naming the nearest valid budgets otherwise); else it is rounded
    up to whole chunks (the run directory records the steps run), and ``announce`` says so in
    one line on standard error (``unit``: what a step counts)."""
    if steps < 1:
        raise ValueError(f"steps ({steps}) must be at least 1")
    if exact and steps % chunk_steps:
        below = steps - steps % chunk_steps
        nearest = f"{below} or {below + chunk_steps}" if below else f"{chunk_steps}"
        raise ValueError(
            f"steps ({steps}) must be a multiple of the {chunk_steps}-step chunk: use --steps "
            f"{nearest}, or change chunk"
        )
    chunks = -(-steps // chunk_steps)
    if announce and chunks * chunk_steps != steps:
        plural = "s" if chunks > 1 else ""
        print(f"{steps} {unit} is not a whole number of {chunk_steps}-{unit.rstrip('s')} chunks: "
              f"running {chunks * chunk_steps} ({chunks} chunk{plural}); give --steps a multiple "
              f"of {chunk_steps} to run exactly that", file=sys.stderr)  # fmt: skip
    return chunks
