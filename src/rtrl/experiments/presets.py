"""Named experiment presets, as data: one per paper setting, each a flat configuration
dictionary, and the defaults of each kind of experiment.

The keys and types of a preset are those of ``PREDICTION_DEFAULTS`` (prediction),
``CONTROL_DEFAULTS`` (control), ``ALIGNMENT_DEFAULTS`` (the gradient-alignment test-bed) or
``COPY_DEFAULTS`` (the copy task). Resolving a preset with overrides, their conversion and range
checks, and the budget rules are ``rtrl.experiments.configuration``.
"""

from __future__ import annotations

from typing import Any

from rtrl.experiments.kinds.alignment_kind import DEFAULTS as ALIGNMENT_DEFAULTS
from rtrl.experiments.kinds.control_kind import DEFAULTS as CONTROL_DEFAULTS
from rtrl.experiments.kinds.copy_kind import DEFAULTS as COPY_DEFAULTS
from rtrl.experiments.kinds.prediction_kind import DEFAULTS as PREDICTION_DEFAULTS

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {}


def _preset(name: str, description: str, **overrides: Any) -> None:
    unknown = set(overrides) - set(PREDICTION_DEFAULTS)
    assert not unknown, f"preset {name} sets unknown keys {unknown}"
    PRESETS[name] = (description, {**PREDICTION_DEFAULTS, **overrides})


# Trace conditioning and trace patterning (Rafiee et al. 2022), one preset per architecture:
# slug -> (description, overrides).
_ADAM = {"optimizer": "adam", "step_size": 3e-4}
_ARCHITECTURES = {
    "columnar-lstm": ("columnar LSTM (8 columns), exact RTRL", {"cell": "columnar_lstm"}),
    "linear-rtu": ("linear RTU (8 units), exact RTRL", {"cell": "linear_rtu", **_ADAM}),
    "nonlinear-rtu": ("nonlinear RTU (8 units), exact RTRL", {"cell": "nonlinear_rtu", **_ADAM}),
    "elstm": ("eLSTM (8 units), exact RTRL", {"cell": "elstm", **_ADAM}),
    "online-lru": ("online LRU (8 units), exact RTRL", {"cell": "online_lru", **_ADAM}),
    "tbptt-lstm": (
        "dense LSTM (4 units), T-BPTT T=8",
        {"cell": "dense_lstm", "units": 4, "estimator": "tbptt", "truncation": 8},
    ),
    "tbptt-gru": (
        "dense GRU (4 units), T-BPTT T=8",
        {"cell": "dense_gru", "units": 4, "estimator": "tbptt", "truncation": 8},
    ),
}
for _short, _stream in (("tc", "trace_conditioning"), ("tp", "trace_patterning")):
    for _slug, (_description, _overrides) in _ARCHITECTURES.items():
        _preset(f"{_short}-{_slug}", f"{_stream}, {_description}", stream=_stream, **_overrides)

# The RTU paper's trace-conditioning studies (Elelimy et al. 2024; rtu-ablation, rtu-resources):
# every network learns with Adam, so that only the architecture and the gradient differ. The
# ablation restricts RTU and LRU alike: no nonlinearity, f = tanh on the features, or f inside the
# recurrence. The resource study runs the LRU and a GRU with T-BPTT (--set truncation=T), sized
# to the RTU's multiply-adds (--set match_compute=rtu-tc-rtu) or parameters (match_parameters).
_RTU_TC = {"stream": "trace_conditioning", **_ADAM}
_RTU_TC_NETWORKS = {
    "linear-rtu": ("linear RTU, no nonlinearity",
                   {"cell": "linear_rtu", "nonlinearity": "identity"}),
    "lru": ("online LRU as published (no nonlinearity)", {"cell": "online_lru"}),
    "rtu": ("linear RTU, tanh on the features", {"cell": "linear_rtu", "nonlinearity": "tanh"}),
    "lru-tanh": ("online LRU, tanh on the features",
                 {"cell": "online_lru", "nonlinearity": "tanh"}),
    "nonlinear-rtu": ("nonlinear RTU, tanh in the recurrence",
                      {"cell": "nonlinear_rtu", "nonlinearity": "tanh"}),
    "nonlinear-lru": ("online LRU with tanh in the recurrence",
                      {"cell": "nonlinear_lru", "nonlinearity": "tanh"}),
}  # fmt: skip
for _slug, (_description, _overrides) in _RTU_TC_NETWORKS.items():
    _preset(f"rtu-tc-{_slug}", f"RTU paper, trace conditioning: {_description} (8 units), exact "
            "RTRL", **_RTU_TC, **_overrides)  # fmt: skip
