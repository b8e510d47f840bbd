"""Gradient-alignment test-bed (Javed et al. 2021): how close do cheap estimators come to the
true gradient of a sparsely coupled columnar network?

For each coupling density, a columnar LSTM whose columns read a random ``density`` fraction of
the other columns' h_{t-1} runs over random streams (Bernoulli(0.5) inputs, N(0, 1) regression
targets, a fixed random linear head). With parameters held fixed, the sum of each estimator's
per-step gradients for the recurrent parameters is compared with the BPTT gradient of the summed
loss: cosine similarity and the fraction of parameters whose signs agree, mean and standard error
over seeds (each seed draws new parameters, inputs and targets; the coupling pattern is fixed per
density).

With ``--meta``, the head is itself learned online inside the sequence (w <- w + alpha delta h)
and the estimators also carry each parameter's influence through those head updates; the truth
is autodiff through the unrolled updates.

    python -m rtrl.experiments.gradient_alignment --out runs/gradient-alignment [--meta]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from tqdm import tqdm

from rtrl import cells
from rtrl.experiments.meta_gradient import meta_bptt_grad, meta_online_grad
from rtrl.experiments.plots import new_figure, save_figure
from rtrl.experiments.results import write_table
from rtrl.gradients import bptt, make_estimator, online_value_and_grad

DENSITIES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
DEFAULT_ESTIMATORS = (
    "full_rtrl",
    "columnar_rtrl",
    "snap1",
    "uoro",
    "tbptt_1",
    "tbptt_2",
    "tbptt_5",
    "tbptt_10",
)


def estimator_of(name: str, cell):
    """An estimator by its registry name (``rtrl.gradients.ESTIMATORS``); ``tbptt_T`` is
    "tbptt" with truncation T, so one list can hold several truncations."""
    base, _, truncation = name.partition("_")
    if base == "tbptt" and truncation.isdigit():
        return make_estimator("tbptt", cell, truncation=int(truncation))
    if name == "tbptt":
        raise ValueError("write tbptt with its truncation, e.g. tbptt_4")
    return make_estimator(name, cell)


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


def run_density(density, estimator_names, args, pattern_seed):
    cell = cells.coupled_columns(
        cells.columnar_lstm(args.columns, init_scale=args.init_scale), density, seed=pattern_seed
    )
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)

    @jax.jit
    def truth_of(key):
        params, head, xs, resets, targets, _ = make_problem(cell, key, args.inputs, args.steps)
        if args.meta:
            return meta_bptt_grad(cell, params, head, xs, targets, args.meta_step_size)
        return bptt.value_and_grad(cell, squared_error, params, head, xs, resets, targets)[1][0]

    truths = jax.vmap(truth_of)(keys)
    results = {}
    for name in estimator_names:
        estimator = estimator_of(name, cell)

        @jax.jit
        def scores(key, truth):
            params, head, xs, resets, targets, noise_key = make_problem(
                cell, key, args.inputs, args.steps
            )
            est_state = estimator.init(params, noise_key)
            if args.meta:
                grads = meta_online_grad(
                    estimator, params, head, xs, targets, args.meta_step_size, est_state
                )
            else:
                _, (grads, _) = online_value_and_grad(
                    estimator, squared_error, params, head, xs, resets, targets, est_state
                )
            return alignment(grads, truth)

        cosine, signs = jax.vmap(scores)(keys, truths)
        results[name] = (np.asarray(cosine), np.asarray(signs))
    return results


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def run(args) -> list[dict]:
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(
        json.dumps(
            {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, indent=2
        )
    )
    rows = []
    for index, density in enumerate(tqdm(args.densities, desc="densities", unit="density")):
        results = run_density(density, args.estimators, args, pattern_seed=args.seed + index)
        for name, (cosine, signs) in results.items():
            cos_mean, cos_se = mean_and_stderr(cosine)
            sign_mean, sign_se = mean_and_stderr(signs)
            rows.append(
                {
                    "density": density,
                    "estimator": name,
                    "cosine_mean": cos_mean,
                    "cosine_stderr": cos_se,
                    "sign_agreement_mean": sign_mean,
                    "sign_agreement_stderr": sign_se,
                    "seeds": args.seeds,
                }
            )
    write_table(args.out / "alignment.csv", rows)
    print_table(rows, args.estimators)
    plot(rows, args.estimators, args.out / "alignment.png", args.meta)
    print(f"\nwrote {args.out / 'alignment.csv'} and {args.out / 'alignment.png'}")
    return rows


def print_table(rows, estimator_names):
    densities = sorted({r["density"] for r in rows})
    print("\ncosine similarity with the true gradient (mean over seeds)")
    print(f"{'density':>8}" + "".join(f"{n:>11}" for n in estimator_names))
    for d in densities:
        by_name = {r["estimator"]: r for r in rows if r["density"] == d}
        print(
            f"{d:>8.2f}" + "".join(f"{by_name[n]['cosine_mean']:>11.3f}" for n in estimator_names)
        )
    print("\nfraction of parameters whose gradient sign agrees with the truth")
    print(f"{'density':>8}" + "".join(f"{n:>11}" for n in estimator_names))
    for d in densities:
        by_name = {r["estimator"]: r for r in rows if r["density"] == d}
        print(
            f"{d:>8.2f}"
            + "".join(f"{by_name[n]['sign_agreement_mean']:>11.3f}" for n in estimator_names)
        )


def plot(rows, estimator_names, path: Path, meta: bool):
    fig, axes = new_figure(1, 2, figsize=(10, 4))
    for index, name in enumerate(estimator_names):
        # Alternate line styles: some curves coincide (columnar and SnAp-1 on coupled columns).
        style = "-" if index % 2 == 0 else "--"
        sel = sorted((r for r in rows if r["estimator"] == name), key=lambda r: r["density"])
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
    save_figure(fig, path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gradient-alignment"))
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--inputs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--init-scale", type=float, default=0.5, help="columnar LSTM weights ~ U(-s, s)"
    )
    parser.add_argument(
        "--densities", type=lambda s: [float(v) for v in s.split(",")], default=list(DENSITIES)
    )
    parser.add_argument(
        "--estimators", type=lambda s: s.split(","), default=list(DEFAULT_ESTIMATORS)
    )
    parser.add_argument(
        "--meta",
        action="store_true",
        help="learn the head online inside the sequence (meta-gradient variant)",
    )
    parser.add_argument("--meta-step-size", type=float, default=0.1)
    args = parser.parse_args(argv)
    for name in args.estimators:
        try:
            estimator_of(name, cells.columnar_lstm(1))
        except ValueError as error:
            parser.error(str(error))
    if any(not 0 <= d <= 1 for d in args.densities):
        parser.error("densities must lie in [0, 1]")
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (standard errors)")
    return args


def main(argv=None):
    run(parse_args(argv))


if __name__ == "__main__":
    main()
