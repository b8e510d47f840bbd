"""The Atari prediction benchmark: replay, features, cache, data validation, multi-game runs."""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrl import cli
from rtrl.envs import atari
from rtrl.experiments import atari_runs, builders, configuration, prediction_runs
from rtrl.experiments.sweep import sweep
from rtrl.learners import discounted_returns

pytest.importorskip("ale_py")

SHARED_DATA = Path(
    os.environ.get("RTRL_TEST_DATA")
    or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "atari-policies"
)
GOLDEN = Path(__file__).parent / "data" / "atari_pong_golden.npz"


def synthetic_stream(length: int, resets=(), actions: int = 6) -> bytes:
    """'R', then runs of 4 repeated actions cycling through ``actions``; 'R' at ``resets``."""
    codes = bytearray(97 + (i // 4) % actions for i in range(length))
    codes[0] = ord("R")
    for r in resets:
        codes[r] = ord("R")
    return bytes(codes)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data directory holding a short synthetic Pong stream, and a private cache."""
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "PongNoFrameskip-v4.txt").write_bytes(synthetic_stream(3000, resets=(1500,)))
    monkeypatch.setenv("RTRL_DATA", str(directory))
    monkeypatch.setenv("RTRL_CACHE", str(tmp_path / "cache"))
    return directory


# --- names and locations -----------------------------------------------------------------------


def test_every_benchmark_game_has_a_rom():
    from ale_py import roms

    assert len(atari.GAMES) == 58
    available = set(roms.get_all_rom_ids())
    assert [g for g in atari.GAMES if atari.rom_id(g) not in available] == []
    assert atari.rom_id("MontezumaRevenge") == "montezuma_revenge"
    assert atari.rom_id("UpNDown") == "up_n_down"


def test_game_lists():
    assert atari.parse_games("all") == list(atari.GAMES)
    assert atari.parse_games("pong, Breakout") == ["Pong", "Breakout"]
    with pytest.raises(ValueError, match="unknown game.*Pongg.*valid: all, or .*Pong"):
        atari.parse_games("Pongg")


def test_data_directory_order(monkeypatch, tmp_path):
    monkeypatch.setenv("RTRL_DATA", str(tmp_path / "env"))
    assert atari.data_directory(tmp_path / "flag") == tmp_path / "flag"
    assert atari.data_directory() == tmp_path / "env"
    monkeypatch.delenv("RTRL_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert atari.data_directory() == tmp_path / "xdg" / "rtrl" / "atari-policies"


# --- validation of recorded files ----------------------------------------------------------------


def test_problems_are_reported_with_byte_offsets():
    good = synthetic_stream(100)
    assert atari.find_problems(good, num_actions=6) == []
    corrupt = bytearray(good)
    corrupt[17] = ord("z")
    corrupt[40] = ord("h")  # action index 7: outside a 6-action set
    corrupt[41] = 0
    problems = atari.find_problems(bytes(corrupt), num_actions=6)
    assert problems[0].startswith("byte 17: 0x7a ('z') is neither 'R' nor an action")
    assert problems[1].startswith("byte 40: action 0x68 ('h') = index 7 is outside")
    assert "6 actions, 'a'..'f'" in problems[1]
    assert problems[2].startswith("byte 41: 0x00 is neither")
    assert atari.find_problems(b"abc", 6) == ["byte 0: the stream must start with 'R' (a reset)"]
    assert atari.find_problems(b"", 6) == ["the file is empty"]
    many = atari.find_problems(b"R" + b"z" * 30, 6, limit=10)
    assert len(many) == 11 and many[-1] == "... and 20 more bad bytes"


def test_missing_and_corrupt_files_name_the_file_and_the_fix(data_dir):
    missing = r"no recorded stream for Breakout: .*BreakoutNoFrameskip-v4.txt does not exist; "
    with pytest.raises(atari.DataError, match=missing + r".*--data DIR or set RTRL_DATA"):
        atari.load_recording("Breakout")
    path = data_dir / "PongNoFrameskip-v4.txt"
    corrupt = bytearray(path.read_bytes())
    corrupt[123] = ord("q")  # Pong has 6 actions: 'q' is index 16
    path.write_bytes(bytes(corrupt))
    with pytest.raises(atari.DataError) as error:
        atari.load_recording("Pong")
    message = str(error.value)
    assert f"{path} is corrupt" in message and "byte 123: action 0x71 ('q') = index 16" in message
    assert "Replace it with the original file" in message and "rtrl data check" in message


def test_data_check_command(data_dir, capsys):
    # The fixture's stream is 3,000 steps; the benchmark's are 250,000.
    assert cli.main(["data", "check", str(data_dir)]) == 1
    assert "3,000 bytes where a recorded stream has 250,000 (truncated?)" in capsys.readouterr().out
    assert cli.main(["data", "check", str(data_dir), "--length", "3000"]) == 0
    assert "1 of 1 files valid; 57 benchmark games have no file" in capsys.readouterr().out
    (data_dir / "BreakoutNoFrameskip-v4.txt").write_bytes(b"Rabcdz")
    (data_dir / "notes.txt").write_text("hello")
    assert cli.main(["data", "check", str(data_dir), "--length", "0"]) == 1
    captured = capsys.readouterr()
    assert "BreakoutNoFrameskip-v4.txt:\n  byte 5: 0x7a ('z') is neither" in captured.out
    assert "byte 4" not in captured.out  # 'd' is within Breakout's 4 actions
    assert "notes.txt:\n  not a benchmark stream" in captured.out
    assert "1 of 3 files valid" in captured.out and "Replace the files" in captured.err
    assert cli.main(["data", "check", str(data_dir / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


# --- preprocessing and replay ------------------------------------------------------------------


def test_area_resize_matches_averaging_an_upsampled_screen():
    rows = atari.area_resize_matrix(210, 16)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    np.testing.assert_allclose(rows.sum(axis=0), 16 / 210)  # every source pixel counts equally
    screen = np.random.default_rng(0).integers(0, 256, (3, 210, 160), dtype=np.uint8)
    # Independent reference: repeat each pixel 16x16 times, then average whole blocks.
    big = np.repeat(np.repeat(screen.astype(np.float64), 16, axis=1), 16, axis=2)
    expected = big.reshape(3, 16, 210, 16, 160).mean(axis=(2, 4))
    small = atari.downsample(screen, 16)
    assert small.dtype == np.uint8
    assert np.abs(small.astype(float) - expected).max() <= 0.5 + 1e-3


def test_bilinear_resize_samples_two_neighbours_around_each_centre():
    # 4 -> 2: centres at source positions 0.5 and 2.5, halfway between two pixels each.
    np.testing.assert_allclose(
        atari.bilinear_resize_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]]
    )
    # 2 -> 4 (upsampling): positions -0.25, 0.25, 0.75, 1.25, clamped at the edges.
    np.testing.assert_allclose(
        atari.bilinear_resize_matrix(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]]
    )
    rows = atari.bilinear_resize_matrix(210, 16)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    assert ((rows > 0).sum(axis=1) <= 2).all()  # at most two source rows per output row
    # Output row 0 samples 210/16 * 0.5 - 0.5 = 6.0625: rows 6 and 7.
    np.testing.assert_allclose(rows[0, 6:8], [0.9375, 0.0625])
    screen = np.zeros((1, 210, 160), np.uint8)
    screen[0, 100:102, 50:54] = 255  # a ball between the sampled rows: bilinear misses it
    assert atari.downsample(screen, 16, "bilinear").max() == 0
    assert atari.downsample(screen, 16, "area").max() > 0
    with pytest.raises(ValueError, match="unknown resize 'cubic'"):
        atari.downsample(screen, 16, "cubic")


def test_replay_matches_the_golden_frames():
    golden = np.load(GOLDEN)
    recording = atari.replay("Pong", synthetic_stream(1200))
    np.testing.assert_array_equal(recording.frames[golden["steps"]], golden["frames"])


def test_feature_layout_and_episode_boundaries(data_dir):
    recording = atari.load_recording("Pong")
    stream = atari.recorded_stream(recording, gamma=0.98)
    assert stream.num_observations == 275 == atari.observation_size(16)
    assert stream.length == 3000 and stream.gamma == 0.98

    index, outputs = jax.lax.scan(
        lambda i, _: stream.transition(None, i, stream.data), stream.reset(None), None, length=3000
    )
    assert int(index) == 3000
    x = np.asarray(outputs.observation)
    frames = recording.frames.reshape(3000, 256)
    np.testing.assert_array_equal(x[:, :256], frames / 256.0)
    assert x[:, :256].min() >= 0 and x[:, :256].max() < 1
    codes = synthetic_stream(3000, resets=(1500,))
    for t in (1, 2, 5, 1499, 1501, 2999):
        expected = np.zeros(18)
        expected[codes[t] - 97] = 1
        np.testing.assert_array_equal(x[t, 256:274], expected)
    for t in (0, 1500):  # resets: no action, no reward, discount 0, a new episode
        assert x[t, 256:275].sum() == 0
        assert outputs.discount[t] == 0 and outputs.episode_start[t]
        assert outputs.cumulant[t] == 0
    within = np.ones(3000, bool)
    within[[0, 1500]] = False
    np.testing.assert_allclose(np.asarray(outputs.discount)[within], 0.98, rtol=1e-6)
    assert not np.asarray(outputs.episode_start)[within].any()
    np.testing.assert_array_equal(x[:, 274], np.sign(recording.rewards))
    np.testing.assert_array_equal(outputs.cumulant, np.sign(recording.rewards))
    assert set(np.unique(recording.rewards)) <= {-1, 0, 1} and recording.rewards.any()


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"no recorded streams at {SHARED_DATA}")
def test_pong_expert_wins_every_episode_21_to_0(tmp_path, monkeypatch):
    monkeypatch.setenv("RTRL_CACHE", str(tmp_path))
    recording = atari.load_recording("Pong", data_dir=SHARED_DATA)
    assert len(recording.frames) == 250_000
    scores = recording.episode_returns()
    assert len(scores) >= 30 and (scores == 21).all()
    # Every point is a separate +1: the clipped rewards tell the same story.
    assert (recording.clipped_rewards >= 0).all()


# --- the cache -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cache_is_reused_and_rebuilt_when_settings_or_data_change(data_dir, tmp_path, monkeypatch):
    calls = []
    real_replay = atari.replay

    def counting_replay(*args, **kwargs):
        calls.append(args[0])
        return real_replay(*args, **kwargs)

    monkeypatch.setattr(atari, "replay", counting_replay)
    cache = tmp_path / "cache"
    first = atari.load_recording("Pong")
    assert calls == ["Pong"] and len(list(cache.glob("Pong-16px-*.npz"))) == 1
    again = atari.load_recording("Pong")
    assert calls == ["Pong"]  # read from the cache
    np.testing.assert_array_equal(first.frames, again.frames)
    assert list(cache.glob("Pong-16px-*.npz"))[0].stat().st_size < 3000 * 256

    small = atari.load_recording("Pong", frame_size=8)  # other preprocessing: its own file
    assert calls == ["Pong"] * 2 and small.frames.shape == (3000, 8, 8)
    assert len(list(cache.glob("Pong-*.npz"))) == 2
    bilinear = atari.load_recording("Pong", resize="bilinear")
    assert calls == ["Pong"] * 3 and len(list(cache.glob("Pong-16px-bilinear-*.npz"))) == 1
    assert not np.array_equal(bilinear.frames, first.frames)
    for stale in cache.glob("Pong-16px-bilinear-*.npz"):
        stale.unlink()
    calls.pop()

    path = data_dir / "PongNoFrameskip-v4.txt"  # a changed recording replaces the stale file
    path.write_bytes(synthetic_stream(2000))
    changed = atari.load_recording("Pong")
    assert calls == ["Pong"] * 3 and len(changed.frames) == 2000
    assert len(list(cache.glob("Pong-16px-*.npz"))) == 1

    cached = next(cache.glob("Pong-16px-*.npz"))  # a damaged cache file is rebuilt
    cached.write_bytes(b"not an npz file")
    rebuilt = atari.load_recording("Pong")
    assert calls == ["Pong"] * 4
    np.testing.assert_array_equal(rebuilt.frames, changed.frames)

    monkeypatch.setattr(atari, "CACHE_FORMAT", atari.CACHE_FORMAT + 1)  # new preprocessing code
    atari.load_recording("Pong")
    assert calls == ["Pong"] * 5


# --- experiments -------------------------------------------------------------------------------


ATARI_PRESETS = ["atari-ccn", "atari-ccn-20-4", "atari-columnar", "atari-columnar-20",
                 "atari-constructive", "atari-constructive-30", "atari-elstm", "atari-rtu",
                 "atari-tbptt-16-8", "atari-tbptt-3-5", "atari-tbptt-5-7",
                 "atari-tbptt-6-8"]  # fmt: skip
TINY = {"steps": "3000", "chunk": "1000", "bin_size": "500", "final_window": "1000"}


def test_atari_presets_follow_the_benchmark(data_dir):
    assert [n for n in configuration.preset_names() if n.startswith("atari-")] == ATARI_PRESETS
    for name in ATARI_PRESETS:
        config = configuration.resolve(name, TINY)
        assert config["stream"] == "atari" and config["gamma"] == 0.98
        assert config["lambda"] == 0.99 and config["step_size"] == 1e-4
        if config["estimator"] == "staged_rtrl":  # the reference's head and normaliser rules
            assert config["head_step_per_feature"] and not config["bias_step_per_feature"]
            assert config["input_norm_window"] == config["feature_norm_window"] == 4167
            assert config["norm_floor"] == 1e-3
        else:
            assert not config["head_step_per_feature"] and not config["feature_norm_window"]
        assert (
            configuration.resolve(name)["steps"]
            == 250_000
            == configuration.resolve(name)["paper_steps"]
        )
        stream, learner = builders.build_prediction(config)
        assert stream.num_observations == 275
    with pytest.raises(ValueError, match=r"steps \(250000\) exceeds the 3000 steps of atari\[Pong"):
        builders.build_prediction(configuration.resolve("atari-ccn"))


@pytest.mark.float64  # compared with a hand-computed float64 sum at rtol 1e-7
def test_returns_are_cut_at_episode_boundaries(data_dir):
    config = configuration.resolve("atari-columnar", TINY)
    stats = atari_runs.return_statistics(config)
    recording = atari.load_recording("Pong")
    rewards = np.sign(recording.rewards).astype(float)
    returns = np.zeros(3000)
    for t in range(2998, -1, -1):  # G_t = c_{t+1} + gamma_{t+1} G_{t+1}, gamma 0 at a reset
        next_discount = 0.0 if t + 1 == 1500 else 0.98
        returns[t] = rewards[t + 1] + next_discount * returns[t + 1]
    scored = returns[: 3000 - 500]
    assert stats["steps"] == 2500
    assert stats["mean"] == pytest.approx(scored.mean()) and stats["variance"] == pytest.approx(
        scored.var()
    )
    discounts = jnp.where(jnp.asarray(recording.episode_starts), 0.0, 0.98)
    np.testing.assert_allclose(discounted_returns(jnp.asarray(rewards), discounts), returns)


@pytest.mark.slow
def test_reset_at_episode_start_resets_only_from_the_episode_start(data_dir):
    recording = atari.load_recording("Pong")
    stream = atari.recorded_stream(recording)
    config = configuration.resolve("atari-rtu", {**TINY, "units": "3"})
    _, learner = builders.build_prediction(config)
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    values = {}
    for reset in (False, True):
        init, run_chunk = prediction_runs.compile_chunks(stream, learner, 3000, reset)
        values[reset] = np.asarray(run_chunk(*init(keys), keys, stream.data)[1])[0]
    np.testing.assert_array_equal(values[False][:1500], values[True][:1500])
    assert np.abs(values[False][1500:1510] - values[True][1500:1510]).max() > 0


@pytest.mark.slow
def test_multi_game_run_table_and_plot(data_dir, tmp_path, capsys):
    breakout = synthetic_stream(3000, resets=(1500,), actions=4)  # scores a few points
    (data_dir / "BreakoutNoFrameskip-v4.txt").write_bytes(breakout)
    outs = []
    for preset, units in (("atari-ccn", 10), ("atari-tbptt-6-8", 4)):
        out = tmp_path / preset
        args = ["run", preset, "--games", "pong,Breakout", "--seeds", "2", "--out", str(out),
                "--set", f"units={units}", "--data", str(data_dir)]  # fmt: skip
        for key, value in TINY.items():
            args += ["--set", f"{key}={value}"]
        assert cli.main(args) == 0
        printed = capsys.readouterr().out
        assert printed.startswith("game,final_msre") and "normalised final error over 2" in printed
        outs.append(out)
    games = atari_runs.read_games(outs[0])
    assert [g["game"] for g in games] == ["Breakout", "Pong"]
    for row in games:
        summary = json.loads((outs[0] / row["game"] / "summary.json").read_text())
        variance = json.loads((outs[0] / row["game"] / "returns.json").read_text())["variance"]
        assert row["final_msre"] == pytest.approx(summary["final_msre_mean"], rel=1e-5)
        assert row["normalised_final"] == pytest.approx(row["final_msre"] / variance, rel=1e-5)
    aggregate = json.loads((outs[0] / "aggregate.json").read_text())
    per_seed = np.mean(
        [np.asarray(json.loads((outs[0] / g / "summary.json").read_text())["final_msre_per_seed"])
         / json.loads((outs[0] / g / "returns.json").read_text())["variance"]
         for g in ("Breakout", "Pong")], axis=0)  # fmt: skip
    assert aggregate["normalised_final_mean"] == pytest.approx(per_seed.mean(), rel=1e-5)

    png = tmp_path / "games.png"
    assert cli.main(["plot", *map(str, outs), "--out", str(png)]) == 0
    table = capsys.readouterr().out
    assert "| game | atari-ccn | atari-tbptt-6-8 |" in table and "| Pong | " in table
    assert "**mean over games**" in table and png.stat().st_size > 0


@pytest.mark.slow
def test_sweep_over_games_scores_the_normalised_aggregate(data_dir, tmp_path):
    best = sweep(["atari-tbptt-6-8"], "step_size", ["1e-4", "1e-2"], seeds=1, out=tmp_path,
                 overrides={**TINY, "units": "2"}, progress=False, games=["Pong"])  # fmt: skip
    runs = {v: tmp_path / "atari-tbptt-6-8" / f"step_size={v}" for v in ("1e-4", "1e-2")}
    scores = {v: json.loads((d / "aggregate.json").read_text())["normalised_final_mean"]
              for v, d in runs.items()}  # fmt: skip
    assert best[0]["step_size"] == min(scores, key=scores.get)
    assert best[0]["final"] == pytest.approx(scores[best[0]["step_size"]])
    table = (tmp_path / "best.md").read_text()
    assert "normalised final error (mean over 1 games) ± s.e. over 1 seeds" in table
    assert f"| game | atari-tbptt-6-8 step_size={best[0]['step_size']} |" in table
    assert "| Pong | " in table and (tmp_path / "best.png").stat().st_size > 0
    # Again on the same directory: every game is finished, so nothing runs, and the wall
    # times recorded the first time stay.
    again = sweep(["atari-tbptt-6-8"], "step_size", ["1e-4", "1e-2"], seeds=1, out=tmp_path,
                  overrides={**TINY, "units": "2"}, progress=False, games=["Pong"])  # fmt: skip
    assert again == best and all(row["seconds"] > 0 for row in again)


def test_cli_errors_for_games(data_dir, capsys, tmp_path):
    assert cli.main(["run", "atari-ccn", "--games", "Pongg", "--out", str(tmp_path)]) == 2
    assert "unknown game(s) Pongg" in capsys.readouterr().err
    assert cli.main(["data", "prepare", "--games", "Pongg"]) == 2
    assert "unknown game(s) Pongg" in capsys.readouterr().err
    assert cli.main(["run", "tp-columnar-lstm", "--games", "Pong"]) == 2
    assert "--games is for Atari presets" in capsys.readouterr().err
    args = ["run", "atari-ccn", "--games", "Breakout", "--out", str(tmp_path / "b")]
    assert cli.main(args + [f"--set={key}={value}" for key, value in TINY.items()]) == 2
    assert "no recorded stream for Breakout" in capsys.readouterr().err


@pytest.mark.slow
def test_throughput_benchmark_reports_replay_and_learning(data_dir, capsys):
    from rtrl.bench.__main__ import main

    main(["atari", "--json", "--frames", "500", "--presets", "atari-rtu", "--seeds", "1,2",
          "--chunk", "100", "--min-seconds", "0"])  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["suite"] == "atari-replay" and rows[0]["frames"] == 500
    assert rows[0]["frames_per_s"] > 0
    assert [(r["preset"], r["seeds"]) for r in rows[1:]] == [("atari-rtu", 1), ("atari-rtu", 2)]
    assert all(r["steps_per_s_per_seed"] > 0 for r in rows[1:])
