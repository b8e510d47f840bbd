"""Online control experiments: PPO (RTRL or BPTT trunks) and real-time actor-critic.

A run trains ``seeds`` independent agents in one compiled, vmapped program, a chunk of
iterations (PPO) or steps (actor-critic) per call. Its learning curve is the mean undiscounted
return of the episodes that ended in each interval of environment steps, written to
``curve.csv`` (one column per seed) after every chunk, so a run that stops keeps what it
produced. ``summary.json`` holds the final return (mean over the last ``final_fraction`` of the
curve) per seed, and its mean and standard error.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from rtrl import compiled
from rtrl.cells import make_cell
from rtrl.envs.control import ControlEnv, wrap_for_agents
from rtrl.envs.registry import make_control_env
from rtrl.experiments.plots import new_figure, plot_mean_band, save_figure
from rtrl.experiments.runner import standard_error
from rtrl.gradients import make_estimator
from rtrl.learners.actor_critic import actor_critic
from rtrl.learners.ppo import PPOConfig, bptt_trunk, ppo, rtrl_trunk

LEARNERS = ("ppo", "actor_critic")


def control_env(config: dict[str, Any]) -> ControlEnv:
    env = make_control_env(config["env"], mujoco_backend=config["mujoco_backend"])
    return wrap_for_agents(env, config["normalize_obs"], config["scale_reward"], config["gamma"])


def ppo_config(config: dict[str, Any]) -> PPOConfig:
    return PPOConfig(**{key: config[key] for key in PPOConfig._fields})


def build_trunk_cell(config: dict[str, Any]):
    return make_cell(config["cell"], config["units"])


def build_ppo(config: dict[str, Any], env: ControlEnv):
    cell = build_trunk_cell(config)
    if config["estimator"] == "bptt":
        trunk = bptt_trunk(cell)
    else:
        trunk = rtrl_trunk(make_estimator(config["estimator"], cell))
    return ppo(env, trunk, ppo_config(config))


def build_actor_critic(config: dict[str, Any], action_space):
    if config["estimator"] == "bptt":
        raise ValueError("the real-time actor-critic needs an online estimator, not bptt")
    estimator = make_estimator(config["estimator"], build_trunk_cell(config))
    return actor_critic(
        estimator, action_space,
        optax.adam(config["actor_step_size"]), optax.adam(config["critic_step_size"]),
        gamma=config["gamma"], lambda_=config["lambda"], entropy_coef=config["entropy_coef"],
        shared_trunk=config["shared_trunk"], head_hidden=config["hidden"],
    )  # fmt: skip


class ChunkedProgram(NamedTuple):
    """``init(seed_keys) -> state`` and ``run_chunk(state) -> (state, returns, episodes,
    losses)``, each output of shape (seeds, points); ``point_steps`` environment steps per point,
    ``points_per_chunk`` points per call."""

    init: Callable
    run_chunk: Callable
    point_steps: int
    points_per_chunk: int


def ppo_program(config: dict[str, Any]) -> ChunkedProgram:
    env = control_env(config)
    agent = build_ppo(config, env)
    per_iteration = config["rollout_length"] * config["num_envs"]
    iterations = max(1, config["chunk"] // per_iteration)

    def run_chunk(state):
        state, metrics = jax.lax.scan(lambda s, _: agent.iteration(s), state, None, iterations)
        loss = metrics["policy_loss"] + metrics["value_loss"]
        return state, metrics["episode_return"], metrics["episodes"], loss

    return ChunkedProgram(
        compiled.jit(jax.vmap(agent.init)),
        compiled.jit(jax.vmap(run_chunk)),
        per_iteration,
        iterations,
    )


def actor_critic_program(config: dict[str, Any]) -> ChunkedProgram:
    env = control_env(config)
    learner = build_actor_critic(config, env.action_space)
    bin_size = config["bin_size"]
    bins = max(1, config["chunk"] // bin_size)

    def init(key):
        k_agent, k_env, key = jax.random.split(key, 3)
        env_state, obs = env.reset(k_env)
        reward, done = jnp.zeros(()), jnp.zeros((), bool)  # nothing received before the start
        return learner.init(k_agent, env.observation_size), env_state, obs, reward, done, key

    def run_chunk(state):
        def per_step(carry, _):
            agent, env_state, obs, reward, done, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            agent, action, metrics = learner.step(agent, k_act, obs, reward, done)
            env_state, obs, reward, done, info = env.step(k_env, env_state, action)
            finished = jnp.where(done, info["episode_return"], 0.0)
            return (agent, env_state, obs, reward, done, key), (finished, done, metrics)

        state, (finished, done, metrics) = jax.lax.scan(per_step, state, None, bins * bin_size)
        episodes = done.reshape(bins, bin_size).sum(1)
        returns = finished.reshape(bins, bin_size).sum(1) / jnp.maximum(episodes, 1)
        td_error = (metrics["td_error"] ** 2).reshape(bins, bin_size).mean(1)
        return state, returns, episodes, td_error

    return ChunkedProgram(
        compiled.jit(jax.vmap(init)), compiled.jit(jax.vmap(run_chunk)), bin_size, bins
    )


HOST_PREFIX = "gym:"  # env = "gym:<Gymnasium id>" or "gym:<mujoco task>-p|v": host loop


def host_envs(config: dict[str, Any], seeds: int):
    """One Gymnasium environment per seed (``rtrl.envs.host``)."""
    from rtrl.envs.host import HostEnvs
    from rtrl.envs.mujoco import MUJOCO_LAYOUT, gymnasium_pomdp

    name = config["env"][len(HOST_PREFIX) :]
    task, _, observed = name.rpartition("-")
    if task in MUJOCO_LAYOUT and observed in ("p", "v"):
        return gymnasium_pomdp(task, observed, num_envs=seeds, seed=config["seed"])
    return HostEnvs(name, num_envs=seeds, seed=config["seed"])


def host_actor_critic_program(config: dict[str, Any], seeds: int) -> ChunkedProgram:
    """The actor-critic stepped from Python with Gymnasium environments: a jitted, vmapped
    learner step per environment step (no observation normalisation)."""
    envs = host_envs(config, seeds)
    learner = build_actor_critic(config, envs.action_space)
    step = compiled.jit(jax.vmap(learner.step))
    bin_size = config["bin_size"]
    bins = max(1, config["chunk"] // bin_size)

    def init(seed_keys):
        agents = jax.vmap(learner.init, in_axes=(0, None))(seed_keys, envs.observation_size)
        return agents, envs.reset(), np.zeros(seeds), np.zeros(seeds, bool), seed_keys

    def run_chunk(state):
        agents, obs, reward, done, keys = state
        sums, episodes = np.zeros((seeds, bins)), np.zeros((seeds, bins), int)
        td_errors = np.zeros((seeds, bins))
        for t in range(bins * bin_size):
            keys, act_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
            agents, actions, metrics = step(agents, act_keys, obs, reward, done)
            obs, reward, done, finished = envs.step(np.asarray(actions))
            sums[:, t // bin_size] += np.where(done, finished, 0.0)
            episodes[:, t // bin_size] += done
            td_errors[:, t // bin_size] += np.asarray(metrics["td_error"]) ** 2 / bin_size
        returns = sums / np.maximum(episodes, 1)
        return (agents, obs, reward, done, keys), returns, episodes, td_errors

    return ChunkedProgram(init, run_chunk, bin_size, bins)


def build_program(config: dict[str, Any], seeds: int) -> ChunkedProgram:
    if config["learner"] not in LEARNERS:
        raise ValueError(f"unknown learner {config['learner']!r}; choose one of {LEARNERS}")
    if config["env"].startswith(HOST_PREFIX):
        if config["learner"] != "actor_critic":
            raise ValueError(
                "Gymnasium environments (env=gym:...) run with the host-loop actor-critic "
                "(--set learner=actor_critic); PPO needs a JAX environment"
            )
        return host_actor_critic_program(config, seeds)
    if config["learner"] == "ppo":
        return ppo_program(config)
    return actor_critic_program(config)


def run_control(
    config: dict[str, Any], seeds: int, out: Path, progress: bool = True
) -> dict[str, Any]:
    """Train ``seeds`` agents for ``config["steps"]`` environment steps; returns the summary."""
    program = build_program(config, seeds)  # validates names before anything is written
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"config": config, "seeds": seeds}, indent=2))
    chunk_steps = program.point_steps * program.points_per_chunk
    chunks = max(1, math.ceil(config["steps"] / chunk_steps))
    state = program.init(jax.random.split(jax.random.PRNGKey(config["seed"]), seeds))
    returns = []
    bar = tqdm(total=chunks * chunk_steps, unit="step", unit_scale=True, disable=not progress,
               desc=out.name)  # fmt: skip
    for index in range(chunks):
        started = time.perf_counter()
        state, chunk_returns, chunk_episodes, losses = program.run_chunk(state)
        returns.append(np.where(np.asarray(chunk_episodes) > 0, np.asarray(chunk_returns), np.nan))
        write_curve(out / "curve.csv", program.point_steps, np.concatenate(returns, axis=1))
        if not np.isfinite(np.asarray(losses)).all():
            bar.close()
            summarise_control(out, config, status="diverged")
            raise RuntimeError(
                f"non-finite loss in chunk {index} (steps up to {(index + 1) * chunk_steps}); "
                f"the curve so far is kept in {out / 'curve.csv'}. Lower the step size "
                "(--set learning_rate=... or actor_step_size/critic_step_size) and start a new "
                "run directory."
            )
        bar.update(chunk_steps)
        bar.set_postfix(steps_per_s=f"{chunk_steps * seeds / (time.perf_counter() - started):,.0f}")
    bar.close()
    return summarise_control(out, config, status="complete")


def write_curve(path: Path, point_steps: int, returns: np.ndarray) -> None:
    """One row per point: environment steps at its end, then the mean return per seed."""
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *(f"seed_{i}" for i in range(returns.shape[0]))])
        for j in range(returns.shape[1]):
            writer.writerow([(j + 1) * point_steps, *(f"{v:.6g}" for v in returns[:, j])])
    temporary.replace(path)


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, returns of shape (seeds, points)); NaN where no episode ended."""
    path = run_dir / "curve.csv"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no curve.csv; is it a control run directory?")
    table = np.genfromtxt(path, delimiter=",", skip_header=1, ndmin=2)
    return table[:, 0], table[:, 1:].T