_preset("rtu-tc-lru-tbptt", "RTU paper, trace conditioning: online LRU (8 units), T-BPTT T=8",
        **_RTU_TC, cell="online_lru", estimator="tbptt")  # fmt: skip
_preset("rtu-tc-gru-tbptt", "RTU paper, trace conditioning: dense GRU (8 units), T-BPTT T=8",
        **_RTU_TC, cell="dense_gru", estimator="tbptt")  # fmt: skip

# The CCN paper's trace-patterning study (Javed et al. 2023): columnar LSTM features grown in
# stages, against dense LSTMs trained by T-BPTT. RMSProp on delta*e, lambda 0.99, gamma 0.9.
# The paper's budget (`--paper`): 50M steps for the staged networks, 10M for T-BPTT, 30 seeds;
# the defaults run 2M steps. `stage_steps` 0 spreads the stages over the run (K = 10M and 5M for
# CCN and constructive at the paper's budget, as in the paper).
_JAVED = {
    "stream": "javed_trace_patterning",
    "isi": 30,
    "lambda": 0.99,
    "optimizer": "rmsprop_on_update",
    "step_size": 1e-3,
    "steps": 2_000_000,
    "paper_steps": 50_000_000,
    "chunk": 50_000,
    "bin_size": 10_000,
    "final_window": 100_000,
}
# The staged networks divide the head's step by the features in use, with the normaliser the
# reference pairs with that rule (its grid: rate 0.99999, variance floor 0.1 or 0.01; 0.1 did
# better in a 1M-step check: the pattern bits are on for 1 step in ~130, a variance below 0.01).
_STAGED = {**_JAVED, "estimator": "staged_rtrl", "head_step_per_feature": True,
           "input_norm_window": 100_000, "feature_norm_window": 100_000,
           "norm_floor": 0.1}  # fmt: skip
# T-BPTT configurations (H units, truncation T) the paper compares against.
TBPTT_GRID = ((13, 2), (3, 10), (5, 8), (8, 5), (10, 5), (15, 4), (20, 3), (30, 2))


def _tbptt(units: int, truncation: int) -> dict[str, Any]:
    return {**_JAVED, "cell": "dense_lstm", "units": units, "estimator": "tbptt",
            "truncation": truncation, "paper_steps": 10_000_000}  # fmt: skip


_preset("ccn-columnar", "CCN study: columnar LSTM 7:7 (7 columns, one stage), exact RTRL",
        **_STAGED, units=7, stage_size=7)  # fmt: skip
_preset("ccn-constructive", "CCN study: constructive LSTM 10:1:K (one feature per stage)",
        **_STAGED, units=10, stage_size=1)  # fmt: skip
_preset("ccn", "CCN study: columnar-constructive LSTM 20:4:K (5 stages of 4 columns)",
        **_STAGED, units=20, stage_size=4)  # fmt: skip
for _h, _t in TBPTT_GRID:
    _preset(f"ccn-tbptt-{_h}-{_t}", f"CCN study: dense LSTM ({_h} units), T-BPTT T={_t}",
            **_tbptt(_h, _t))  # fmt: skip
# The ISI study: how both methods degrade as the interval to bridge grows (--set isi=20...80).
# The reference ran it for 10M steps with step size 1e-4 for both methods (CCN 16:4:2.5M) and
# variance floor 0.001.
_ISI = {"step_size": 1e-4, "paper_steps": 10_000_000}
_preset("isi-ccn", "ISI study: CCN 16:4:K (--set isi=20..80)",
        **{**_STAGED, **_ISI, "norm_floor": 1e-3}, units=16, stage_size=4)  # fmt: skip
_preset("isi-tbptt", "ISI study: dense LSTM (15 units), T-BPTT T=4 (--set isi=20..80)",
        **{**_tbptt(15, 4), **_ISI})  # fmt: skip

