"""Online prediction (TD(lambda) on a generated stream or recorded Atari play): mean squared
return error, lower is better; an Atari configuration runs one directory per game."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments.kinds import Kind, figure, plot_best_in_one_figure, shown

# The keys, types and default values of a prediction configuration: every preset of this kind
# is these with its own values (rtrl.experiments.presets), and --set may change any of them.
DEFAULTS: dict[str, Any] = {
    "kind": "prediction",
    "stream": "trace_patterning",  # see rtrl.envs.registry.STREAMS
    "isi": 10,  # mean inter-stimulus interval of the stream
    "num_distractors": 10,  # Rafiee presets only
    # Atari prediction (stream "atari") only; the animal-learning streams fix their own discount.
    "game": "Pong",
    "frame_size": 16,  # screens resized to frame_size x frame_size
    "resize": "area",  # area | bilinear (the CCN reference's cv::resize); see rtrl.envs.atari
    "gamma": 0.98,
    "reset_at_episode_start": False,  # reset the recurrent state when an episode starts
    "cell": "columnar_lstm",
    "units": 8,
    # f of the RTU and LRU cells (identity, tanh, relu; empty: the cell's own): on the features,
    # or inside the recurrence of nonlinear_rtu and nonlinear_lru.
    "nonlinearity": "",
    # A preset whose multiply-adds per step (network parameters) this network matches: the units
    # become the most that fit (empty: off; rtrl.experiments.configuration).
    "match_compute": "",
    "match_parameters": "",
    "estimator": "columnar_rtrl",  # columnar_rtrl | snap1 | uoro | full_rtrl | tbptt | staged_rtrl
    "truncation": 8,  # T for tbptt
    # staged_rtrl only (rtrl.networks.staged): `units` features of `cell` columns, grown
    # `stage_size` at a time (0: all in one stage), a new stage every `stage_steps` steps
    # (0: the run's steps split evenly among the stages).
    "stage_size": 0,
    "stage_steps": 0,
    # Running-statistics normalisation (rtrl.networks.normalize), as an effective window in
    # steps (rate 1 - 1/window; 0 = off): of each stage's inputs (staged_rtrl only) and of the
    # features the head reads, with this floor on the variance.
    "input_norm_window": 0,
    "feature_norm_window": 0,
    "norm_floor": 1e-3,
    # Divide the head weights' step by the features in use (needs feature_norm_window > 0), and
    # the bias's step too (the CCN reference's rule; false gives the bias the full step).
    "head_step_per_feature": False,
    "bias_step_per_feature": True,
    "optimizer": "rmsprop_on_update",  # sgd | adam | rmsprop_on_update | obgd | adaptive_obgd
    "kappa": 2.0,  # obgd, adaptive_obgd: the bound on one update's reach (stream TD: 2)
    "step_size": 1e-3,
    "lambda": 0.9,
    "steps": 200_000,
    "paper_steps": 5_000_000,  # the long budget that `rtrl run --paper` selects
    "chunk": 10_000,  # steps per compiled scan (and per checkpoint)
    "bin_size": 10_000,  # steps per point of the learning curve
    "final_window": 100_000,  # steps at the end scored as the final error
    "seed": 0,
}


def _is_atari(config: dict[str, Any]) -> bool:
    return config["stream"] == "atari"


def run(config, seeds: int, out: Path, games=None, progress=True, stop_after=None):
    if _is_atari(config):
        from rtrl.experiments.atari_runs import run_games

        return run_games(config, games or [config["game"]], seeds, out, progress)
    if games:
        raise ValueError(f"--games is for Atari presets; this one's stream is {config['stream']}")
    from rtrl.experiments.prediction_runs import run_prediction

    return run_prediction(config, seeds, out, progress, stop_after)


def scores(config, summary):
    # A multi-game Atari run's aggregate holds normalised figures.
    name = "normalised_{}" if "games" in summary else "{}_msre"
    final, lifetime = name.format("final"), name.format("lifetime")
    return {"status": summary.get("status", "complete"),
            "final": figure(summary, f"{final}_mean"),
            "final_stderr": figure(summary, f"{final}_stderr"),
            "lifetime": figure(summary, f"{lifetime}_mean")}  # fmt: skip


def headline(config, summary, out: Path) -> str:
    if "games" in summary:
        return (f"normalised final error over {len(summary['games'])} games: "
                f"{shown(summary, 'normalised_final_mean')} ± "
                f"{shown(summary, 'normalised_final_stderr')} ({out})")  # fmt: skip
    return (f"final MSRE {shown(summary, 'final_msre_mean')} ± "
            f"{shown(summary, 'final_msre_stderr')}, lifetime "
            f"{shown(summary, 'lifetime_msre_mean')} ({out})")  # fmt: skip


def plot(run_dirs: list[Path], out: Path, log_scale: bool = False, smooth: int = 1) -> str:
    from rtrl.experiments.results import read_record

    per_game = ["games" in read_record(run_dir) for run_dir in run_dirs]
    if any(per_game) and not all(per_game):
        raise ValueError("cannot plot Atari runs over games with other prediction runs together")
    if all(per_game):
        from rtrl.experiments.atari_runs import games_table, plot_games

        return games_table(run_dirs) + f"wrote {plot_games(run_dirs, out)}\n"
    from rtrl.experiments.plots import plot_runs

    return f"wrote {plot_runs(run_dirs, out, log_scale)}\n"


def figure_name(config, games) -> str:
    if games:
        return f"normalised final error (mean over {len(games)} games)"
    return "final MSRE"


def program(config, seeds: int):
    from rtrl.experiments.builders import build_prediction
    from rtrl.experiments.prediction_runs import prediction_program

    stream, learner = build_prediction(config)
    return prediction_program(config, seeds, stream, learner)


def multiply_adds(config) -> int:
    from rtrl.experiments.compute import measure_of

    return measure_of(config, "compute")


def parameters(config) -> int:
    from rtrl.experiments.compute import measure_of

    return measure_of(config, "parameters")


KIND = Kind(
    defaults=DEFAULTS, name="prediction", run=run, scores=scores, headline=headline, plot=plot,
    figure_name=figure_name, higher_is_better=False, figure_slug="error", program=program,
    multiply_adds=multiply_adds, parameters=parameters, plot_best=plot_best_in_one_figure,
    takes_games=_is_atari,
    groupable=lambda config: not _is_atari(config),
)  # fmt: skip
