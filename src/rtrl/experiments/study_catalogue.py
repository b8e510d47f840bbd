"""The named studies (``STUDIES``), as data: each paper figure's grids, budgets, seeds and
figures. The machinery that plans, runs and reports them is ``rtrl.experiments.studies``.
Default budgets finish in minutes on the development machine's 2 cores; ``--paper`` gives the
papers' grids, budgets and seeds.
"""

from __future__ import annotations

from rtrl.envs.atari import GAMES
from rtrl.experiments import presets
from rtrl.experiments.gradient_alignment import DENSITIES
from rtrl.experiments.studies import Grid, Study

_CCN_STAGED = ("ccn-columnar", "ccn-constructive", "ccn")
_CCN_TBPTT = tuple(f"ccn-tbptt-{h}-{t}" for h, t in presets.TBPTT_GRID)
_ATARI_METHODS = ("atari-columnar", "atari-ccn", "atari-constructive", "atari-constructive-30",
                  "atari-tbptt-6-8", "atari-tbptt-3-5", "atari-tbptt-5-7")  # fmt: skip


def _control_presets(trunks, envs) -> tuple[str, ...]:
    return tuple(f"ppo-{trunk}-{env}" for env in envs for trunk in trunks)


STUDIES: dict[str, Study] = {}


def _study(study: Study) -> None:
    STUDIES[study.name] = study


_study(Study(
    "ccn-trace-patterning",
    "CCN paper: columnar, constructive and CCN networks against 8 dense T-BPTT LSTMs on trace "
    "patterning; best step size per method; error against compute",
    grids=(Grid(_CCN_STAGED, {"step_size": ("3e-3", "1e-3")}),
           Grid(_CCN_TBPTT, {"step_size": ("1e-3", "3e-4")})),
    paper_grids=(Grid(_CCN_STAGED, {"step_size": ("0.3", "0.1", "0.03", "0.01", "0.003", "0.001")}),
                 Grid(_CCN_TBPTT, {"step_size": ("1e-3", "3e-4", "1e-4", "3e-5")})),
    # 1M steps: where the columnar network falls below the constant predictor (the demo).
    seeds=3, paper_seeds=30, budget={"steps": "1000000"}, figures=("curves", "compute"),
))  # fmt: skip
_study(Study(
    "ccn-isi",
    "CCN paper: CCN 16:4 against T-BPTT 15-4 as the interval to bridge grows (ISI 20-80)",
    grids=(Grid(("isi-ccn", "isi-tbptt"), {"isi": ("20", "40", "60", "80")}),),
    paper_grids=(Grid(("isi-ccn", "isi-tbptt"),
                      {"isi": ("20", "30", "40", "50", "60", "70", "80")}),),
    # The reference's step size 1e-4 learns too slowly to show in 1M steps: 1e-3 by default.
    choose=(), seeds=3, paper_seeds=30, budget={"steps": "1000000", "step_size": "1e-3"},
    column="isi",
    figures=("curves", "column"),
))  # fmt: skip
# The RTU paper's architecture ablation (Elelimy et al. 2024, Fig. 1): RTU and online LRU, both
# with exact RTRL, restricted alike in each panel (no nonlinearity; tanh on the features; tanh in
# the recurrence), final error against the number of complex units, step size chosen per
# architecture and size.
_ABLATION_PANELS = {
    "no nonlinearity": ("rtu-tc-linear-rtu", "rtu-tc-lru"),
    "tanh on the features": ("rtu-tc-rtu", "rtu-tc-lru-tanh"),
    "tanh in the recurrence": ("rtu-tc-nonlinear-rtu", "rtu-tc-nonlinear-lru"),
}
_RTU_STEP_SIZES = ("1e-3", "3e-4")
_RTU_PAPER_STEP_SIZES = ("3e-3", "1e-3", "3e-4", "1e-4")


def _ablation_grids(units, step_sizes) -> tuple[Grid, ...]:
    return tuple(Grid(presets, {"units": units, "step_size": step_sizes}, panel=panel)
                 for panel, presets in _ABLATION_PANELS.items())  # fmt: skip


