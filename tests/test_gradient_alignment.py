"""The gradient-alignment test-bed and its meta-gradient variant."""

import csv

import jax
import jax.numpy as jnp
import pytest
from helpers import assert_trees_close

from rtrl import cells
from rtrl.experiments import gradient_alignment
from rtrl.experiments.meta_gradient import meta_bptt_grad, meta_online_grad
from rtrl.gradients import columnar_rtrl, full_rtrl, truncated_bptt

pytestmark = pytest.mark.float64


def meta_problem(density, steps=9):
    cell = cells.coupled_columns(cells.columnar_lstm(4, init_scale=0.5), density, seed=2)
    params, head, xs, _, targets, _ = gradient_alignment.make_problem(
        cell, jax.random.PRNGKey(0), inputs=5, steps=steps
    )
    return cell, params, head, xs.astype(jnp.float64), targets


@pytest.mark.parametrize("density", [0.0, 0.7])
@pytest.mark.parametrize(
    "make", [full_rtrl, lambda c: truncated_bptt(c, 9)], ids=["full", "tbptt9"]
)
def test_exact_estimators_give_the_exact_meta_gradient(density, make):
    cell, params, head, xs, targets = meta_problem(density)
    truth = meta_bptt_grad(cell, params, head, xs, targets, 0.3)
    estimate = meta_online_grad(make(cell), params, head, xs, targets, 0.3)
    assert_trees_close(estimate, cells.recurrent_params(truth))


def test_meta_gradient_includes_the_head_update_path():
    """With a zero step size the meta-gradient is the plain gradient; with alpha > 0 it is not."""
    cell, params, head, xs, targets = meta_problem(0.0)
    plain = meta_bptt_grad(cell, params, head, xs, targets, 0.0)
    meta = meta_bptt_grad(cell, params, head, xs, targets, 0.3)
    estimate = meta_online_grad(columnar_rtrl(cell), params, head, xs, targets, 0.0)
    assert_trees_close(estimate, cells.recurrent_params(plain))
    assert not jnp.allclose(plain["inputs"]["W"], meta["inputs"]["W"], rtol=1e-3)


def run_small(tmp_path, meta=False):
    args = gradient_alignment.parse_args(
        [
            "--out",
            str(tmp_path),
            "--columns",
            "4",
            "--inputs",
            "5",
            "--steps",
            "8",
            "--seeds",
            "3",
            "--densities",
            "0,1",
            "--estimators",
            "full_rtrl,columnar_rtrl,uoro,tbptt_8",
            *(["--meta"] if meta else []),
        ]
    )
    return gradient_alignment.run(args)


@pytest.mark.slow
def test_alignment_experiment_writes_table_and_plot(tmp_path):
    rows = run_small(tmp_path)
    assert (tmp_path / "alignment.png").stat().st_size > 0
    with open(tmp_path / "alignment.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) == 8
    score = {(r["estimator"], r["density"]): r["cosine_mean"] for r in rows}
    assert score[("full_rtrl", 0.0)] > 0.999999 and score[("full_rtrl", 1.0)] > 0.999999
    assert score[("tbptt_8", 1.0)] > 0.999999  # window covers the whole stream
    assert score[("columnar_rtrl", 0.0)] > 0.999999  # exact without coupling
    assert score[("columnar_rtrl", 1.0)] < 0.9999  # approximate with it
    assert score[("uoro", 1.0)] < 0.99  # one noisy sample


@pytest.mark.slow
def test_alignment_meta_variant_runs(tmp_path):
    rows = run_small(tmp_path, meta=True)
    score = {(r["estimator"], r["density"]): r["cosine_mean"] for r in rows}
    assert score[("full_rtrl", 1.0)] > 0.99999


def test_alignment_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        gradient_alignment.parse_args(["--estimators", "columnar,rtrl9"])
    with pytest.raises(SystemExit):
        gradient_alignment.parse_args(["--densities", "0,1.5"])
