"""EnvPool adapters: observation layout, the Atari settings (sticky actions on), episode returns
and same-step resets, ProcGen's memory games and the one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("envpool")

from rtrl.envs import envpool_games  # noqa: E402
from rtrl.envs.envpool_games import EnvPoolEnvs, envpool_task  # noqa: E402


def test_atari_observations_actions_and_settings():
    envs = EnvPoolEnvs("atari:Pong", num_envs=3, seed=1)
    observations = envs.reset()
    assert observations.shape == (3, 84, 84, 1) and observations.dtype == np.float32
    assert 0.0 <= observations.min() and observations.max() <= 1.0 and observations.std() > 0
    assert envs.action_space.n == 18  # the full action set
    config = envs.env.spec.config
    assert (config.frame_skip, config.repeat_action_probability, config.stack_num) == (4, 0.25, 1)
    assert not config.episodic_life and not config.reward_clip and config.gray_scale
    assert config.max_episode_steps == 27_000


def frames_under(repeat_probability: float, steps: int = 60) -> np.ndarray:
    envs = EnvPoolEnvs("atari:Breakout", num_envs=1, seed=3,
                       repeat_action_probability=repeat_probability)  # fmt: skip
    envs.reset()
    actions = np.random.default_rng(0).integers(0, 18, steps)
    return np.stack([envs.step(actions[t : t + 1]).observation[0] for t in range(steps)])


def test_sticky_actions_are_on():
    """The same seed and actions give other frames when actions may repeat, and the same frames
    again when run twice."""
    sticky = frames_under(0.25)
    np.testing.assert_array_equal(sticky, frames_under(0.25))
    assert not np.array_equal(sticky, frames_under(0.0))


def test_episode_returns_and_the_next_episode_starts_on_the_same_step():
    envs = EnvPoolEnvs("atari:Pong", num_envs=2, seed=0, max_episode_steps=150)
    envs.reset()
    rng = np.random.default_rng(0)
    sums, ends, scored = np.zeros(2), 0, 0.0
    for _ in range(400):
        step = envs.step(rng.integers(0, 18, 2))
        sums += step.reward
        scored += np.abs(step.reward).sum()
        done = step.terminated | step.truncated
        for i in np.nonzero(done)[0]:
            ends += 1
            assert step.episode_return[i] == sums[i]
            sums[i] = 0.0
            # The returned observation starts the next episode; the final one is kept apart.
            assert not np.array_equal(step.observation[i], step.final_observation[i])
        assert np.isnan(step.episode_return[~done]).all()
        np.testing.assert_array_equal(step.observation[~done], step.final_observation[~done])
    assert ends >= 4 and scored > 0  # episodes ended, and Pong scored points within them


def test_procgen_memory_games():
    try:
        envs = EnvPoolEnvs("procgen:heist", num_envs=2, seed=0)
    except ImportError as error:
        assert "apt-get install libqt5gui5" in str(error)
        pytest.skip(str(error))
    assert envs.reset().shape == (2, 64, 64, 3) and envs.action_space.n == 15
    assert envpool_task("procgen:maze")[0] == "MazeMemory-v0"


def test_bad_names_and_a_missing_qt_runtime_are_one_line_errors(monkeypatch):
    with pytest.raises(ValueError, match="atari:GAME"):
        envpool_task("procgen:coinrun")
    with pytest.raises(ValueError, match="procgen:GAME"):
        envpool_task("pong")

    class NoQt:
        @staticmethod
        def list_all_envs():
            return ["HeistMemory-v0"]

        @staticmethod
        def make(*args, **kwargs):
            raise ImportError("EnvPool Procgen requires the system Qt 5 runtime on Linux.")

    with pytest.raises(ValueError, match=r"unknown EnvPool game 'atari:NoSuchGame'.*list_all_envs"):
        EnvPoolEnvs("atari:NoSuchGame")

    monkeypatch.setattr(envpool_games, "_envpool", lambda: NoQt)
    with pytest.raises(ImportError, match="apt-get install libqt5gui5"):
        EnvPoolEnvs("procgen:heist")


def test_the_nature_torso_reads_images_channels_last():
    import jax

    from rtrl.learners.torsos import nature_torso_apply, nature_torso_init

    params = nature_torso_init(jax.random.PRNGKey(0), (84, 84, 1), 32)
    features = nature_torso_apply(params, jax.numpy.ones((84, 84, 1)))
    assert features.shape == (32,) and bool((features >= 0).all())
    assert params["dense"]["w"].shape == (32, 7 * 7 * 64)  # 84 -> 20 -> 9 -> 7
    with pytest.raises(ValueError, match="too small"):
        nature_torso_init(jax.random.PRNGKey(0), (16, 16, 1), 32)


def test_the_resnet_torso_halves_the_image_per_section_and_adds_its_blocks():
    import jax
    import jax.numpy as jnp

    from rtrl.learners.torsos import image_torso, resnet_torso_apply, resnet_torso_init

    params = resnet_torso_init(jax.random.PRNGKey(0), (64, 64, 3), 24)
    assert params["dense"]["w"].shape == (24, 8 * 8 * 32)  # 64 -> 32 -> 16 -> 8
    assert [s["conv"]["w"].shape for s in params["sections"]] == [
        (3, 3, 3, 16), (3, 3, 16, 32), (3, 3, 32, 32)]  # fmt: skip
    assert resnet_torso_init(jax.random.PRNGKey(0), (84, 84, 1), 8)["dense"]["w"].shape == (
        8, 11 * 11 * 32)  # fmt: skip
    image = jax.random.uniform(jax.random.PRNGKey(1), (64, 64, 3))
    features = resnet_torso_apply(params, image)
    assert features.shape == (24,) and bool((features >= 0).all())

    # With every block's second convolution zero, each block passes its input on unchanged: the
    # torso is then convolution, max-pool, convolution, max-pool, ..., written out here.
    silent = jax.tree_util.tree_map(lambda x: x, params)
    for section in silent["sections"]:
        for second in section["blocks"][1::2]:
            second["w"] = jnp.zeros_like(second["w"])
    x = image[None]
    for section in silent["sections"]:
        x = jax.lax.conv_general_dilated(x, section["conv"]["w"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
        x = x + section["conv"]["b"]
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")
        x = x + sum(second["b"] for second in section["blocks"][1::2])
    expected = jax.nn.relu(silent["dense"]["w"] @ jax.nn.relu(x).reshape(-1) + silent["dense"]["b"])
    assert jnp.allclose(resnet_torso_apply(silent, image), expected, atol=1e-5)
    with pytest.raises(ValueError, match="unknown torso 'vgg'"):
        image_torso("vgg")


@pytest.mark.slow
def test_r2ac_runs_on_atari_through_envpool(tmp_path, capsys):
    from rtrl.cli import main as cli_main

    out = tmp_path / "pong"
    small = ["--set", "num_envs=3", "--set", "segment_length=8", "--set", "chunk=48",
             "--set", "hidden=32", "--set", "units=16"]  # fmt: skip
    cli_main(["run", "r2ac-elstm-atari", "--seeds", "2", "--steps", "96", *small,
              "--out", str(out)])  # fmt: skip
    rows = (out / "curve.csv").read_text().splitlines()
    assert rows[0] == "step,seed_0,seed_1" and len(rows) == 1 + 4  # two chunks of 2 segments
    assert '"status": "complete"' in (out / "summary.json").read_text()
    assert "final return" in capsys.readouterr().out
    assert cli_main(["run", "r2ac-elstm-atari", "--set", "learner=ppo", *small,
                     "--out", str(tmp_path / "ppo")]) == 2  # fmt: skip
    assert "run with the IMPALA learner" in capsys.readouterr().err


@pytest.mark.slow
def test_the_r2ac_benchmark_reports_each_part_per_core_count(capsys):
    import json

    from rtrl.bench.__main__ import main as bench

    bench(["r2ac", "--presets", "r2ac-ff-atari", "--cores", "1", "--min-seconds", "0.1",
           "--set", "num_envs=2", "--set", "segment_length=4", "--set", "hidden=16",
           "--set", "units=8", "--set", "torso=nature", "--json"])  # fmt: skip
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["preset"], row["cores"], row["frames_per_step"]) == ("r2ac-ff-atari", 1, 4)
    for part in ("environment", "actors", "learner", "loop"):
        assert row[f"{part}_frames_per_s"] == pytest.approx(4 * row[f"{part}_steps_per_s"])
        assert row[f"{part}_steps_per_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("lag", [0, 1])
def test_the_host_loop_actors_trail_the_learner_by_the_behaviour_lag(lag):
    import jax

    from rtrl.experiments import configuration
    from rtrl.experiments.control_runs import envpool_actors

    config = configuration.resolve("r2ac-ff-atari", {
        "num_envs": "2", "segment_length": "4", "hidden": "16", "units": "8",
        "torso": "nature", "behaviour_lag": str(lag)})  # fmt: skip
    actors = envpool_actors(config, seeds=1)
    acted_with = []
    collect = actors.collect
    actors.collect = lambda params, state: (acted_with.append(params), collect(params, state))[1]
    learner, state = actors.init()
    learner, state, metrics = actors.train(learner, state, 3)
    assert metrics["episodes"].shape == (1, 3)

    def same(a, b):
        return all(bool((x == y).all()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    # lag 0: every segment with the latest parameters; lag 1: the first two with the initial
    # ones (the second collected while the first update computes), the third with the first
    # update's.
    assert same(acted_with[0], acted_with[1]) == (lag == 1)
    assert not same(acted_with[1], acted_with[2])
    assert same(learner[2][-1], learner[0]) and len(learner[2]) == lag + 1
    actors.envs.close()