_study(Study(
    "rtu-ablation",
    "RTU paper: RTU against online LRU, both with exact RTRL, restricted alike (no "
    "nonlinearity, tanh on the features, tanh in the recurrence); error against units",
    grids=_ablation_grids(("4", "8", "16"), _RTU_STEP_SIZES),
    paper_grids=_ablation_grids(("2", "4", "8", "16", "32", "64"), _RTU_PAPER_STEP_SIZES),
    # The paper's seed count for these figures is not in the spec: 10.
    seeds=3, paper_seeds=10, column="units", figures=("panels",),
))  # fmt: skip
# The RTU paper's resource study (Fig. 2) on trace conditioning: the linear RTU with exact RTRL
# (8 units) against the online LRU and a GRU with T-BPTT, (a) at the RTU's multiply-adds per step
# as T grows (fewer units), (b) at the RTU's parameters as T grows (the computation grows), (c)
# with T = 16 as the parameters grow, (d) as the interval to bridge grows, at the RTU's
# computation with T = 8. The RTU does not truncate: in (a) and (b) it is a horizontal line.
_TBPTT_NETWORKS = ("rtu-tc-lru-tbptt", "rtu-tc-gru-tbptt")
_RESOURCE_PANELS = ("(a) equal computation per step", "(b) equal parameters",
                    "(c) T = 16, parameters grow",
                    "(d) equal computation, T = 8, ISI grows")  # fmt: skip


def _resource_grids(truncations, units, intervals, step_sizes) -> tuple[Grid, ...]:
    a, b, c, d = _RESOURCE_PANELS
    rtu = ("rtu-tc-rtu",)
    steps = {"step_size": step_sizes}
    return (
        Grid(rtu, steps, panel=a, column="truncation"),
        Grid(_TBPTT_NETWORKS, {"truncation": truncations, "match_compute": rtu, **steps}, panel=a),
        Grid(rtu, steps, panel=b, column="truncation"),
        Grid(_TBPTT_NETWORKS, {"truncation": truncations, "match_parameters": rtu, **steps},
             panel=b),
        Grid(rtu, {"units": units, **steps}, panel=c, column="parameters"),
        Grid(_TBPTT_NETWORKS, {"units": units, "truncation": ("16",), **steps}, panel=c),
        Grid(rtu, {"isi": intervals, **steps}, panel=d, column="isi"),
        Grid(_TBPTT_NETWORKS, {"isi": intervals, "truncation": ("8",), "match_compute": rtu,
                               **steps}, panel=d),
    )  # fmt: skip


