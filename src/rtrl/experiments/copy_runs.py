"""Copy-task runs (``kind = "copy"``): a sequence classifier trained on fresh batches of copy-task
sequences (``rtrl.envs.copy_task``), one update per batch, seeds vmapped, through the run loop.

After every chunk of ``chunk`` training sequences each seed is scored on its own validation set
of ``validation_size`` sequences, drawn once from the seed's key: per-bit accuracy and the
fraction of sequences recalled without error, and the recalled length: the longest k such that
every validation pattern of k bits or fewer is recalled without error. ``curve.csv`` has one
row per chunk and seed; ``summary.json`` the final figures (the last point) and the sequences
each seed needed to recall every validation sequence (null when it never did).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rtrl import compiled
from rtrl.envs.copy_task import NUM_CLASSES, NUM_INPUTS, CopyBatch, copy_batch
from rtrl.experiments.builders import cell_of
from rtrl.experiments.plots import new_figure, plot_mean_band, save_figure
from rtrl.experiments.results import read_record, read_seed_table, run_name, standard_error
from rtrl.experiments.run_loop import Program, chunks_for, run_loop
from rtrl.gradients import make_estimator
from rtrl.learners.optim import make_optimizer
from rtrl.learners.sequence import (
    bptt_sequence_classifier,
    classification_metrics,
    sequence_classifier,
    sequences_right,
)

CURVE_COLUMNS = ("loss", "accuracy", "sequence_accuracy", "recalled_length")


def recalled_length(logits: jax.Array, batch: CopyBatch, max_length: int) -> jax.Array:
    """The longest k such that every pattern of ``batch`` with k bits or fewer is recalled
    without error (``max_length`` when every pattern is)."""
    right = sequences_right(logits, batch.targets, batch.scored)
    shortest_wrong = jnp.min(jnp.where(right, max_length + 1, batch.lengths))
    return shortest_wrong - 1


def build_classifier(config: dict[str, Any]):
    cell = cell_of(config)
    optimizer = make_optimizer(
        "clipped_adam",
        config["step_size"],
        max_grad_norm=config["max_grad_norm"],
        eps=config["adam_eps"],
    )
    if config["estimator"] == "bptt":  # backpropagation through whole sequences
        return bptt_sequence_classifier(cell, NUM_CLASSES, optimizer)
    if config["estimator"] == "tbptt":  # through segments of T steps, as batch T-BPTT does
        return bptt_sequence_classifier(cell, NUM_CLASSES, optimizer, config["truncation"])
    estimator = make_estimator(config["estimator"], cell, truncation=config["truncation"])
    return sequence_classifier(estimator, NUM_CLASSES, optimizer)


def copy_program(config: dict[str, Any], seeds: int) -> Program:
    learner = build_classifier(config)
    batch, length = config["batch_size"], config["max_length"]
    if config["chunk"] % batch:
        raise ValueError(f"chunk {config['chunk']} must be a whole number of batches of "
                         f"{batch} sequences")  # fmt: skip
    updates = config["chunk"] // batch

    def init(key):
        k_params, k_valid, key = jax.random.split(key, 3)
        return learner.init(k_params, NUM_INPUTS), k_valid, key

    def run_chunk(state, index):
        params_state, k_valid, key = state

        def update(params_state, step_key):
            data = copy_batch(step_key, batch, length)
            return learner.train(params_state, data.inputs, data.targets, data.scored)

        keys = jax.random.split(jax.random.fold_in(key, index), updates)
        params_state, metrics = jax.lax.scan(update, params_state, keys)
        valid = copy_batch(k_valid, config["validation_size"], length)
        logits = learner.predict(params_state.params, valid.inputs)
        scored = classification_metrics(logits, valid.targets, valid.scored)
        outputs = {"train_loss": metrics["loss"].mean(), **scored,
                   "recalled_length": recalled_length(logits, valid, length)}  # fmt: skip
        return (params_state, k_valid, key), outputs

    # The chunk index is traced, not static: one compilation serves every chunk.
    init, run_chunk = compiled.jit(jax.vmap(init)), compiled.jit(jax.vmap(run_chunk, (0, None)))
    seed_keys = jax.random.split(jax.random.PRNGKey(config["seed"]), seeds)
    return Program(lambda: init(seed_keys), run_chunk, config["chunk"])


class CopyRecorder:
    """One row per chunk and seed: training sequences so far, the chunk's mean training loss,
    and the validation loss, per-bit and per-sequence accuracy."""

    metrics_file = "curve.csv"
    header = ["seed", "step", "train_loss", *(f"validation_{c}" for c in CURVE_COLUMNS)]
    watched = "train_loss"

    def __init__(self, chunk: int):
        self.chunk = chunk

    def initial(self):
        return ()

    def record(self, carry, index, outputs):
        rows = []
        for seed in range(len(outputs["train_loss"])):
            values = [outputs["train_loss"][seed], *(outputs[c][seed] for c in CURVE_COLUMNS)]
            rows.append([seed, (index + 1) * self.chunk, *(f"{float(v):.6g}" for v in values)])
        return carry, rows

    def finish(self, carry, chunks):
        return []

    def summary(self, out: Path) -> dict[str, Any]:
        path = out / self.metrics_file
        if not path.exists():
            return {"sequences": 0}
        summary: dict[str, Any] = {}
        tables = {}
        for column in ("accuracy", "sequence_accuracy", "recalled_length"):
            sequences, tables[column] = read_seed_table(path, f"validation_{column}")
            final = tables[column][:, -1]
            summary.update({f"final_{column}_per_seed": final.tolist(),
                            f"final_{column}_mean": float(np.mean(final)),
                            f"final_{column}_stderr": standard_error(final)})  # fmt: skip
        summary["final_recalled_length_per_seed"] = [
            int(k) for k in summary["final_recalled_length_per_seed"]
        ]
        summary["sequences"] = int(sequences[-1])
        summary["sequences_to_all_recalled"] = [
            next((int(n) for n, a in zip(sequences, row) if a >= 1.0), None)
            for row in tables["sequence_accuracy"]
        ]
        return summary


def run_copy(
    config: dict[str, Any], seeds: int, out: Path, progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train on ``config["steps"]`` sequences per seed, rounded up to whole chunks."""
    program = copy_program(config, seeds)
    chunks = chunks_for(config["steps"], program.chunk_steps, exact=False,
                        announce=progress, unit="sequences")  # fmt: skip
    record = {"config": config, "seeds": seeds, "steps_run": chunks * program.chunk_steps}
    return run_loop(program, CopyRecorder(config["chunk"]), out, record, chunks, progress,
                    stop_after)  # fmt: skip


def plot_copy_runs(run_dirs: list[Path], out: Path) -> Path:
    """Validation per-sequence and per-bit accuracy against training sequences, mean over
    seeds +- standard error."""
    fig, axes = new_figure(1, 2, figsize=(11, 4.2))
    for run_dir in run_dirs:
        config = read_record(run_dir)["config"]
        label = f"{run_name(run_dir)} ({config['cell']} {config['units']}, {config['estimator']})"
        for ax, column in zip(axes, ("sequence_accuracy", "accuracy")):
            sequences, table = read_seed_table(run_dir / CopyRecorder.metrics_file,
                                               f"validation_{column}")  # fmt: skip
            plot_mean_band(ax, sequences, table, label)
    for ax, what in zip(axes, ("sequences recalled without error", "bits recalled")):
        ax.set_xlabel("training sequences")
        ax.set_ylabel(f"validation: {what}")
    axes[0].legend(fontsize=8)
    return save_figure(fig, out)
