"""Gradient-alignment test-bed (Javed et al. 2021): how close do cheap estimators come to the
true gradient of a sparsely coupled columnar network?

For each coupling density, a columnar LSTM whose columns read a random ``density`` fraction of
the other columns' h_{t-1} runs over random streams (Bernoulli(0.5) inputs, N(0, 1) regression
targets, a fixed random linear head). With parameters held fixed, the sum of each estimator's
per-step gradients for the recurrent parameters is compared with the BPTT gradient of the summed
loss: cosine similarity and the fraction of parameters whose signs agree, mean and standard error
over seeds (each seed draws new parameters, inputs and targets; the coupling pattern is fixed per
density).

With ``meta`` on, the head is itself learned online inside the sequence (w <- w + alpha delta h)
and the estimators also carry each parameter's influence through those head updates; the truth
is autodiff through the unrolled updates.

One run is one density (presets ``gradient-alignment`` and ``gradient-alignment-meta``, kind
``alignment``); the study of that name runs the densities as a grid and draws them together:

    rtrl run gradient-alignment --set density=0.5 --seeds 30
    rtrl study run gradient-alignment --paper
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from rtrl import cells
from rtrl.experiments.plots import new_figure, save_figure
from rtrl.experiments.results import (
    SUMMARY_FILE,
    read_json,
    read_record,
    standard_error,
    write_json,
    write_table,
)
from rtrl.experiments.run_loop import prepare_directory
from rtrl.gradients import bptt, make_estimator, online_value_and_grad
from rtrl.gradients.meta_gradient import meta_bptt_grad, meta_online_grad

DENSITIES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
ALIGNMENT_FILE = "alignment.csv"


def squared_error(head, features, target):
    return 0.5 * (head @ features - target) ** 2


def make_problem(cell, key, inputs: int, steps: int):
    k_params, k_x, k_y, k_head, k_noise = jax.random.split(key, 5)
    params = cell.init(k_params, inputs)
    xs = jax.random.bernoulli(k_x, 0.5, (steps, inputs)).astype(jnp.float32)
    targets = jax.random.normal(k_y, (steps,))
    head = jax.random.normal(k_head, (cell.num_features,)) / jnp.sqrt(cell.num_features)
    return params, head, xs, jnp.zeros(steps, bool), targets, k_noise


def alignment(estimate, truth):
    """Cosine similarity and sign agreement of two recurrent-parameter gradients."""
    e = ravel_pytree(cells.recurrent_params(estimate))[0]
    t = ravel_pytree(cells.recurrent_params(truth))[0]
    cosine = e @ t / (jnp.linalg.norm(e) * jnp.linalg.norm(t) + 1e-30)
    informative = t != 0
    signs = jnp.sum((jnp.sign(e) == jnp.sign(t)) & informative) / jnp.maximum(
        jnp.sum(informative), 1
    )
    return cosine, signs


def run_density(config: dict[str, Any], seeds: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per estimator, the cosine similarity and sign agreement of each seed (``seeds`` values)
    at ``config["density"]``; the coupling pattern is drawn from the seed and the density."""
    density = config["density"]
    pattern_seed = config["seed"] + round(1000 * density)
    cell = cells.coupled_columns(
        cells.columnar_lstm(config["columns"], init_scale=config["init_scale"]),
        density,
        seed=pattern_seed,
    )
    keys = jax.random.split(jax.random.PRNGKey(config["seed"]), seeds)
    inputs, steps, meta = config["inputs"], config["steps"], config["meta"]

    @jax.jit
    def truth_of(key):
        params, head, xs, resets, targets, _ = make_problem(cell, key, inputs, steps)
        if meta:
            return meta_bptt_grad(cell, params, head, xs, targets, config["meta_step_size"])
        return bptt.value_and_grad(cell, squared_error, params, head, xs, resets, targets)[1][0]

    truths = jax.vmap(truth_of)(keys)
    results = {}
    for name in estimator_names(config):
        estimator = make_estimator(name, cell)

        @jax.jit
        def scores(key, truth):
            params, head, xs, resets, targets, noise_key = make_problem(cell, key, inputs, steps)
            est_state = estimator.init(params, noise_key)
            if meta:
                grads = meta_online_grad(
                    estimator, params, head, xs, targets, config["meta_step_size"], est_state
                )
            else:
                _, (grads, _) = online_value_and_grad(
                    estimator, squared_error, params, head, xs, resets, targets, est_state
                )
            return alignment(grads, truth)

        cosine, signs = jax.vmap(scores)(keys, truths)
        results[name] = (np.asarray(cosine), np.asarray(signs))
    return results