_study(Study(
    "rtu-resources",
    "RTU paper: linear RTU with RTRL against LRU and GRU with T-BPTT on trace conditioning, at "
    "equal computation or parameters as T, the size and the interval grow",
    grids=_resource_grids(("1", "2", "4", "8", "16"), ("4", "8", "16"), ("10", "20", "30"),
                          _RTU_STEP_SIZES),
    paper_grids=_resource_grids(("1", "2", "4", "8", "16", "32"), ("4", "8", "16", "32", "64"),
                                ("10", "20", "30", "40", "50"), _RTU_PAPER_STEP_SIZES),
    seeds=3, paper_seeds=10, figures=("panels",),
))  # fmt: skip
_study(Study(
    "atari-prediction",
    "CCN paper's Atari prediction: staged networks against compute-matched T-BPTT, best step "
    "size per method, per-game table and aggregate (needs the recorded streams)",
    grids=(Grid(("atari-columnar", "atari-ccn", "atari-tbptt-6-8"),
                {"step_size": ("3e-4", "1e-3")}),),
    paper_grids=(Grid(_ATARI_METHODS, {"step_size": ("1e-4", "3e-4", "1e-3", "3e-3")}),),
    seeds=2, paper_seeds=30, budget={"steps": "100000"}, games=("Pong", "Breakout"),
    paper_games=GAMES,
))  # fmt: skip
# The RTU paper's control comparison (Figs. 4 and 5): PPO with every trunk at about 24k recurrent
# parameters (linear and nonlinear RTU and online LRU with RTRL; GRU and LRU with BPTT), each at
# its best step size (the paper reports each trunk's best-tuned variant), on the MuJoCo -P/-V
# tasks, Reacher-P and POPGym. By default two quick tasks at 4% of the paper's 1M steps.
_study(Study(
    "rtu-control",
    "RTU paper: PPO with RTRL trunks (linear and nonlinear RTU, online LRU) against BPTT "
    "trunks (GRU, LRU), best step size each, on partially observable MuJoCo, Reacher-P and "
    "POPGym tasks; return curves",
    grids=(Grid(_control_presets(presets.CONTROL_TRUNKS, ("cartpole-p", "repeat_previous-easy")),
                {"step_size": ("3e-4", "1e-3")}),),
    paper_grids=(Grid(_control_presets(presets.CONTROL_TRUNKS, (*presets.MUJOCO_ENVS,
                                       "reacher-p", *presets.POPGYM_ENVS)),
                      {"step_size": ("1e-4", "3e-4", "1e-3")}),),
    seeds=2, paper_seeds=10, budget={"steps": "40960"}, column="env",
))  # fmt: skip
# R2AC's pixel comparison: the eLSTM with exact RTRL, the LSTM with T-BPTT over the segment and
# the feed-forward agent, same torso and budget, on two Atari games where a recurrent agent beat
# frame stacking (Frostbite and Double Dunk, Hausknecht & Stone 2015) and two ProcGen memory
# games. The default budget is what this CPU runs in about an hour: the Nature torso (a tenth of
# the residual torso's cost here) and 8 environments per update instead of 32, so that each
# environment lives long enough (6,000 steps) to finish episodes; --paper gives the reference's
# settings (residual torso, 32 environments) and 200M steps.
_R2AC_TRUNKS = ("elstm", "lstm-tbptt", "ff")
_R2AC_GAMES = ("atari:Frostbite", "atari:DoubleDunk")
_R2AC_PROCGEN = ("procgen:heist", "procgen:maze")
_r2ac_grids = (
    Grid(tuple(f"r2ac-{trunk}-atari" for trunk in _R2AC_TRUNKS), {"env": _R2AC_GAMES}),
    Grid(tuple(f"r2ac-{trunk}-procgen" for trunk in _R2AC_TRUNKS), {"env": _R2AC_PROCGEN}),
)
_study(Study(
    "r2ac-pixels",
    "R2AC paper: V-trace agents, eLSTM with exact RTRL against LSTM with T-BPTT and a "
    "feed-forward agent, on Atari (EnvPool) and ProcGen memory games; return curves",
    grids=_r2ac_grids, paper_grids=_r2ac_grids, choose=(), seeds=2, paper_seeds=3,
    budget={"steps": "48000", "torso": "nature", "num_envs": "8"}, column="env",
))  # fmt: skip
# Does exact RTRL pay off for an agent? MemoryChain (bsuite, through gymnax) at memory lengths
# past every truncation, exact-RTRL trunks against truncated ones and a feed-forward agent, each
# under the learner it belongs to: R2AC (eLSTM and linear RTU with RTRL; LSTM with T-BPTT, T = 4
# and 16; feed-forward), PPO (linear RTU with RTRL; GRU with BPTT over sequences of 1, 4 and 16
# steps) and the real-time actor-critic (linear RTU). Best of two step sizes per agent and
# length. --paper adds T = 1 under R2AC (segments of one step: an update per step, three times
# the cost), lengths 4-128, POPGym's RepeatPrevious, RepeatFirst and CountRecall at Medium and
# Hard, and 2M steps.
_MEMORY_R2AC = tuple(f"memory-r2ac-{a}" for a in ("elstm", "rtu", "lstm-tbptt-4",
                                                   "lstm-tbptt-16", "ff"))  # fmt: skip
_MEMORY_PPO = ("memory-ppo-rtu", *(f"memory-ppo-gru-bptt-{t}" for t in presets.MEMORY_TRUNCATIONS))
_MEMORY_STEP_SIZES = {"memory-r2ac": ("1e-3", "3e-3"), "memory-ppo": ("3e-4", "1e-3"),
                      "memory-ac": ("1e-3", "3e-3")}  # fmt: skip
_MEMORY_POPGYM = tuple(f"{task}-{level}" for task in ("repeat_previous", "repeat_first",
                       "count_recall") for level in ("medium", "hard"))  # fmt: skip


def _memory_grids(r2ac, lengths, step_sizes, popgym=()) -> tuple[Grid, ...]:
    grids = []
    for learner, agents in (("memory-r2ac", r2ac), ("memory-ppo", _MEMORY_PPO),
                            ("memory-ac", ("memory-ac-rtu",))):  # fmt: skip
        steps = step_sizes[learner]
        grids.append(Grid(agents, {"memory_length": lengths, "step_size": steps}))
        if popgym:
            grids.append(Grid(agents, {"env": popgym, "step_size": steps}))
    return tuple(grids)


