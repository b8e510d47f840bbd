"""Control presets, control runs (rtrl.experiments.control_runs), the CLI and the benchmark."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from rtrl.cells import count_params, make_cell, recurrent_params
from rtrl.cli import main
from rtrl.experiments import configuration, presets
from rtrl.experiments.control_runs import run_control
from rtrl.experiments.results import read_curve

TINY_PPO = {"rollout_length": "32", "num_envs": "2", "minibatches": "2", "hidden": "8",
            "units": "4", "chunk": "128", "epochs": "1"}  # fmt: skip


def control_presets():
    return [
        n for n in configuration.preset_names() if configuration.resolve(n)["kind"] == "control"
    ]


def test_control_presets_cover_the_study_with_matched_recurrent_budgets():
    names = control_presets()
    for trunk in presets.CONTROL_TRUNKS:
        for task in ("ant", "halfcheetah", "hopper", "walker2d"):
            for observed in ("p", "v"):
                assert f"ppo-{trunk}-{task}-{observed}" in names
        for task in ("repeat_first", "repeat_previous", "count_recall", "autoencode",
                     "higher_lower"):  # fmt: skip
            assert f"ppo-{trunk}-{task}-hard" in names
        config = configuration.resolve(f"ppo-{trunk}-halfcheetah-p")
        cell = make_cell(config["cell"], config["units"])
        budget = count_params(recurrent_params(cell.init(jax.random.PRNGKey(0), 64)))
        assert 23_000 <= budget <= 25_500, (trunk, budget)


@pytest.mark.slow
def test_every_control_preset_builds():
    from rtrl.envs.envpool_games import envpool_task
    from rtrl.envs.gymnax_envs import GYMNAX_PREFIX
    from rtrl.envs.registry import BRAX_TASKS, control_env_names, make_control_env
    from rtrl.experiments.builders import is_envpool
    from rtrl.experiments.control_runs import build_program

    for name in control_presets():
        config = configuration.resolve(name)
        if is_envpool(config):  # EnvPool's batches take seconds each: one is built below
            envpool_task(config["env"])
            continue
        if config["env"].startswith(GYMNAX_PREFIX):  # any gymnax name: building it checks it
            make_control_env(config["env"], memory_length=config["memory_length"])
        else:
            assert config["env"] in control_env_names()
        if config["env"] not in BRAX_TASKS:  # Brax tasks take seconds each to build
            program = build_program(config, seeds=1)
            assert program.chunk_steps > 0
    assert build_program(configuration.resolve("r2ac-elstm-atari"), seeds=1).chunk_steps == 16_000


def test_mujoco_presets_use_the_reference_hyperparameters():
    config = configuration.resolve("ppo-rtu-ant-p")
    expected = {"gamma": 0.99, "gae_lambda": 0.95, "rollout_length": 2048, "epochs": 4,
                "minibatches": 32, "clip": 0.2, "value_coef": 0.5, "entropy_coef": 0.0,
                "max_grad_norm": 0.5, "step_size": 1e-4, "adam_eps": 1e-5, "hidden": 64,
                "units": 192, "cell": "linear_rtu", "traces": "stale",
                "paper_steps": 5_000_000}  # fmt: skip
    assert {k: config[k] for k in expected} == expected
    assert configuration.resolve("ppo-gru-bptt-walker2d-v")["estimator"] == "bptt"


@pytest.mark.slow
def test_cli_runs_and_plots_a_ppo_preset(tmp_path, capsys):
    out = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in TINY_PPO.items()]
    assert main(["run", "ppo-rtu-cartpole-p", "--seeds", "2", "--steps", "256", *sets,
                 "--out", str(out)]) == 0  # fmt: skip
    assert "final return" in capsys.readouterr().out
    steps, returns = read_curve(out)
    np.testing.assert_array_equal(steps, np.arange(1, 5) * 64)  # one point per iteration
    assert returns.shape == (2, 4) and np.isfinite(returns).any()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and len(summary["final_return_per_seed"]) == 2
    # Same seed, same numbers.
    again = tmp_path / "again"
    main(["run", "ppo-rtu-cartpole-p", "--seeds", "2", "--steps", "256", *sets, "--out",
          str(again)])  # fmt: skip
    np.testing.assert_array_equal(read_curve(again)[1], returns)
    bptt = tmp_path / "bptt"
    assert main(["run", "ppo-gru-bptt-cartpole-p", "--seeds", "1", "--steps", "128", *sets,
                 "--set", "sequence_length=16", "--out", str(bptt)]) == 0  # fmt: skip
    plot = tmp_path / "plot.png"
    assert main(["plot", str(out), str(bptt), "--out", str(plot), "--smooth", "2"]) == 0
    assert plot.stat().st_size > 10_000


@pytest.mark.slow
def test_control_runs_resume_with_the_numbers_of_an_uninterrupted_run(tmp_path):
    config = configuration.resolve("ppo-rtu-cartpole-p", {**TINY_PPO, "steps": "256"})
    whole = run_control(config, 2, tmp_path / "whole", progress=False)
    partial = run_control(config, 2, tmp_path / "resumed", progress=False, stop_after=1)
    assert partial["status"] == "partial" and (tmp_path / "resumed" / "checkpoint.npz").exists()
    assert run_control(config, 2, tmp_path / "resumed", progress=False) == whole
    assert (tmp_path / "whole" / "curve.csv").read_bytes() == (
        tmp_path / "resumed" / "curve.csv"
    ).read_bytes()
    record = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert record["steps_run"] == 256


@pytest.mark.slow
def test_actor_critic_runs_in_the_compiled_loop_and_the_host_loop(tmp_path):
    overrides = {"chunk": "1000", "bin_size": "500", "steps": "2000", "units": "4"}
    config = configuration.resolve("ac-rtu-cartpole-p", overrides)
    summary = run_control(config, 2, tmp_path / "compiled", progress=False)
    steps, returns = read_curve(tmp_path / "compiled")
    np.testing.assert_array_equal(steps, [500, 1000, 1500, 2000])
    assert np.isfinite(summary["final_return_mean"])
    pytest.importorskip("gymnasium")
    host = {**config, "env": "gym:CartPole-v1", "steps": 400, "chunk": 200, "bin_size": 100}
    run_control(host, 2, tmp_path / "host", progress=False)
    steps, returns = read_curve(tmp_path / "host")
    assert steps.tolist() == [100, 200, 300, 400] and returns.shape == (2, 4)
    assert np.nanmin(returns) >= 8  # CartPole episodes last at least 8 steps


def test_control_errors_name_the_problem(capsys):
    assert main(["run", "ppo-rtu-cartpole-p", "--set", "env=pong-p", "--steps", "10"]) == 2
    assert "unknown environment 'pong-p'" in capsys.readouterr().err
    assert main(["run", "ppo-rtu-cartpole-p", "--set", "env=gym:CartPole-v1"]) == 2
    assert "learner=actor_critic" in capsys.readouterr().err
    assert main(["run", "ac-rtu-cartpole-p", "--set", "estimator=bptt"]) == 2
    assert "online estimator" in capsys.readouterr().err
    assert main(["run", "ppo-rtu-cartpole-p", "--set", "minibatches=7"]) == 2
    assert "minibatches" in capsys.readouterr().err


@pytest.mark.slow
def test_control_bench_rows(capsys):
    from rtrl.bench.__main__ import main as bench

    bench(["control", "--presets", "ac-rtu-cartpole-p", "--seeds", "1,2", "--chunk", "200",
           "--backends", "", "--min-seconds", "0.1", "--json"])  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seeds"] for r in rows] == [1, 2]
    assert all(r["steps_per_s_total"] > 0 for r in rows)


@pytest.mark.slow
def test_ppo_profile_splits_an_iteration_and_weighs_the_stored_carries(capsys):
    from rtrl.bench.__main__ import main as bench

    bench(["profile", "--preset", "ppo-rtu-cartpole-p", "--seeds", "2", "--min-seconds", "0",
           "--set", "rollout_length=8", "--set", "num_envs=2", "--set", "units=4",
           "--set", "minibatches=2", "--json"])  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seeds"] for r in rows] == [2] and rows[0]["steps_per_iteration"] == 16
    # The RTRL trunk stores its traces with every step: most of the rollout's bytes.
    assert all(0.5 * r["rollout_mb"] < r["stored_carries_mb"] < r["rollout_mb"] for r in rows)
    assert all(r["collect_ms"] > 0 and r["update_ms"] > 0 and r["classes"] for r in rows)
    with pytest.raises(SystemExit, match="neither a prediction nor a PPO preset"):
        bench(["profile", "--preset", "ac-rtu-cartpole-p"])
