"""The gradient-alignment test-bed and its meta-gradient variant."""

import json

import jax
import jax.numpy as jnp
import pytest
from helpers import assert_trees_close

from rtrl import cells, cli
from rtrl.experiments import configuration, engine, gradient_alignment
from rtrl.gradients import columnar_rtrl, full_rtrl, truncated_bptt
from rtrl.gradients.meta_gradient import meta_bptt_grad, meta_online_grad

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


SMALL = {"columns": "4", "inputs": "5", "steps": "8",
         "estimators": "full_rtrl,columnar_rtrl,uoro,tbptt_8"}  # fmt: skip


def run_small(tmp_path, meta=False):
    """Densities 0 and 1, 3 seeds: the rows of both runs."""
    preset = "gradient-alignment-meta" if meta else "gradient-alignment"
    run_dirs = []
    for density in ("0", "1"):
        config = configuration.resolve(preset, {**SMALL, "density": density})
        summary = engine.run(config, 3, tmp_path / density, progress=False)
        assert summary["status"] == "complete"
        run_dirs.append(tmp_path / density)
    return run_dirs, gradient_alignment.read_alignment(run_dirs)


@pytest.mark.slow
def test_alignment_runs_write_table_and_plot(tmp_path, capsys):
    run_dirs, rows = run_small(tmp_path)
    assert len(rows) == 8
    score = {(r["estimator"], r["density"]): r["cosine_mean"] for r in rows}
    assert score[("full_rtrl", 0.0)] > 0.999999 and score[("full_rtrl", 1.0)] > 0.999999
    assert score[("tbptt_8", 1.0)] > 0.999999  # window covers the whole stream
    assert score[("columnar_rtrl", 0.0)] > 0.999999  # exact without coupling
    assert score[("columnar_rtrl", 1.0)] < 0.9999  # approximate with it
    assert score[("uoro", 1.0)] < 0.99  # one noisy sample
    summary = json.loads((run_dirs[1] / "summary.json").read_text())
    assert summary["cosine_full_rtrl"] == pytest.approx(score[("full_rtrl", 1.0)])
    # A finished run is read back, not recomputed; plotting draws both densities.
    again = engine.run(configuration.resolve("gradient-alignment", {**SMALL, "density": "1"}), 3,
                       run_dirs[1], progress=False)  # fmt: skip
    assert again == summary
    assert cli.main(["plot", *map(str, run_dirs), "--out", str(tmp_path / "a.png")]) == 0
    assert "| 1 | 1.000 (1.000) |" in capsys.readouterr().out
    assert (tmp_path / "a.png").stat().st_size > 0


@pytest.mark.slow
def test_alignment_meta_variant_runs(tmp_path):
    _, rows = run_small(tmp_path, meta=True)
    score = {(r["estimator"], r["density"]): r["cosine_mean"] for r in rows}
    assert score[("full_rtrl", 1.0)] > 0.99999


def test_alignment_rejects_bad_settings(tmp_path, capsys):
    args = ["run", "gradient-alignment", "--out", str(tmp_path / "x")]
    assert cli.main(args + ["--set", "estimators=columnar,rtrl9"]) == 2
    assert "estimators: unknown estimator 'columnar'" in capsys.readouterr().err
    assert cli.main(args + ["--set", "density=1.5"]) == 2
    assert "density must lie in [0, 1]" in capsys.readouterr().err
    assert cli.main(args + ["--seeds", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