# The Atari prediction benchmark (Javed et al. 2023; rtrl.envs.atari): 250k-step recorded
# streams, TD(lambda) with RMSProp on delta*e, gamma 0.98, lambda 0.99, step size 1e-4. Choose
# the games with `rtrl run PRESET --games Pong,Breakout` (or all); each game is its own run.
_ATARI = {
    "stream": "atari",
    "gamma": 0.98,
    "lambda": 0.99,
    "optimizer": "rmsprop_on_update",
    "step_size": 1e-4,
    "steps": 250_000,
    "paper_steps": 250_000,  # the whole recorded stream
    "chunk": 10_000,
    "bin_size": 5_000,
    "final_window": 50_000,
}
# The reference's staged networks (its atari_abalation_studies_3m configurations) z-score each
# stage's inputs and the head's features (rate 0.999998, variance floor 0.001) and divide the
# head's step by the features in use. Its rates and stage lengths assume 30M-step streams: the
# normaliser's 500k-step window is kept at the same fraction of the 250k-step stream (4,167
# steps), and K splits the stream evenly among the stages, as the reference's K does its 30M
# steps. The bias gets the full step: with z-scored features the bias alone carries the mean
# prediction, and a step divided by N (the reference's rule) bounds its travel by about
# 250k * 1e-4 / N, below the mean return of many games (rtrl.learners.td).
ATARI_REFERENCE_STEPS = 30_000_000
ATARI_NORM_WINDOW = round(500_000 * _ATARI["steps"] / ATARI_REFERENCE_STEPS)
_ATARI_STAGED = {**_ATARI, "estimator": "staged_rtrl", "head_step_per_feature": True,
                 "bias_step_per_feature": False, "input_norm_window": ATARI_NORM_WINDOW,
                 "feature_norm_window": ATARI_NORM_WINDOW, "norm_floor": 1e-3}  # fmt: skip
# The reference's sizes, and T-BPTT baselines matched to them in multiply-adds per step
# (rtrl list): columnar 6:6 60k and CCN 15:5 63k against dense LSTM 6 units T = 8 61k;
# constructive 10:1 20k against 3 units T = 5 20k; constructive 30:1 45k against 5 units
# T = 7 45k.
_preset("atari-columnar", "Atari prediction: columnar LSTM 6:6 (one stage), exact RTRL",
        **_ATARI_STAGED, units=6, stage_size=6)  # fmt: skip
_preset("atari-ccn", "Atari prediction: columnar-constructive LSTM 15:5:K (3 stages of 5)",
        **_ATARI_STAGED, units=15, stage_size=5)  # fmt: skip
_preset("atari-constructive", "Atari prediction: constructive LSTM 10:1:K (one feature per stage)",
        **_ATARI_STAGED, units=10, stage_size=1)  # fmt: skip
_preset("atari-constructive-30", "Atari prediction: constructive LSTM 30:1:K",
        **_ATARI_STAGED, units=30, stage_size=1)  # fmt: skip
ATARI_TBPTT_GRID = ((6, 8), (3, 5), (5, 7), (16, 8))
for _h, _t in ATARI_TBPTT_GRID:
    _preset(f"atari-tbptt-{_h}-{_t}", f"Atari prediction: dense LSTM ({_h} units), T-BPTT T={_t}",
            **_ATARI, cell="dense_lstm", units=_h, estimator="tbptt", truncation=_t)  # fmt: skip
# Larger networks (the sizes of this library's first Atari study).
_preset("atari-columnar-20", "Atari prediction: columnar LSTM 20:20 (one stage), exact RTRL",
        **_ATARI_STAGED, units=20, stage_size=20)  # fmt: skip
_preset("atari-ccn-20-4", "Atari prediction: columnar-constructive LSTM 20:4:K (5 stages of 4)",
        **_ATARI_STAGED, units=20, stage_size=4)  # fmt: skip
_preset("atari-rtu", "Atari prediction: linear RTU (20 units), exact RTRL",
        **_ATARI, cell="linear_rtu", units=20)  # fmt: skip
_preset("atari-elstm", "Atari prediction: eLSTM (20 units), exact RTRL",
        **_ATARI, cell="elstm", units=20)  # fmt: skip


# Online control (RTU paper's study, Elelimy et al. 2024). PPO defaults are the reference
# hyperparameters (Ant-P): MLP(64) -> trunk -> actor/critic MLP(64), tanh.


def _control_preset(name: str, description: str, **overrides: Any) -> None:
    unknown = set(overrides) - set(CONTROL_DEFAULTS)
    assert not unknown, f"preset {name} sets unknown keys {unknown}"
    PRESETS[name] = (description, {**CONTROL_DEFAULTS, **overrides})


