"""Online control experiments: PPO and IMPALA-style V-trace (RTRL, BPTT or feed-forward
trunks), and the learners that update once per step (real-time actor-critic, Q(lambda),
SARSA(lambda), QRC(lambda)).

A run trains ``seeds`` independent agents in one compiled, vmapped program, a chunk of
iterations (PPO, IMPALA) or steps (the online learners) per call, through the run loop
(``rtrl.experiments.run_loop``: checkpoints, resume, divergence). Its learning curve is the mean
undiscounted return of the episodes that ended in each interval of environment steps, appended
to ``curve.csv`` (one column per seed) after every chunk. ``summary.json`` holds the final return
(mean over the last ``final_fraction`` of the curve) per seed, and its mean and standard error.
Runs on Gymnasium environments (``env=gym:...``, stepped from Python) cannot be checkpointed and
start again when stopped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rtrl import compiled
from rtrl.cells import FEEDFORWARD
from rtrl.envs.registry import is_host_env
from rtrl.experiments import builders
from rtrl.experiments.plots import new_figure, plot_mean_band, save_figure
from rtrl.experiments.results import final_and_lifetime, read_curve, read_record, run_name
from rtrl.experiments.run_loop import Program, chunks_for, run_loop
from rtrl.learners.host_actors import HostActors


def _program(init, run_chunk, seeds: int, config) -> Program:
    """A vmapped ``init(key)`` and ``run_chunk(state) -> (state, returns, episodes, loss)`` as
    the run loop's program (outputs of shape (seeds, points))."""
    init, run_chunk = compiled.jit(jax.vmap(init)), compiled.jit(jax.vmap(run_chunk))
    seed_keys = jax.random.split(jax.random.PRNGKey(config["seed"]), seeds)

    def run(state, index):
        state, returns, episodes, loss = run_chunk(state)
        return state, {"return": returns, "episodes": episodes, "loss": loss}

    return Program(lambda: init(seed_keys), run, builders.chunk_steps(config))


def batched_program(config: dict[str, Any], seeds: int) -> Program:
    """PPO or IMPALA: a chunk is a scan of whole iterations (a rollout or a batch of segments,
    then the update); the loss reported is the policy loss plus the value loss."""
    env = builders.control_env(config)
    if config["learner"] == "ppo":
        agent, value_loss = builders.build_ppo(config, env), "value_loss"
    else:
        agent, value_loss = builders.build_impala(config, env), "baseline_loss"
    iterations = builders.chunk_steps(config) // builders.point_steps(config)

    def run_chunk(state):
        state, metrics = jax.lax.scan(lambda s, _: agent.iteration(s), state, None, iterations)
        loss = metrics["policy_loss"] + metrics[value_loss]
        return state, metrics["episode_return"], metrics["episodes"], loss

    return _program(agent.init, run_chunk, seeds, config)


def online_program(config: dict[str, Any], seeds: int) -> Program:
    """The online learners (actor-critic, Q(lambda), ...): one update per environment step."""
    env = builders.control_env(config)
    learner = builders.build_online_learner(config, env.action_space)
    bin_size = config["bin_size"]
    bins = builders.chunk_steps(config) // bin_size

    def init(key):
        k_agent, k_env, key = jax.random.split(key, 3)
        env_state, obs = env.reset(k_env)
        # Nothing is received before the start: no reward, no episode end.
        received = (jnp.zeros(()), jnp.zeros((), bool), jnp.zeros((), bool), obs)
        return learner.init(k_agent, env.observation_size), env_state, obs, received, key

    def run_chunk(state):
        def per_step(carry, _):
            agent, env_state, obs, received, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            agent, action, metrics = learner.step(agent, k_act, obs, *received)
            env_state, obs, reward, terminated, truncated, info = env.step(k_env, env_state, action)
            done = terminated | truncated
            finished = jnp.where(done, info["episode_return"], 0.0)
            received = (reward, terminated, truncated, info["final_observation"])
            return (agent, env_state, obs, received, key), (finished, done, metrics)

        state, (finished, done, metrics) = jax.lax.scan(per_step, state, None, bins * bin_size)
        episodes = done.reshape(bins, bin_size).sum(1)
        returns = finished.reshape(bins, bin_size).sum(1) / jnp.maximum(episodes, 1)
        td_error = (metrics["td_error"] ** 2).reshape(bins, bin_size).mean(1)
        return state, returns, episodes, td_error

    return _program(init, run_chunk, seeds, config)


