"""Prediction runs (rtrl.experiments.prediction_runs) and the command line."""

import json

import jax.numpy as jnp
import pytest

from rtrl import cli
from rtrl.experiments import builders, configuration
from rtrl.experiments.prediction_runs import run_prediction
from rtrl.experiments.results import read_metrics
from rtrl.experiments.run_loop import DivergedError

SMALL = {"steps": "8000", "chunk": "2000", "bin_size": "1000", "final_window": "2000",
         "units": "3"}  # fmt: skip


def small_config(preset="tp-columnar-lstm", **extra):
    return configuration.resolve(preset, {**SMALL, **extra})


@pytest.mark.slow
def test_run_writes_config_metrics_and_summary(tmp_path):
    summary = run_prediction(small_config(), seeds=2, out=tmp_path, progress=False)
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["seeds"] == 2 and record["config"]["units"] == 3
    steps, table = read_metrics(tmp_path)
    # 4 chunks of 2 bins; the last chunk loses its unreliable tail (10 / (1 - 0.9) = 100 steps).
    assert table.shape == (2, 7) and list(steps) == [1000 * (i + 1) for i in range(7)]
    assert summary["status"] == "complete" and len(summary["final_msre_per_seed"]) == 2
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


@pytest.mark.slow
def test_resume_gives_the_same_results_as_an_uninterrupted_run(tmp_path):
    config = small_config("tp-tbptt-lstm")
    whole = run_prediction(config, seeds=2, out=tmp_path / "whole", progress=False)
    partial = run_prediction(config, 2, tmp_path / "resumed", progress=False, stop_after=2)
    assert partial["status"] == "partial"
    resumed = run_prediction(config, seeds=2, out=tmp_path / "resumed", progress=False)
    assert resumed == whole
    resumed_bytes = (tmp_path / "resumed" / "metrics.csv").read_bytes()
    assert (tmp_path / "whole" / "metrics.csv").read_bytes() == resumed_bytes
    assert b"\r" not in resumed_bytes  # one kind of line end
    # Re-running a finished run changes nothing.
    assert run_prediction(config, seeds=2, out=tmp_path / "whole", progress=False) == whole


@pytest.mark.slow
def test_divergence_stops_cleanly(tmp_path):
    config = small_config(optimizer="sgd", step_size="1e30")
    expected = "non-finite value in steps 0-2000.*nothing had been recorded yet.*Lower step_size"
    with pytest.raises(DivergedError, match=expected):
        run_prediction(config, seeds=2, out=tmp_path, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
    assert (tmp_path / "config.json").exists()


@pytest.mark.slow
def test_divergence_keeps_what_was_already_scored(tmp_path, monkeypatch):
    config = small_config()
    run_prediction(config, seeds=2, out=tmp_path, progress=False, stop_after=2)
    scored = (tmp_path / "metrics.csv").read_text()
    real_build = builders.build_prediction

    def diverging_build(config):  # the same run, whose values turn to NaN from now on
        stream, learner = real_build(config)

        def step(state, *args):
            state, metrics = learner.step(state, *args)
            return state, {**metrics, "value": metrics["value"] * jnp.nan}

        return stream, learner._replace(step=step)

    monkeypatch.setattr(builders, "build_prediction", diverging_build)
    with pytest.raises(DivergedError, match="steps 4000-6000"):
        run_prediction(config, seeds=2, out=tmp_path, progress=False)
    kept = (tmp_path / "metrics.csv").read_text()
    assert kept.startswith(scored) and len(kept) > len(scored)  # chunk 2 was scored too

    def not_strict(constant):
        raise AssertionError(f"summary.json holds {constant}, which strict JSON does not allow")

    text = (tmp_path / "summary.json").read_text()
    assert json.loads(text, parse_constant=not_strict)["status"] == "diverged"


@pytest.mark.slow
def test_a_directory_with_another_configuration_is_refused(tmp_path):
    run_prediction(small_config(), seeds=1, out=tmp_path, progress=False, stop_after=1)
    with pytest.raises(ValueError, match="different configuration"):
        run_prediction(small_config(units="4"), seeds=1, out=tmp_path, progress=False)


def test_bad_schedule_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="chunk .* must be a positive multiple of bin_size"):
        run_prediction(small_config(bin_size="1500"), seeds=1, out=tmp_path, progress=False)