# Trunks with a matched recurrent-parameter budget of about 24k (64 inputs from the encoder).
CONTROL_TRUNKS = {
    "rtu": ("linear RTU 192, RTRL", {"cell": "linear_rtu", "units": 192}),  # 24,960
    "nonlinear-rtu": ("nonlinear RTU 192, RTRL", {"cell": "nonlinear_rtu", "units": 192}),
    "lru": ("online LRU 180, RTRL", {"cell": "online_lru", "units": 180}),  # 23,580
    "gru-bptt": ("GRU 64, BPTT", {"cell": "dense_gru", "units": 64, "estimator": "bptt"}),
    "lru-bptt": ("LRU 180, BPTT", {"cell": "online_lru", "units": 180, "estimator": "bptt"}),
}
MUJOCO_ENVS = [f"{task}-{obs}" for task in ("ant", "halfcheetah", "hopper", "walker2d")
                for obs in ("p", "v")]  # fmt: skip
POPGYM_ENVS = [f"{task}-{level}" for task in ("repeat_first", "repeat_previous", "count_recall",
                "autoencode", "higher_lower") for level in ("easy", "medium", "hard")]  # fmt: skip
# POPGym: one-hot observations and returns in [-1, 1], so no normalisation; 8 parallel games.
_POPGYM = {"normalize_obs": False, "scale_reward": False, "num_envs": 8, "rollout_length": 256,
           "step_size": 3e-4, "entropy_coef": 0.01}  # fmt: skip
for _trunk, (_what, _trunk_config) in CONTROL_TRUNKS.items():
    for _env in MUJOCO_ENVS:
        _control_preset(f"ppo-{_trunk}-{_env}", f"PPO on {_env.upper()} (Brax): {_what}",
                        env=_env, **_trunk_config)  # fmt: skip
    _control_preset(f"ppo-{_trunk}-reacher-p", f"PPO on REACHER-P (Brax): {_what}",
                    env="reacher-p", **_trunk_config)  # fmt: skip
    for _env in POPGYM_ENVS:
        _control_preset(f"ppo-{_trunk}-{_env}", f"PPO on POPGym {_env}: {_what}",
                        env=_env, **_trunk_config, **_POPGYM)  # fmt: skip
    _control_preset(f"ppo-{_trunk}-cartpole-p", f"PPO on CartPole-P: {_what}", env="cartpole-p",
                    **_trunk_config, num_envs=4, rollout_length=512, step_size=3e-4,
                    minibatches=8, hidden=32, steps=200_000)  # fmt: skip