def host_online_program(config: dict[str, Any], seeds: int) -> Program:
    """An online learner stepped from Python with Gymnasium environments: a jitted, vmapped
    learner step per environment step (no observation normalisation). Not checkpointable."""
    envs = builders.host_envs(config, seeds)
    learner = builders.build_online_learner(config, envs.action_space)
    step = compiled.jit(jax.vmap(learner.step))
    bin_size = config["bin_size"]
    bins = builders.chunk_steps(config) // bin_size
    seed_keys = jax.random.split(jax.random.PRNGKey(config["seed"]), seeds)

    def init():
        agents = jax.vmap(learner.init, in_axes=(0, None))(seed_keys, envs.observation_size)
        obs = envs.reset()
        received = (np.zeros(seeds), np.zeros(seeds, bool), np.zeros(seeds, bool), obs)
        return agents, obs, received, seed_keys

    def run_chunk(state, index):
        agents, obs, received, keys = state
        sums, episodes = np.zeros((seeds, bins)), np.zeros((seeds, bins), int)
        td_errors = np.zeros((seeds, bins))
        for t in range(bins * bin_size):
            keys, act_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
            agents, actions, metrics = step(agents, act_keys, obs, *received)
            result = envs.step(np.asarray(actions))
            done = result.terminated | result.truncated
            obs = result.observation
            received = (result.reward, result.terminated, result.truncated,
                        result.final_observation)  # fmt: skip
            sums[:, t // bin_size] += np.where(done, result.episode_return, 0.0)
            episodes[:, t // bin_size] += done
            td_errors[:, t // bin_size] += np.asarray(metrics["td_error"]) ** 2 / bin_size
        outputs = {"return": sums / np.maximum(episodes, 1), "episodes": episodes,
                   "loss": td_errors}  # fmt: skip
        return (agents, obs, received, keys), outputs

    return Program(init, run_chunk, builders.chunk_steps(config), checkpointable=False)


def envpool_actors(config: dict[str, Any], seeds: int, **envpool_options: Any) -> HostActors:
    """IMPALA's host-loop actors and learner (``rtrl.learners.host_actors``) on the EnvPool
    environments a configuration names (``envpool_options``: EnvPool's own, e.g.
    ``num_threads``)."""
    envs = builders.envpool_envs(config, seeds * config["num_envs"], **envpool_options)
    return HostActors(builders.build_impala(config, envs), envs, seeds, config["num_envs"],
                      config["segment_length"], config["behaviour_lag"],
                      config["bootstrap_truncation"], config["seed"])  # fmt: skip


def envpool_impala_program(config: dict[str, Any], seeds: int) -> Program:
    """IMPALA on EnvPool's environments (``envpool_actors``). Not checkpointable (the emulators'
    state lives outside JAX)."""
    impala = envpool_actors(config, seeds)
    iterations = builders.chunk_steps(config) // builders.point_steps(config)

    def run_chunk(state, index):
        learner, actors, metrics = impala.train(*state, iterations)
        outputs = {"return": metrics["episode_return"], "episodes": metrics["episodes"],
                   "loss": metrics["policy_loss"] + metrics["baseline_loss"]}  # fmt: skip
        return (learner, actors), outputs

    return Program(impala.init, run_chunk, builders.chunk_steps(config), checkpointable=False)


def build_program(config: dict[str, Any], seeds: int) -> Program:
    builders.check_control_learner(config)
    if builders.is_envpool(config):
        return envpool_impala_program(config, seeds)
    if is_host_env(config["env"]):
        return host_online_program(config, seeds)
    if config["learner"] in builders.ONLINE_LEARNERS:
        return online_program(config, seeds)
    return batched_program(config, seeds)


class ReturnCurveRecorder:
    """One row per point of the curve: the environment steps at its end, then each seed's mean
    return of the episodes that ended in it (empty where none did)."""

    metrics_file = "curve.csv"
    watched = "loss"

    def __init__(self, config: dict[str, Any], seeds: int, point_steps: int):
        self.config, self.point_steps = config, point_steps
        self.header = ["step", *(f"seed_{i}" for i in range(seeds))]

    def initial(self):
        return ()

    def record(self, carry, index, outputs):
        returns = np.where(outputs["episodes"] > 0, outputs["return"], np.nan)
        first = index * returns.shape[1]
        rows = [[(first + j + 1) * self.point_steps, *(f"{v:.6g}" for v in returns[:, j])]
                for j in range(returns.shape[1])]  # fmt: skip
        return carry, rows

    def finish(self, carry, chunks):
        return []

    def summary(self, out: Path) -> dict[str, Any]:
        if not (out / self.metrics_file).exists():
            return {"steps": 0}
        steps, returns = read_curve(out)
        window = max(1, math.ceil(self.config["final_fraction"] * len(steps)))
        return {"steps": int(steps[-1]) if len(steps) else 0,
                **final_and_lifetime(returns, window, "return")}  # fmt: skip


def run_control(
    config: dict[str, Any],
    seeds: int,
    out: Path,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train ``seeds`` agents for ``config["steps"]`` environment steps, rounded up to whole
    chunks (``steps_run`` in config.json); returns the summary."""
    program = build_program(config, seeds)  # validates names before anything is written
    chunks = chunks_for(config["steps"], program.chunk_steps, exact=False,
                        announce=progress, unit="environment steps")  # fmt: skip
    recorder = ReturnCurveRecorder(config, seeds, builders.point_steps(config))
    record = {"config": config, "seeds": seeds, "steps_run": chunks * program.chunk_steps}
    return run_loop(program, recorder, out, record, chunks, progress, stop_after)


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
        config = read_record(run_dir)["config"]
        trunk = (f"feed-forward {config['units']}" if config["cell"] == FEEDFORWARD
                 else f"{config['cell']} {config['units']}, {config['estimator']}")  # fmt: skip
        label = f"{run_name(run_dir)} ({trunk})"
        plot_mean_band(ax, steps, returns, label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episodic return")
    ax.legend(fontsize=8)
    return save_figure(fig, out)