def test_cli_messages_for_bad_input(capsys, tmp_path):
    assert cli.main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'nope'; valid presets: ac-rtu-cartpole-p" in err
    assert "atari-ccn, atari-ccn-20-4, atari-columnar" in err
    assert cli.main(["run", "tp-linear-rtu", "--set", "bogus=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'bogus'" in err and "valid keys: bias_step_per_feature, bin_size" in err
    assert cli.main(["run", "tp-linear-rtu", "--set", "units=1.5"]) == 2
    assert "bad value '1.5' for units: expected int" in capsys.readouterr().err
    assert cli.main(["run", "tp-linear-rtu", "--set", "units"]) == 2
    assert "--set expects key=value" in capsys.readouterr().err
    out = tmp_path / "x"
    assert cli.main(["run", "tp-linear-rtu", "--set", "cell=gru", "--out", str(out)]) == 2
    assert "unknown cell 'gru'" in capsys.readouterr().err and not out.exists()
    assert cli.main(["run", "tp-linear-rtu", "--paper", "--steps", "5"]) == 2
    assert "either --steps or --paper" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path / "missing")]) == 2
    assert "has no config.json; is it a run directory?" in capsys.readouterr().err
    study = tmp_path / "a-study"
    study.mkdir()
    (study / "study.csv").write_text("run,status\n")
    (study / "best.png").write_bytes(b"")
    assert cli.main(["plot", str(study)]) == 2
    err = capsys.readouterr().err
    assert f"{study} is a study or sweep, not a run: its figures are in it (best.png)" in err


@pytest.mark.parametrize(
    "setting, message",
    [
        ("units=inf", "bad value 'inf' for units: expected int"),
        ("units=-2", "units must be at least 1, got -2"),
        ("units=0", "units must be at least 1, got 0"),
        ("step_size=nan", "step_size must be a finite number, got nan"),
        ("step_size=0", "step_size must be positive"),
        ("lambda=1.5", "lambda must lie in [0, 1]"),
        ("learning_rate=0.1", "'learning_rate' is now called 'step_size': use --set step_size=0.1"),
        ("steps=9000", "steps (9000) must be a multiple of the 2000-step chunk: use --steps 8000"),
    ],
)
def test_bad_values_are_one_line_errors(setting, message, capsys, tmp_path):
    args = ["run", "tp-linear-rtu", "--out", str(tmp_path / "run")]
    for key, value in {**SMALL, "steps": "8000"}.items():
        args += ["--set", f"{key}={value}"]
    assert cli.main([*args, "--set", setting]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file_is_refused(capsys, tmp_path):
    existing = tmp_path / "file.txt"
    existing.write_text("keep me")
    assert cli.main(["run", "tp-linear-rtu", "--out", str(existing)]) == 2
    assert f"--out {existing} is a file; give a directory" in capsys.readouterr().err
    assert existing.read_text() == "keep me"


@pytest.mark.slow
def test_interrupted_run_says_where_it_stopped_and_resumes(capsys, tmp_path, monkeypatch):
    from rtrl.experiments import prediction_runs

    args = ["run", "tp-columnar-lstm", "--seeds", "2", "--out", str(tmp_path / "run")]
    for key, value in SMALL.items():
        args += ["--set", f"{key}={value}"]
    real_program = prediction_runs.prediction_program

    def interrupted_program(*a):  # Ctrl-C during the third chunk
        program = real_program(*a)

        def run_chunk(state, index):
            if index == 2:
                raise KeyboardInterrupt
            return program.run_chunk(state, index)

        return program._replace(run_chunk=run_chunk)

    monkeypatch.setattr(prediction_runs, "prediction_program", interrupted_program)
    assert cli.main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted after step 4000 of 8000; run the same command again to resume" in err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(prediction_runs, "prediction_program", real_program)
    assert cli.main(args) == 0
    whole = run_prediction(small_config(), seeds=2, out=tmp_path / "whole", progress=False)
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == whole


@pytest.mark.slow
def test_cli_list_run_and_plot(capsys, tmp_path):
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in configuration.preset_names())
    args = ["run", "tc-linear-rtu", "--seeds", "2", "--out", str(tmp_path / "run")]
    for key, value in SMALL.items():
        args += ["--set", f"{key}={value}"]
    assert cli.main(args) == 0
    assert "final MSRE" in capsys.readouterr().out
    png = tmp_path / "curves.png"
    assert cli.main(["plot", str(tmp_path / "run"), "--out", str(png), "--log"]) == 0
    assert png.stat().st_size > 0


def test_every_preset_resolves_and_builds():
    from rtrl.experiments.builders import build_prediction as build

    for name in configuration.preset_names():
        if configuration.resolve(name)["kind"] != "prediction":
            continue  # control: tests/test_control_runs.py; alignment: its own tests
        if configuration.resolve(name)["stream"] == "atari":
            continue  # needs recorded data: tests/test_atari.py builds them on a short stream
        stream, learner = build(configuration.resolve(name))
        assert stream.num_observations > 0