_study(Study(
    "memory-control",
    "Exact RTRL against truncated BPTT and feed-forward agents under R2AC, PPO and the "
    "real-time actor-critic on MemoryChain past the truncation; success against memory length",
    grids=_memory_grids(_MEMORY_R2AC, ("4", "16", "64"), _MEMORY_STEP_SIZES),
    paper_grids=_memory_grids(
        (*_MEMORY_R2AC, "memory-r2ac-lstm-tbptt-1"), ("4", "8", "16", "32", "64", "128"),
        {k: ("3e-4", *v) if k == "memory-ppo" else (*v, "1e-2") for k, v in
         _MEMORY_STEP_SIZES.items()}, _MEMORY_POPGYM),
    seeds=3, paper_seeds=10, budget={"steps": "50000"}, column="memory_length",
    more_columns=("env",), figures=("success",),
))  # fmt: skip
# Streaming RL with recurrent state (Farr et al. 2026): QRC(lambda), one update per step and no
# stored past, with an exact-RTRL RTU against the same RTU, a GRU and a feed-forward agent
# trained with T-BPTT(1), on MemoryChain as the chain grows (L = memory_length + 1 actions).
# --paper: their lengths up to L = 128, 500k steps and 16 seeds, and their five POPGym tasks at
# Easy.
_STREAMING_AGENTS = tuple(f"stream-memory-{a}" for a in presets.STREAMING_AGENTS)
_study(Study(
    "streaming-memory",
    "Streaming QRC(lambda) on MemoryChain: an RTU with exact RTRL against RTU, GRU and "
    "feed-forward agents with T-BPTT(1); success against chain length",
    grids=(Grid(_STREAMING_AGENTS, {"memory_length": ("1", "3", "7", "15", "31", "63")}),),
    paper_grids=(
        Grid(_STREAMING_AGENTS,
             {"memory_length": ("1", "3", "7", "15", "31", "47", "63", "127")}),
        Grid(_STREAMING_AGENTS, {"env": tuple(f"{task}-easy" for task in (
            "autoencode", "concentration", "count_recall", "higher_lower", "repeat_first"))}),
    ),
    choose=(), seeds=3, paper_seeds=16, column="memory_length", more_columns=("env",),
    figures=("success",),
))  # fmt: skip
# Stream AC(lambda) with and without recurrent state (Elsayed et al. 2024; Farr et al. 2026): an
# exact-RTRL RTU against a feed-forward network, both with stream-x's stabilisers, on partially
# observed control (velocities hidden) and a MinAtar game, at budgets this machine runs; --paper:
# the four -P MuJoCo tasks and Breakout at stream-x's 2M steps.
_STREAM_AC = ("stream-ac-rtu", "stream-ac-ff")
_STREAM_AC_CARTPOLE = Grid(tuple(f"{p}-cartpole-p" for p in _STREAM_AC), {"env": ("cartpole-p",)})
_study(Study(
    "streaming-control",
    "Stream AC(lambda) with an exact-RTRL RTU against a feed-forward network, stream-x's "
    "stabilisers, on -P control tasks and MinAtar Breakout; return curves",
    grids=(_STREAM_AC_CARTPOLE,
           Grid(_STREAM_AC, {"env": ("halfcheetah-p", "gymnax:Breakout-MinAtar")})),
    paper_grids=(_STREAM_AC_CARTPOLE,
                 Grid(_STREAM_AC, {"env": ("ant-p", "halfcheetah-p", "hopper-p", "walker2d-p",
                                           "gymnax:Breakout-MinAtar")})),
    choose=(), seeds=2, paper_seeds=10, budget={"steps": "100000"}, column="env",
))  # fmt: skip
# The copy task: which limits the eLSTM at long patterns, its architecture or its gradient? Exact
# RTRL against backpropagation through whole sequences of the same eLSTM (the same gradient,
# offline) and of an LSTM, and LSTMs with batch T-BPTT (T = 5, 10), at one sequence budget each.
_COPY_LENGTHS = ("5", "10", "20", "50")
_copy_grids = (Grid(("copy-elstm-rtrl", "copy-elstm-bptt", "copy-lstm-bptt"),
                    {"max_length": _COPY_LENGTHS}),
               Grid(("copy-lstm-tbptt",), {"max_length": _COPY_LENGTHS,
                                           "truncation": ("5", "10")}))  # fmt: skip
_study(Study(
    "copy",
    "Irie et al.'s copy task: eLSTM with exact RTRL against whole-sequence BPTT of the eLSTM "
    "and an LSTM, and T-BPTT; recalled length and sequence accuracy against L",
    grids=_copy_grids, paper_grids=_copy_grids, choose=(), seeds=2, paper_seeds=3,
    budget={"steps": "64000"}, column="max_length", figures=("column",),
))  # fmt: skip
_study(Study(
    "gradient-alignment",
    "gradient alignment of full RTRL, the columnar approximation, SnAp-1, UORO and T-BPTT with "
    "BPTT on coupled columnar LSTMs, against the coupling density",
    grids=(Grid(("gradient-alignment",), {"density": ("0", "0.1", "0.5", "1")}),),
    paper_grids=(Grid(("gradient-alignment",),
                      {"density": tuple(f"{d:g}" for d in DENSITIES)}),),
    choose=(), seeds=10, paper_seeds=30, column="density", figures=("alignment",),
))  # fmt: skip
