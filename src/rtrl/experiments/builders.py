"""From a configuration dictionary (``rtrl.experiments.presets``) to the objects it describes:
streams and environments, cells, estimators, optimisers and learners. Every name is looked up in
its layer's registry (``rtrl.envs.registry``, ``rtrl.cells.CELLS``, ``rtrl.gradients.ESTIMATORS``,
``rtrl.learners.OPTIMIZERS``)."""

from __future__ import annotations

from typing import Any

from rtrl.cells import FEEDFORWARD, make_cell
from rtrl.envs.control import ControlEnv, wrap_for_agents
from rtrl.envs.gymnax_envs import DEFAULT_MEMORY_LENGTH
from rtrl.envs.registry import (
    HOST_PREFIX,
    is_envpool_env,
    is_host_env,
    make_control_env,
    make_host_envs,
    make_stream,
    stream_observation_count,
)
from rtrl.gradients import ESTIMATORS, make_estimator
from rtrl.gradients.base import stateless
from rtrl.learners import make_optimizer, td_lambda
from rtrl.learners.actor_critic import actor_critic
from rtrl.learners.impala import ImpalaConfig, impala
from rtrl.learners.optim import PER_STREAM_OPTIMIZERS
from rtrl.learners.ppo import PPOConfig, ppo
from rtrl.learners.stream_q import Q_LEARNERS, check_q_optimizer, stream_q
from rtrl.learners.streaming import stream_network
from rtrl.learners.trunks import bptt_trunk, feedforward_trunk, rtrl_trunk
from rtrl.networks.normalize import rate_of_window
from rtrl.networks.staged import staged_network
from rtrl.spaces import ActionSpace, Discrete

STREAM_OPTIONS = ("isi", "num_distractors", "game", "frame_size", "resize", "gamma")
# The learners that update once per step, stepping one environment per seed
ONLINE_LEARNERS = ("actor_critic", *Q_LEARNERS)
CONTROL_LEARNERS = ("ppo", "impala", *ONLINE_LEARNERS)


# Prediction


def _stream_options(config: dict[str, Any]) -> dict[str, Any]:
    return {key: config[key] for key in STREAM_OPTIONS}


def observation_count(config: dict[str, Any]) -> int:
    """The size of a configuration's observations, without loading recorded data."""
    return stream_observation_count(config["stream"], **_stream_options(config))


