"""The CCN paper's trace-patterning study: presets, compute estimates, sweeps, the ISI option."""

import csv

import numpy as np
import pytest

from rtrl import cli
from rtrl.envs import animal_learning as al
from rtrl.experiments import configuration, presets
from rtrl.experiments.builders import build_prediction as build
from rtrl.experiments.builders import staged_network_of
from rtrl.experiments.compute import multiply_adds
from rtrl.experiments.prediction_runs import run_prediction
from rtrl.experiments.sweep import sweep

TINY = {"steps": "4000", "chunk": "1000", "bin_size": "500", "final_window": "1000"}


def test_paper_settings_of_the_presets():
    ccn = configuration.resolve("ccn")
    assert (ccn["units"], ccn["stage_size"], ccn["paper_steps"]) == (20, 4, 50_000_000)
    assert ccn["stream"] == "javed_trace_patterning" and ccn["lambda"] == 0.99
    assert ccn["optimizer"] == "rmsprop_on_update" and ccn["head_step_per_feature"]
    # At the paper's budget the stages last 10M (CCN) and 5M (constructive) steps.
    paper = {**ccn, "steps": ccn["paper_steps"]}
    assert staged_network_of(paper).stage_steps == 10_000_000
    constructive = configuration.resolve("ccn-constructive")
    paper = {**constructive, "steps": constructive["paper_steps"]}
    assert staged_network_of(paper).stage_steps == 5_000_000
    assert staged_network_of(configuration.resolve("ccn-columnar")).num_stages == 1
    grid = {(configuration.resolve(n)["units"], configuration.resolve(n)["truncation"])
            for n in configuration.preset_names() if n.startswith("ccn-tbptt-")}  # fmt: skip
    assert grid == set(presets.TBPTT_GRID)
    assert configuration.resolve("ccn-tbptt-15-4")["paper_steps"] == 10_000_000
    assert configuration.resolve("isi-ccn")["units"] == 16
    assert configuration.resolve("isi-tbptt", {"isi": "60"})["isi"] == 60


def test_tbptt_compute_is_the_papers_formula():
    for h, t in presets.TBPTT_GRID:
        d = 12
        assert multiply_adds(configuration.resolve(f"ccn-tbptt-{h}-{t}")) == (1 + t) * (
            4 * h * (h + d) + 5 * h
        )


def test_staged_compute_counts_existing_connections_and_the_learning_stage():
    # One stage: the same as columnar RTRL on the same columns.
    columnar = configuration.resolve("ccn-columnar")
    plain = {**columnar, "estimator": "columnar_rtrl", "input_norm_window": 0}
    assert multiply_adds(columnar) == multiply_adds(plain)
    # CCN 20:4 with d = 12: stage k's 4 columns have 4 gates over 12 + 4k inputs, plus u and b.
    rows = [4 * (12 + 4 * k) + 8 for k in range(5)]
    forward = sum(4 * r for r in rows) + 20
    assert multiply_adds(configuration.resolve("ccn")) == forward + 4 * rows[-1] * (4 + 4)


@pytest.mark.slow
def test_a_staged_preset_runs_and_stages_span_the_run(tmp_path):
    config = configuration.resolve("ccn", {**TINY, "units": "4", "stage_size": "2"})
    assert staged_network_of(config).stage_steps == 2000
    summary = run_prediction(config, seeds=2, out=tmp_path, progress=False)
    assert summary["status"] == "complete" and np.isfinite(summary["final_msre_mean"])


def test_bool_and_stage_overrides():
    assert (
        configuration.resolve("ccn", {"head_step_per_feature": "false"})["head_step_per_feature"]
        is False
    )
    with pytest.raises(ValueError, match="bad value 'maybe' for head_step_per_feature"):
        configuration.resolve("ccn", {"head_step_per_feature": "maybe"})
    with pytest.raises(ValueError, match="must divide"):
        build(configuration.resolve("ccn", {"stage_size": "3"}))
    with pytest.raises(ValueError, match="unknown estimator 'rtrl'.*staged_rtrl"):
        build(configuration.resolve("ccn", {"estimator": "rtrl"}))


@pytest.mark.slow
def test_sweep_picks_the_lowest_final_error(tmp_path):
    best = sweep(["ccn-columnar"], "step_size", ["1e-2", "1e-4"], seeds=2, out=tmp_path,
                 overrides={**TINY, "units": "2", "stage_size": "2"}, progress=False)  # fmt: skip
    with open(tmp_path / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {r["step_size"] for r in rows} == {"1e-2", "1e-4"}
    lowest = min(rows, key=lambda r: float(r["final"]))
    assert best[0]["step_size"] == lowest["step_size"]
    assert "| ccn-columnar |" in (tmp_path / "best.md").read_text()
    assert (tmp_path / "best.png").stat().st_size > 0
    assert (tmp_path / "ccn-columnar" / "step_size=1e-2" / "metrics.csv").exists()


@pytest.mark.slow
def test_cli_sweep_and_its_errors(tmp_path, capsys):
    args = ["sweep", "ccn-columnar", "--grid", "step_size=1e-3", "--seeds", "1",
            "--out", str(tmp_path)]  # fmt: skip
    for key, value in {**TINY, "units": "2", "stage_size": "2"}.items():
        args += ["--set", f"{key}={value}"]
    assert cli.main(args) == 0
    assert "| ccn-columnar | 1e-3 |" in capsys.readouterr().out
    assert cli.main(["sweep", "ccn", "--grid", "step_size", "--out", str(tmp_path)]) == 2
    assert "--grid expects key=v1,v2" in capsys.readouterr().err
    assert cli.main(["sweep", "nope", "--grid", "step_size=1", "--out", str(tmp_path)]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_javed_isi_option_sets_the_interval_range():
    stream = al.javed_trace_patterning(isi=50)
    assert stream.config.isi == (40, 60)
    assert al.javed_trace_patterning().config.isi == (24, 36)
    with pytest.raises(ValueError, match="isi must be at least 1"):
        al.javed_trace_patterning(isi=0)
