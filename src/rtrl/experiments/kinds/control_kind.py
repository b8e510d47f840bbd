"""Control (PPO, IMPALA/R2AC, the real-time actor-critic): the return of finished episodes,
higher is better."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtrl.experiments.kinds import Kind, figure, refuse_games, shown

# The keys, types and default values of a control configuration: every preset of this kind
# is these with its own values (rtrl.experiments.presets), and --set may change any of them.
DEFAULTS: dict[str, Any] = {
    "kind": "control",
    # ppo | impala | actor_critic | q_lambda | sarsa_lambda | qrc_lambda (the last four learn
    # online, one update per step)
    "learner": "ppo",
    "env": "halfcheetah-p",  # see rtrl.envs.registry.control_env_names()
    "mujoco_backend": "spring",  # Brax backend: spring | positional | generalized | mjx
    "memory_length": 5,  # gymnax:MemoryChain-bsuite only: steps between the cue and the query
    "normalize_obs": True,
    "scale_reward": True,
    "cell": "linear_rtu",
    "units": 192,
    "forget_bias": 0.0,  # eLSTM: added to the forget gate's initial bias (0: the reference's)
    "max_timescale": 0.0,  # eLSTM: forget biases spread over timescales 2..T (0: off)
    "estimator": "columnar_rtrl",  # an online estimator, or bptt (recurrent PPO baseline)
    "previous_reward": False,  # the agent also reads the last reward, clipped to [-1, 1]
    "gamma": 0.99,
    "bootstrap_truncation": True,  # False: a time limit ends episodes like a terminal state
    # PPO (rtrl.learners.ppo.PPOConfig)
    "gae_lambda": 0.95,
    "rollout_length": 2048,
    "num_envs": 1,
    "epochs": 4,
    "minibatches": 32,
    "clip": 0.2,
    "value_clip": 0.2,
    "value_coef": 0.5,
    "entropy_coef": 0.0,
    "max_grad_norm": 0.5,
    "step_size": 1e-4,  # PPO: Adam's; actor-critic: the actor's and the critic's Adam
    "adam_eps": 1e-5,
    "normalize_advantages": True,
    "hidden": 64,
    "traces": "stale",  # RTRL trunks: stale | fresh
    "sequence_length": 64,  # BPTT trunks
    # IMPALA-style V-trace (rtrl.learners.impala.ImpalaConfig)
    "segment_length": 50,
    "baseline_coef": 0.5,
    "rho_bar": 1.0,
    "c_bar": 1.0,
    "reward_clip": 1.0,  # rewards enter the loss clipped to [-c, c] (0: unclipped)
    "behaviour_lag": 0,  # updates the actors' parameters trail the learner's
    "rmsprop_eps": 0.01,
    "torso": "resnet",  # image observations: IMPALA's residual network, or nature
    # real-time actor-critic
    "lambda": 0.9,
    "shared_trunk": True,
    # adam, or obgd / adaptive_obgd: stream AC(lambda) (Elsayed et al. 2024), each step bounded
    # by kappa (the actor's 3, the critic's 2) and the entropy weighted by |delta|
    "ac_optimizer": "adam",
    "actor_kappa": 3.0,
    "critic_kappa": 2.0,
    # action values online (rtrl.learners.stream_q): q_lambda and sarsa_lambda with
    # q_optimizer=obgd are stream Q(lambda) and stream SARSA(lambda) (Elsayed et al. 2024)
    "q_optimizer": "adam",  # adam | sgd | obgd | adaptive_obgd (QRC: adam or sgd); step_size
    "q_kappa": 2.0,
    "epsilon_start": 1.0,
    "epsilon_end": 0.01,
    "exploration_fraction": 0.1,  # epsilon reaches its end after this fraction of the steps
    "h_step_size": 1e-5,  # QRC(lambda)'s h network: its Adam (or SGD) step size
    "h_regularizer": 1.0,  # QRC(lambda)'s beta
    # the online learners' network (rtrl.learners.streaming): an encoder of encoder_layers
    # layers of encoder_units before the trunk, with stream-x's stabilisers as switches
    "encoder_layers": 0,
    "encoder_units": 64,
    "layer_norm": False,  # LayerNorm without gain or bias in each encoder layer
    "sparsity": 0.0,  # sparse initialisation of encoder and head (stream-x: 0.9)
    "steps": 500_000,
    "paper_steps": 5_000_000,
    "chunk": 20_480,  # environment steps per compiled call (whole PPO iterations)
    "bin_size": 5_000,  # actor-critic: steps per point of the curve (PPO: one per iteration)
    "final_fraction": 0.1,  # the last 10% of the curve is the final return
    "seed": 0,
}


def run(config, seeds: int, out: Path, games=None, progress=True, stop_after=None):
    refuse_games(games, KIND.name)
    from rtrl.experiments.control_runs import run_control

    return run_control(config, seeds, out, progress, stop_after)


def scores(config, summary):
    return {"status": summary.get("status", "complete"),
            "final": figure(summary, "final_return_mean"),
            "final_stderr": figure(summary, "final_return_stderr"),
            "lifetime": figure(summary, "lifetime_return_mean")}  # fmt: skip


def headline(config, summary, out: Path) -> str:
    return (f"final return {shown(summary, 'final_return_mean')} ± "
            f"{shown(summary, 'final_return_stderr')} ({out})")  # fmt: skip


def plot(run_dirs: list[Path], out: Path, log_scale: bool = False, smooth: int = 1) -> str:
    from rtrl.experiments.control_runs import plot_control_runs

    return f"wrote {plot_control_runs(run_dirs, out, smooth)}\n"


def program(config, seeds: int):
    from rtrl.experiments.control_runs import build_program

    return build_program(config, seeds)


def plot_best(best, out: Path, column) -> None:
    """One figure per task where the study has a column (tasks): ``returns-TASK.png``
    (``atari:Pong``: ``returns-atari-Pong.png``); else ``best.png``."""
    from rtrl.experiments.control_runs import plot_control_runs

    panels: dict[str, list[Path]] = {}
    for config, run_dir in best:
        name = f"returns-{str(config[column]).replace(':', '-')}.png" if column else "best.png"
        panels.setdefault(name, []).append(run_dir)
    for name, run_dirs in panels.items():
        plot_control_runs(run_dirs, out / name, smooth=3)


KIND = Kind(
    defaults=DEFAULTS, name="control", run=run, scores=scores, headline=headline, plot=plot,
    figure_name=lambda config, games: "final return", figure_slug="return", program=program,
    plot_best=plot_best,
)  # fmt: skip