def staged_network_of(config: dict[str, Any]):
    """The staged network of a ``staged_rtrl`` configuration (stage sizes and steps resolved)."""
    units = config["units"]
    stage_size = config["stage_size"] or units
    stages = units // stage_size if stage_size > 0 else 1
    stage_steps = config["stage_steps"] or max(1, config["steps"] // stages)
    return staged_network(
        config["cell"], units, stage_size, stage_steps,
        input_norm_rate=rate_of_window(config["input_norm_window"]),
        input_norm_floor=config["norm_floor"],
    )  # fmt: skip


# The cells whose f a configuration's ``nonlinearity`` chooses.
TAKES_NONLINEARITY = ("linear_rtu", "nonlinear_rtu", "online_lru", "nonlinear_lru")


def cell_of(config: dict[str, Any]):
    """The configuration's cell; ``forget_bias`` and ``max_timescale`` (where the kind has
    them) are the eLSTM's initialisation, ``nonlinearity`` the RTU's or LRU's f."""
    if config["cell"] == FEEDFORWARD:
        raise ValueError("cell=feedforward has no recurrent state: it is the trunk of the PPO and "
                         "IMPALA presets only; choose a recurrent cell here")  # fmt: skip
    options = {}
    for key in ("forget_bias", "max_timescale"):
        if config.get(key):
            if config["cell"] != "elstm":
                raise ValueError(f"{key} applies to the eLSTM only (cell=elstm, or {key}=0)")
            options[key] = config[key]
    if config.get("nonlinearity"):
        if config["cell"] not in TAKES_NONLINEARITY:
            raise ValueError(f"nonlinearity applies to {', '.join(TAKES_NONLINEARITY)} (or set "
                             "nonlinearity= for the cell's own)")  # fmt: skip
        options["nonlinearity"] = config["nonlinearity"]
    return make_cell(config["cell"], config["units"], **options)


def build_estimator(config: dict[str, Any]):
    """The estimator of a prediction configuration: of its cell, or of the staged network it
    describes for ``staged_rtrl``."""
    if config["estimator"] not in ESTIMATORS:
        raise ValueError(
            f"unknown estimator {config['estimator']!r}; choose one of {sorted(ESTIMATORS)}"
        )
    if config["estimator"] == "staged_rtrl":  # the estimator of a network, not of a cell
        return make_estimator("staged_rtrl", staged_network_of(config))
    if config["input_norm_window"]:
        raise ValueError(
            "input_norm_window normalises the inputs of a staged network's stages: it needs "
            "estimator=staged_rtrl (or set input_norm_window=0)"
        )
    cell = cell_of(config)
    truncation = config["truncation"] if config["estimator"] == "tbptt" else None
    return make_estimator(config["estimator"], cell, truncation=truncation)


def _online_optimizer(name: str, step_size: float, kappa: float):
    """An online learner's optimiser by name; ObGD's (``PER_STREAM_OPTIMIZERS``) also takes the
    bound kappa, which the others have not."""
    options = {"kappa": kappa} if name in PER_STREAM_OPTIMIZERS else {}
    return make_optimizer(name, step_size, **options)


def build_td_learner(config: dict[str, Any]):
    """The TD(lambda) learner of a prediction configuration (its network, estimator, optimiser
    and head rules), independent of the stream."""
    return td_lambda(
        build_estimator(config),
        _online_optimizer(config["optimizer"], config["step_size"], config["kappa"]),
        config["lambda"],
        feature_norm_rate=rate_of_window(config["feature_norm_window"]),
        feature_norm_floor=config["norm_floor"],
        head_step_per_feature=config["head_step_per_feature"],
        bias_step_per_feature=config["bias_step_per_feature"],
        per_stream_optimizer=config["optimizer"] in PER_STREAM_OPTIMIZERS,
    )


def build_prediction(config: dict[str, Any]):
    """The stream and the TD(lambda) learner a prediction configuration describes."""
    learner = build_td_learner(config)  # names are checked before recorded data is loaded
    stream = make_stream(config["stream"], **_stream_options(config))
    length = getattr(stream, "length", None)
    if length is not None and config["steps"] > length:
        raise ValueError(
            f"steps ({config['steps']}) exceeds the {length} steps of {stream.name}; "
            f"use --steps {length} or fewer"
        )
    return stream, learner


# Control


def control_env(config: dict[str, Any]) -> ControlEnv:
    # The default memory length is MemoryChain's own, so other environments accept it.
    memory_length = config["memory_length"]
    memory_length = None if memory_length == DEFAULT_MEMORY_LENGTH else memory_length
    env = make_control_env(config["env"], config["mujoco_backend"], memory_length)
    return wrap_for_agents(env, config["normalize_obs"], config["scale_reward"], config["gamma"],
                           previous_reward=config["previous_reward"])  # fmt: skip


def host_envs(config: dict[str, Any], seeds: int):
    """One Gymnasium environment per seed, for ``env = "gym:..."``."""
    return make_host_envs(config["env"][len(HOST_PREFIX) :], num_envs=seeds, seed=config["seed"])


def is_envpool(config: dict[str, Any]) -> bool:
    return is_envpool_env(config["env"])


def envpool_envs(config: dict[str, Any], count: int, **envpool_options: Any):
    """``count`` EnvPool environments for ``env = "atari:GAME"`` or ``"procgen:GAME"``
    (``envpool_options``: EnvPool's own, e.g. ``num_threads``)."""
    from rtrl.envs.envpool_games import EnvPoolEnvs

    return EnvPoolEnvs(config["env"], num_envs=count, seed=config["seed"], **envpool_options)


def check_control_learner(config: dict[str, Any]) -> None:
    if config["learner"] not in CONTROL_LEARNERS:
        raise ValueError(f"unknown learner {config['learner']!r}; choose one of {CONTROL_LEARNERS}")
    if is_envpool(config) and config["learner"] != "impala":
        raise ValueError("EnvPool environments (atari:..., procgen:...) run with the IMPALA "
                         "learner (--set learner=impala)")  # fmt: skip
    if config["previous_reward"] and (is_envpool(config) or is_host_env(config["env"])):
        raise ValueError("previous_reward applies to JAX environments only (set "
                         "previous_reward=false)")  # fmt: skip
    if is_host_env(config["env"]) and config["learner"] not in ONLINE_LEARNERS:
        raise ValueError(
            "Gymnasium environments (env=gym:...) run with the host-loop online learners "
            f"(--set learner=actor_critic, or one of {', '.join(Q_LEARNERS)}); PPO and IMPALA "
            "need a JAX environment"
        )


def build_trunk(config: dict[str, Any]):
    """The batched learners' trunk: RTRL with an online estimator, BPTT (``estimator=bptt``), or
    none (``cell=feedforward``: one tanh layer)."""
    if config["cell"] == FEEDFORWARD:
        return feedforward_trunk(config["units"])
    cell = cell_of(config)
    if config["estimator"] == "bptt":
        return bptt_trunk(cell)
    return rtrl_trunk(make_estimator(config["estimator"], cell))


def build_ppo(config: dict[str, Any], env: ControlEnv):
    optimizer = make_optimizer(
        "clipped_adam",
        config["step_size"],
        max_grad_norm=config["max_grad_norm"],
        eps=config["adam_eps"],
    )
    ppo_config = PPOConfig(**{k: config[k] for k in PPOConfig._fields})
    return ppo(env, build_trunk(config), ppo_config, optimizer)


def build_impala(config: dict[str, Any], env):
    """IMPALA on a JAX ``ControlEnv``, or on host environments (EnvPool's)."""
    optimizer = make_optimizer(
        "clipped_rmsprop",
        config["step_size"],
        max_grad_norm=config["max_grad_norm"],
        eps=config["rmsprop_eps"],
    )
    impala_config = ImpalaConfig(**{k: config[k] for k in ImpalaConfig._fields})
    return impala(env, build_trunk(config), impala_config, optimizer)


def _online_estimator(config: dict[str, Any], windows: bool = True):
    """The trunk of a learner that updates once per step: an online estimator of the cell, or
    for the feed-forward cell none (``stateless``: its gradient is exact). ``windows=False``
    refuses T-BPTT windows longer than one step (learners that store nothing of the past)."""
    if config["cell"] == FEEDFORWARD:
        return stateless(make_cell(FEEDFORWARD, config["units"]))
    name = config["estimator"]
    if name == "bptt":
        raise ValueError("the online learners need an online estimator, not bptt (e.g. "
                         "columnar_rtrl, or tbptt_1)")  # fmt: skip
    if not windows and name.startswith("tbptt") and name != "tbptt_1":
        raise ValueError(f"the action-value learners store no past steps, so estimator={name} "
                         "cannot run: use tbptt_1 or an RTRL estimator")  # fmt: skip
    return make_estimator(name, cell_of(config))


def build_actor_critic(config: dict[str, Any], action_space):
    """The real-time actor-critic (with ObGD: stream AC(lambda)); its online T-BPTT windows
    may be longer than one step (the estimator keeps the window's inputs)."""
    name, step_size = config["ac_optimizer"], config["step_size"]
    return actor_critic(
        _online_estimator(config), action_space,
        _online_optimizer(name, step_size, config["actor_kappa"]),
        _online_optimizer(name, step_size, config["critic_kappa"]),
        gamma=config["gamma"], lambda_=config["lambda"], entropy_coef=config["entropy_coef"],
        shared_trunk=config["shared_trunk"], head_hidden=config["hidden"],
        bootstrap_truncation=config["bootstrap_truncation"],
        entropy_by_td_error=name in PER_STREAM_OPTIMIZERS,
        encoder_sizes=_encoder_sizes(config), layer_norm=config["layer_norm"],
        sparsity=config["sparsity"],
    )  # fmt: skip


def _encoder_sizes(config: dict[str, Any]) -> tuple[int, ...]:
    return (config["encoder_units"],) * config["encoder_layers"]


def build_stream_q(config: dict[str, Any], action_space: ActionSpace):
    """Q(lambda), SARSA(lambda) or QRC(lambda) (``learner``) on the configuration's streaming
    network; with ``q_optimizer=obgd`` the stream-x learners."""
    learner, name = config["learner"], config["q_optimizer"]
    if not isinstance(action_space, Discrete):
        raise ValueError(f"{learner} learns action values of discrete actions; these are "
                         "continuous: use learner=actor_critic")  # fmt: skip
    check_q_optimizer(learner, name)

    def network():
        estimator = _online_estimator(config, windows=False)
        return stream_network(estimator, action_space.n, _encoder_sizes(config),
                              config["layer_norm"], config["sparsity"])  # fmt: skip

    corrected = learner == "qrc_lambda"
    return stream_q(
        network(), learner, _online_optimizer(name, config["step_size"], config["q_kappa"]),
        gamma=config["gamma"], lambda_=config["lambda"], epsilon_start=config["epsilon_start"],
        epsilon_end=config["epsilon_end"],
        exploration_steps=int(config["exploration_fraction"] * config["steps"]),
        h_network=network() if corrected else None,
        h_optimizer=make_optimizer(name, config["h_step_size"]) if corrected else None,
        h_regularizer=config["h_regularizer"],
        bootstrap_truncation=config["bootstrap_truncation"],
    )  # fmt: skip


def build_online_learner(config: dict[str, Any], action_space: ActionSpace):
    """The learner of an online control configuration, which steps as the actor-critic does:
    ``step(state, key, observation, reward, terminated, truncated, final observation)``."""
    if config["learner"] in Q_LEARNERS:
        return build_stream_q(config, action_space)
    return build_actor_critic(config, action_space)


def point_steps(config: dict[str, Any]) -> int:
    """Control: environment steps per point of the return curve (one PPO iteration, or one
    actor-critic bin)."""
    if config["learner"] == "ppo":
        return config["rollout_length"] * config["num_envs"]
    if config["learner"] == "impala":
        return config["segment_length"] * config["num_envs"]
    return config["bin_size"]


def chunk_steps(config: dict[str, Any]) -> int:
    """Control: steps per seed in one compiled chunk, ``chunk`` rounded down to whole points of
    the curve (at least one)."""
    point = point_steps(config)
    return point * max(1, config["chunk"] // point)