# R2AC (Irie et al. 2023): IMPALA-style V-trace with an eLSTM trained by exact RTRL, against an
# LSTM trained by T-BPTT over the segment and a feed-forward agent, same encoder and budget.
# The reference's rules (rtrl.learners.impala.ImpalaConfig and clipped_rmsprop: RMSProp 6e-4,
# eps 0.01, decay 0.99, gradient norm 40, entropy 0.01, losses summed over 32 segments of 50
# steps, rewards clipped to [-1, 1]) are for Atari, ProcGen and DMLab at 50-200M steps. These
# vector tasks run at 1/100 of that budget, so their presets update 10 times as often (8
# segments of 20 steps) with step size 3e-3; with the reference's 6e-4 and 32 x 50 an eLSTM had
# not left random play on RepeatPrevious-Easy after 600k steps.
def _r2ac_trunks(units: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """The three R2AC agents, each with a trunk of ``units``."""
    return {
        "elstm": (f"eLSTM {units}, exact RTRL", {"cell": "elstm", "units": units}),
        "lstm-tbptt": (f"LSTM {units}, T-BPTT over the segment",
                       {"cell": "dense_lstm", "units": units, "estimator": "bptt"}),
        "ff": (f"feed-forward, one tanh layer of {units}",
               {"cell": "feedforward", "units": units}),
    }  # fmt: skip


_R2AC = {"learner": "impala", "num_envs": 8, "segment_length": 20, "step_size": 3e-3,
         "max_grad_norm": 40.0, "entropy_coef": 0.01, "scale_reward": False}  # fmt: skip
for _trunk, (_what, _trunk_config) in _r2ac_trunks(128).items():
    for _env in POPGYM_ENVS:
        _control_preset(f"r2ac-{_trunk}-{_env}", f"R2AC (V-trace) on POPGym {_env}: {_what}",
                        env=_env, **_trunk_config, **_R2AC, normalize_obs=False)  # fmt: skip
    _control_preset(f"r2ac-{_trunk}-cartpole-p", f"R2AC (V-trace) on CartPole-P: {_what}",
                    env="cartpole-p", **_trunk_config, **_R2AC, steps=300_000)  # fmt: skip
# The pixel benchmarks, through EnvPool (rtrl.envs.envpool_games): the reference's settings as
# they are (segments of 50 steps, 32 per update, RMSProp 6e-4; the convolutional torso into 512
# units, then the trunk with 256 units). The default budget is a short run; --paper gives the
# reference's 200M steps. ProcGen's levels are EnvPool's default (unlimited), where the reference
# trained on 500.
_R2AC_PIXELS = {"learner": "impala", "num_envs": 32, "segment_length": 50, "step_size": 6e-4,
                "max_grad_norm": 40.0, "entropy_coef": 0.01, "hidden": 512, "scale_reward": False,
                "normalize_obs": False, "steps": 160_000, "paper_steps": 200_000_000,
                "chunk": 16_000}  # fmt: skip
for _trunk, (_what, _trunk_config) in _r2ac_trunks(256).items():
    _control_preset(f"r2ac-{_trunk}-atari",
                    f"R2AC on Atari (EnvPool; atari:Pong, --set env=atari:GAME): {_what}",
                    env="atari:Pong", **_trunk_config, **_R2AC_PIXELS)  # fmt: skip
    _control_preset(f"r2ac-{_trunk}-procgen",
                    f"R2AC on ProcGen's memory games (EnvPool; procgen:heist, --set "
                    f"env=procgen:GAME): {_what}",
                    env="procgen:heist", **_trunk_config, **_R2AC_PIXELS)  # fmt: skip
# Memory that outlasts the truncation (study memory-control): bsuite's MemoryChain through gymnax
# (--set memory_length=m: the cue is asked for m steps later, one +-1 reward per episode), and
# POPGym's memory tasks with --set env=TASK. Exact-RTRL trunks against LSTMs whose credit stops T
# steps back (T-BPTT over segments of T steps; T also sets how often the learner updates) and a
# feed-forward agent, under R2AC (8 environments), and the RTU under the real-time actor-critic.
MEMORY_TRUNCATIONS = (1, 4, 16)
_MEMORY = {"env": "gymnax:MemoryChain-bsuite", "normalize_obs": False,
           "scale_reward": False, "steps": 200_000, "paper_steps": 2_000_000}  # fmt: skip
_MEMORY_R2AC = {**_R2AC, **_MEMORY, "segment_length": 16, "chunk": 20_480}
_MEMORY_AGENTS = {
    # forget bias 3 (f = 0.95 at the start): with the reference's initialisation (f = 0.5 in
    # every unit) the eLSTM forgets the cue within a few steps and stays at chance on MemoryChain
    "elstm": ("eLSTM 128 (forget bias 3), exact RTRL",
              {"cell": "elstm", "units": 128, "forget_bias": 3.0}),
    "rtu": ("linear RTU 128, exact RTRL", {"cell": "linear_rtu", "units": 128}),
    **{f"lstm-tbptt-{t}": (f"LSTM 128, T-BPTT T={t} (segments of {t} steps)",
                           {"cell": "dense_lstm", "units": 128, "estimator": "bptt",
                            "segment_length": t}) for t in MEMORY_TRUNCATIONS},
    "ff": ("feed-forward, one tanh layer of 128", {"cell": "feedforward", "units": 128}),
}  # fmt: skip
for _agent, (_what, _agent_config) in _MEMORY_AGENTS.items():
    _control_preset(f"memory-r2ac-{_agent}", f"R2AC on MemoryChain (--set memory_length=m): "
                    f"{_what}", **{**_MEMORY_R2AC, **_agent_config})  # fmt: skip
_AC = {
    "learner": "actor_critic",
    "units": 32,
    "hidden": 0,
    "steps": 200_000,
    "chunk": 50_000,
    "step_size": 1e-3,
}
_control_preset("ac-rtu-cartpole-p", "real-time actor-critic on CartPole-P: linear RTU 32, RTRL",
                env="cartpole-p", cell="linear_rtu", **_AC)  # fmt: skip
_control_preset("ac-rtu-halfcheetah-p",
                "real-time actor-critic on HALFCHEETAH-P (Brax): linear RTU 32, RTRL",
                env="halfcheetah-p", cell="linear_rtu",
                **{**_AC, "steps": 1_000_000, "step_size": 1e-4})  # fmt: skip
_control_preset("ac-rtu-repeat_previous-easy",
                "real-time actor-critic on POPGym repeat_previous-easy: linear RTU 32, RTRL",
                env="repeat_previous-easy", cell="linear_rtu", **_AC, normalize_obs=False,
                scale_reward=False, entropy_coef=0.01)  # fmt: skip
_MEMORY_PPO = {**_POPGYM, **_MEMORY, "chunk": 20_480}
_control_preset("memory-ppo-rtu", "PPO on MemoryChain (--set memory_length=m): linear RTU 192, "
                "exact RTRL", **_MEMORY_PPO, **CONTROL_TRUNKS["rtu"][1])  # fmt: skip
for _t in MEMORY_TRUNCATIONS:
    _control_preset(f"memory-ppo-gru-bptt-{_t}", f"PPO on MemoryChain (--set memory_length=m): "
                    f"GRU 64, BPTT over sequences of {_t} steps",
                    **_MEMORY_PPO, **CONTROL_TRUNKS["gru-bptt"][1], sequence_length=_t)  # fmt: skip
_control_preset("memory-ac-rtu",
                "real-time actor-critic on MemoryChain (--set memory_length=m): linear RTU 32, "
                "exact RTRL", cell="linear_rtu",
                **{**_AC, **_MEMORY, "entropy_coef": 0.01})  # fmt: skip

# Streaming RL with recurrent state (study streaming-memory; Farr et al. 2026): QRC(lambda) with
# its configuration on MemoryChain (lambda 0.95, Adam 1e-4 for Q and 1e-5 for h, beta 1,
# epsilon from 1 to 0.01 over the first 10% of the steps, one encoder layer of 64), each network
# with its own trunk, and stream-x's stabilisers (LayerNorm without gain, sparse initialisation
# s = 0.9; no observation or reward scaling: MemoryChain's are already in [-1, 1]). The exact
# RTRL agent against the same network trained with T-BPTT(1) (the previous state a constant),
# and GRU and feed-forward agents with T-BPTT(1). --set memory_length=m is a chain of
# L = m + 1 actions; --set learner=q_lambda (or sarsa_lambda) --set q_optimizer=obgd
# --set step_size=1 gives stream Q(lambda) (SARSA(lambda)) on the same networks.
_STREAMING = {"learner": "qrc_lambda", "lambda": 0.95, "q_optimizer": "adam", "step_size": 1e-4,
              "h_step_size": 1e-5, "h_regularizer": 1.0, "exploration_fraction": 0.1,
              "encoder_layers": 1, "encoder_units": 64, "layer_norm": True, "sparsity": 0.9,
              "bin_size": 5_000, "chunk": 50_000}  # fmt: skip
_STREAMING_MEMORY = {**_STREAMING, **_MEMORY, "steps": 100_000, "paper_steps": 500_000}
STREAMING_AGENTS = {
    "rtu": ("linear RTU 192, exact RTRL", {"cell": "linear_rtu", "units": 192}),
    "rtu-tbptt1": ("linear RTU 192, T-BPTT(1)",
                   {"cell": "linear_rtu", "units": 192, "estimator": "tbptt_1"}),
    "gru-tbptt1": ("GRU 64, T-BPTT(1)",
                   {"cell": "dense_gru", "units": 64, "estimator": "tbptt_1"}),
    "ff": ("feed-forward, a tanh layer of 192", {"cell": "feedforward", "units": 192}),
}  # fmt: skip
for _agent, (_what, _agent_config) in STREAMING_AGENTS.items():
    _control_preset(f"stream-memory-{_agent}",
                    f"QRC(lambda) on MemoryChain, one update per step (--set memory_length=m): "
                    f"{_what}", **_STREAMING_MEMORY, **_agent_config)  # fmt: skip

# Stream AC(lambda) (Elsayed et al. 2024; study streaming-control): the real-time actor-critic
# with ObGD at step size 1 (kappa 3 for the actor, 2 for the critic), lambda 0.8, entropy 0.01
# weighted by |delta|, separate actor and critic networks, stream-x's stabilisers (LayerNorm
# without gain, sparse initialisation s = 0.9, observation normalisation, reward scaling by the
# return's deviation; the time feature stream-x appends is left out). One encoder layer before
# the trunk: a linear RTU with exact RTRL (Farr et al.'s recurrent stream AC), or a tanh layer
# (the feed-forward agent: two hidden layers, as stream-x's MLP); widths 128 (RTU 64), or on
# CartPole-P 32 (RTU 32), stream-x's widths for MuJoCo and for classic control.
# --set env=... picks the task (e.g. hopper-p, gymnax:Breakout-MinAtar).
_STREAM_AC = {"learner": "actor_critic", "ac_optimizer": "obgd", "step_size": 1.0,
              "actor_kappa": 3.0, "critic_kappa": 2.0, "lambda": 0.8, "entropy_coef": 0.01,
              "shared_trunk": False, "hidden": 0, "encoder_layers": 1, "layer_norm": True,
              "sparsity": 0.9, "steps": 200_000, "paper_steps": 2_000_000, "chunk": 50_000,
              "bin_size": 5_000}  # fmt: skip
for _suffix, _env, _width in (("", "halfcheetah-p", 128), ("-cartpole-p", "cartpole-p", 32)):
    _control_preset(f"stream-ac-rtu{_suffix}",
                    f"stream AC(lambda) on {_env.upper()}: one encoder layer of {_width}, "
                    f"linear RTU {max(_width // 2, 32)} with exact RTRL, ObGD",
                    env=_env, cell="linear_rtu", units=max(_width // 2, 32),
                    encoder_units=_width, **_STREAM_AC)  # fmt: skip
    _control_preset(f"stream-ac-ff{_suffix}",
                    f"stream AC(lambda) on {_env.upper()}: feed-forward, two hidden layers of "
                    f"{_width}, ObGD", env=_env, cell="feedforward", units=_width,
                    encoder_units=_width, **_STREAM_AC)  # fmt: skip
_control_preset("stream-memory-ac-rtu",
                "stream AC(lambda) on MemoryChain (--set memory_length=m): one encoder layer of "
                "64, linear RTU 64 with exact RTRL, ObGD",
                **{**_STREAM_AC, **_MEMORY, "steps": 100_000, "paper_steps": 500_000},
                cell="linear_rtu", units=64, encoder_units=64, memory_length=15)  # fmt: skip


# The gradient-alignment test-bed (Javed et al. 2021; rtrl.experiments.gradient_alignment): one
# run is one coupling density, its seeds are independent problems; the study of that name runs
# the densities as a grid.
PRESETS["gradient-alignment"] = (
    "gradient alignment of estimators on coupled columnar LSTMs (--set density=...)",
    dict(ALIGNMENT_DEFAULTS),
)
PRESETS["gradient-alignment-meta"] = (
    "gradient alignment through online head updates (meta-gradients; --set density=...)",
    {**ALIGNMENT_DEFAULTS, "meta": True},
)


# The copy task (Irie et al. 2023's diagnostic; rtrl.experiments.copy_runs): one update per batch
# of 128 fresh sequences, Adam after clipping the gradient norm to 1 (the reference's batch and
# clipping; its step size, 3e-5, is for a 2048-unit eLSTM at L = 500, and its 10k training
# sequences are reused for 500 epochs, where here every batch is new). Steps count sequences.
# The eLSTM's step size 1e-2 and forget bias 3 were the best of {3e-3, 1e-2} x {0, 1, 3} for a
# 128-unit eLSTM at L = 20 after 640k sequences (per-sequence accuracy 0.54 against 0.39 with
# 3e-3 and the reference's initialisation).
PRESETS["copy-elstm-rtrl"] = (
    "copy task, L = 50: eLSTM 128, exact RTRL, one update per batch of sequences",
    dict(COPY_DEFAULTS),
)
PRESETS["copy-elstm-bptt"] = (
    "copy task, L = 50: eLSTM 128, backpropagation through whole sequences (RTRL's gradient, "
    "offline)",
    {**COPY_DEFAULTS, "estimator": "bptt"},
)
_COPY_LSTM = {**COPY_DEFAULTS, "cell": "dense_lstm", "forget_bias": 0.0, "step_size": 1e-3}
PRESETS["copy-lstm-tbptt"] = (
    "copy task, L = 50: LSTM 128, batch truncated BPTT (the state detached every T = 10 "
    "steps; --set truncation=...)",
    {**_COPY_LSTM, "estimator": "tbptt"},
)
PRESETS["copy-lstm-bptt"] = (
    "copy task, L = 50: LSTM 128, backpropagation through whole sequences (offline baseline)",
    {**_COPY_LSTM, "estimator": "bptt"},
)