def summarise_control(out: Path, config: dict[str, Any], status: str) -> dict[str, Any]:
    steps, returns = read_curve(out)
    window = max(1, math.ceil(config["final_fraction"] * len(steps)))
    final = np.nanmean(returns[:, -window:], axis=1)
    summary = {
        "status": status,
        "steps": int(steps[-1]) if len(steps) else 0,
        "final_return_per_seed": final.tolist(),
        "final_return_mean": float(np.nanmean(final)),
        "final_return_stderr": standard_error(final),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def plot_control_runs(run_dirs: list[Path], out: Path, smooth: int = 1) -> Path:
    """Mean episodic return against environment steps, mean over seeds +- standard error."""
    fig, ax = new_figure()
    for run_dir in run_dirs:
        steps, returns = read_curve(run_dir)
        if smooth > 1:  # moving average over points, ignoring empty ones
            kernel = np.ones(smooth)
            valid = np.isfinite(returns)
            sums = np.apply_along_axis(np.convolve, 1, np.where(valid, returns, 0), kernel, "same")
            counts = np.apply_along_axis(np.convolve, 1, valid.astype(float), kernel, "same")
            returns = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        config = json.loads((run_dir / "config.json").read_text())["config"]
        label = f"{run_dir.name} ({config['cell']} {config['units']}, {config['estimator']})"
        plot_mean_band(ax, steps, returns, label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episodic return")
    ax.legend(fontsize=8)
    return save_figure(fig, out)