def estimator_names(config: dict[str, Any]) -> list[str]:
    """The configuration's estimators (a comma-separated list), each checked."""
    names = [n.strip() for n in config["estimators"].split(",") if n.strip()]
    if not names:
        raise ValueError("estimators is empty; give a list such as full_rtrl,columnar_rtrl,tbptt_5")
    for name in names:
        try:
            make_estimator(name, cells.columnar_lstm(1))
        except (KeyError, ValueError) as error:
            message = error.args[0] if isinstance(error, KeyError) else str(error)
            raise ValueError(f"estimators: {message}") from None
    return names


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), standard_error(values)


def run_alignment(config: dict[str, Any], seeds: int, out: Path) -> dict[str, Any]:
    """The alignment of every estimator at one density, into the run directory ``out``:
    ``alignment.csv`` (one row per estimator) and ``summary.json`` (mean cosine per estimator).
    A finished directory is read back; an unfinished one (seconds of work) starts again."""
    if seeds < 2:
        raise ValueError(
            "--seeds must be at least 2 for the gradient-alignment test-bed (standard errors)"
        )
    estimator_names(config)  # checked before anything is written
    prepare_directory(out, {"config": config, "seeds": seeds})
    summary_path = out / SUMMARY_FILE
    if summary_path.exists():  # written only when the run completes
        return read_json(summary_path)
    rows = []
    results = run_density(config, seeds)
    for name, (cosine, signs) in results.items():
        cos_mean, cos_se = mean_and_stderr(cosine)
        sign_mean, sign_se = mean_and_stderr(signs)
        rows.append({"density": config["density"], "estimator": name,
                     "cosine_mean": cos_mean, "cosine_stderr": cos_se,
                     "sign_agreement_mean": sign_mean, "sign_agreement_stderr": sign_se,
                     "seeds": seeds})  # fmt: skip
    write_table(out / ALIGNMENT_FILE, rows)
    summary = {"status": "complete", "density": config["density"],
               **{f"cosine_{r['estimator']}": r["cosine_mean"] for r in rows}}  # fmt: skip
    write_json(summary_path, summary)
    return summary


def read_alignment(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """The rows of several runs' ``alignment.csv``, ordered by density."""
    rows = []
    for run_dir in run_dirs:
        path = run_dir / ALIGNMENT_FILE
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} has no {ALIGNMENT_FILE}; is it an alignment run?")
        with open(path, newline="") as f:
            rows += [{k: v if k == "estimator" else int(v) if k == "seeds" else float(v)
                      for k, v in r.items()} for r in csv.DictReader(f)]  # fmt: skip
    return sorted(rows, key=lambda r: r["density"])


def alignment_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per density, per estimator the mean cosine and (sign agreement)."""
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    lines = ["| density | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for density in sorted({r["density"] for r in rows}):
        by_name = {r["estimator"]: r for r in rows if r["density"] == density}
        cells_ = [f"{by_name[n]['cosine_mean']:.3f} ({by_name[n]['sign_agreement_mean']:.3f})"
                  if n in by_name else "–" for n in names]  # fmt: skip
        lines.append(f"| {density:g} | " + " | ".join(cells_) + " |")
    return "\n".join(lines) + "\n"


def report(run_dirs: list[Path], path: Path) -> str:
    """Draw the alignment runs in ``run_dirs`` (one per density) into ``path``; returns their
    table (``alignment_table``)."""
    rows = read_alignment(run_dirs)
    plot(rows, path, meta=read_record(run_dirs[0])["config"]["meta"])
    return alignment_table(rows)


def plot(rows: list[dict[str, Any]], path: Path, meta: bool) -> Path:
    """Cosine similarity and sign agreement against density, one line per estimator."""
    fig, axes = new_figure(1, 2, figsize=(10, 4))
    for index, name in enumerate(dict.fromkeys(r["estimator"] for r in rows)):
        # Alternate line styles: some curves coincide (columnar and SnAp-1 on coupled columns).
        style = "-" if index % 2 == 0 else "--"
        sel = [r for r in rows if r["estimator"] == name]
        d = [r["density"] for r in sel]
        for ax, key in zip(axes, ("cosine", "sign_agreement")):
            mean = np.array([r[f"{key}_mean"] for r in sel])
            err = np.array([r[f"{key}_stderr"] for r in sel])
            ax.plot(d, mean, style, marker="o", ms=3, label=name, zorder=2 + index % 2)
            ax.fill_between(d, mean - err, mean + err, alpha=0.2)
    axes[0].set_ylabel("cosine similarity with the true gradient")
    axes[1].set_ylabel("fraction of parameters with the right sign")
    for ax in axes:
        ax.set_xlabel("coupling density between columns")
    axes[1].legend(fontsize=8)
    fig.suptitle(
        "Gradient alignment"
        + (" (meta-gradient through online head updates)" if meta else "")
        + ", coupled columnar LSTM"
    )
    return save_figure(fig, path)
