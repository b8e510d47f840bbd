"""The experiment runner: many seeds in one vmapped, compiled call, run in chunks.

``run_prediction(config, seeds, out)`` runs online TD(lambda) prediction on a stream (animal
learning, or recorded Atari play: ``rtrl.experiments.atari`` runs several games). Each chunk is
one jitted ``lax.scan`` over ``chunk`` steps for all seeds at once; Python runs only between
chunks (progress bar, scoring, checkpoint). The run directory holds

- ``config.json``: the resolved configuration and the number of seeds;
- ``metrics.csv``: per seed, the mean squared return error (V_t - G_t)^2 of each bin of steps;
- ``summary.json``: per seed and across seeds, the final-window and lifetime errors;
- ``checkpoint.npz``: the state after the last completed chunk (a re-run resumes from it and
  gives the same numbers as an uninterrupted run).

Returns G_t are computed in hindsight: a chunk is scored when the next one has run, with the next
chunk as look-ahead (the truncation error is at most gamma^chunk); the stream's last
10 / (1 - gamma) steps, whose returns are cut short, are not scored.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from rtrl import cells, compiled
from rtrl.envs import animal_learning, atari
from rtrl.gradients import ESTIMATORS, make_estimator, truncated_bptt
from rtrl.learners import binned_means, discounted_returns, rmsprop_on_update, td_lambda
from rtrl.networks.staged import staged_network, staged_rtrl

STREAMS = {
    "trace_conditioning": lambda c: animal_learning.trace_conditioning(
        isi=c["isi"], num_distractors=c["num_distractors"]
    ),
    "trace_patterning": lambda c: animal_learning.trace_patterning(
        isi=c["isi"], num_distractors=c["num_distractors"]
    ),
    "noisy_patterning": lambda c: animal_learning.noisy_patterning(
        num_distractors=c["num_distractors"]
    ),
    "javed_trace_patterning": lambda c: animal_learning.javed_trace_patterning(isi=c["isi"]),
    # Recorded expert play, replayed once and cached; the directory is $RTRL_DATA (rtrl --data).
    "atari": lambda c: atari.recorded_stream(
        atari.load_recording(c["game"], frame_size=c["frame_size"], progress=True), c["gamma"]
    ),
}


def observation_count(config: dict[str, Any]) -> int:
    """The size of a configuration's observations, without loading recorded data."""
    _choice("stream", config["stream"], STREAMS)
    if config["stream"] == "atari":
        return atari.observation_size(config["frame_size"])
    return STREAMS[config["stream"]](config).num_observations


OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam, "rmsprop_on_update": rmsprop_on_update}


class DivergedError(RuntimeError):
    """The learner produced a non-finite value; the run directory keeps what was scored."""


def _choice(kind: str, value: str, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(sorted(valid))}")


def staged_network_of(config: dict[str, Any]):
    """The staged network of a ``staged_rtrl`` configuration (stage sizes and steps resolved)."""
    units = config["units"]
    stage_size = config["stage_size"] or units
    stages = units // stage_size if stage_size > 0 else 1
    stage_steps = config["stage_steps"] or max(1, config["steps"] // stages)
    return staged_network(
        config["cell"], units, stage_size, stage_steps, input_norm_rate=config["input_norm_rate"]
    )


def build_estimator(config: dict[str, Any]):
    _choice("estimator", config["estimator"], {*ESTIMATORS, "tbptt", "staged_rtrl"})
    if config["estimator"] == "staged_rtrl":
        return staged_rtrl(staged_network_of(config))
    cell = cells.make_cell(config["cell"], config["units"])
    if config["estimator"] == "tbptt":
        return truncated_bptt(cell, config["truncation"])
    return make_estimator(config["estimator"], cell)


def build(config: dict[str, Any]):
    """The stream and the TD(lambda) learner a configuration describes."""
    _choice("stream", config["stream"], STREAMS)
    _choice("optimizer", config["optimizer"], OPTIMIZERS)
    stream = STREAMS[config["stream"]](config)
    length = getattr(stream, "length", None)
    if length is not None and config["steps"] > length:
        raise ValueError(
            f"steps ({config['steps']}) exceeds the {length} steps of {stream.name}; "
            f"use --steps {length} or fewer"
        )
    estimator = build_estimator(config)
    optimizer = OPTIMIZERS[config["optimizer"]](config["step_size"])
    return stream, td_lambda(
        estimator,
        optimizer,
        config["lambda"],
        feature_norm_rate=config["feature_norm_rate"],
        head_step_per_feature=config["head_step_per_feature"],
    )


def compile_chunks(stream, learner, chunk: int, reset_at_episode_start: bool = False):
    """Jitted ``init(keys)`` and ``run_chunk(learner_state, env_state, keys, data) ->
    ((learner_state, env_state), values, cumulants, discounts)`` advancing every seed ``chunk``
    steps (outputs (seeds, chunk)). ``data`` is the stream's recorded data (shared by all seeds),
    an argument so that large recordings are not compiled in as constants.

    Seeds are independent learners. The stream runs vmapped over seeds; the learner, when it can,
    runs all seeds in one step with the seed axis last in every array (where XLA's CPU backend
    vectorises; ``rtrl.cells.base``), otherwise vmapped. The learner state is kept in that
    layout between chunks."""

    def init_one(key):
        k_learner, k_env = jax.random.split(key)
        return learner.init(k_learner, stream.num_observations), stream.reset(k_env)

    def init(keys):
        learner_state, env_state = jax.vmap(init_one)(keys)
        if learner.streams_last:
            learner_state = cells.streams_last(learner_state)
        return learner_state, env_state

    def run_learner(learner_state, transitions):
        def one_step(learner_state, t):
            reset = t.episode_start if reset_at_episode_start else False
            learner_state, metrics = learner.step(
                learner_state, t.observation, t.cumulant, t.discount, reset
            )
            return learner_state, metrics["value"]

        return jax.lax.scan(one_step, learner_state, transitions)

    def run_chunk(learner_state, env_state, keys, data):
        # The stream does not depend on the learner: generate the chunk first (vectorised where
        # the stream allows), then run the learner over it.
        env_state, transitions = stream.rollout_seeds(keys, env_state, data, chunk)
        if learner.streams_last:
            learner_state, values = run_learner(learner_state, cells.streams_last(transitions))
            values = values.T
        else:
            learner_state, values = jax.vmap(run_learner)(learner_state, transitions)
        return (learner_state, env_state), values, transitions.cumulant, transitions.discount

    return compiled.jit(init), compiled.jit(run_chunk)


def _check_schedule(config: dict[str, Any]) -> None:
    chunk, bin_size = config["chunk"], config["bin_size"]
    if chunk < 1 or bin_size < 1 or chunk % bin_size:
        raise ValueError(f"chunk ({chunk}) must be a positive multiple of bin_size ({bin_size})")
    if config["final_window"] % bin_size:
        raise ValueError(
            f"final_window ({config['final_window']}) must be a multiple of bin_size ({bin_size})"
        )
    if config["steps"] < 2 * chunk:
        raise ValueError(f"steps ({config['steps']}) must be at least two chunks ({2 * chunk})")


def _save_tree(path: Path, tree: Any, **extra: Any) -> None:
    leaves = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, **leaves, **{k: np.asarray(v) for k, v in extra.items()})
    os.replace(temporary, path)  # atomic: a crash never leaves a half-written checkpoint


def _load_tree(path: Path, like: Any) -> tuple[Any, dict[str, np.ndarray]]:
    data = np.load(path)
    leaves, treedef = jax.tree.flatten(like)
    restored = [jnp.asarray(data[f"leaf_{i}"], dtype=x.dtype) for i, x in enumerate(leaves)]
    extra = {k: data[k] for k in data.files if not k.startswith("leaf_")}
    return jax.tree.unflatten(treedef, restored), extra


def run_prediction(
    config: dict[str, Any],
    seeds: int,
    out: Path,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a prediction experiment; returns the summary.

    ``stop_after``: run at most this many chunks in this call (the run stays resumable).
    """
    _check_schedule(config)
    stream, learner = build(config)  # validates names before anything is written
    out.mkdir(parents=True, exist_ok=True)
    record = {"config": config, "seeds": seeds}
    config_path, checkpoint_path = out / "config.json", out / "checkpoint.npz"
    if config_path.exists() and json.loads(config_path.read_text()) != record:
        raise ValueError(
            f"{out} holds a run with a different configuration; choose another --out "
            "or delete that directory"
        )
    config_path.write_text(json.dumps(record, indent=2))
    chunk, steps = config["chunk"], config["steps"]
    num_chunks = steps // chunk
    root = jax.random.PRNGKey(config["seed"])
    seed_keys = jax.random.split(root, seeds)

    init, run_chunk = compile_chunks(
        stream, learner, chunk, reset_at_episode_start=config["reset_at_episode_start"]
    )
    state = init(seed_keys)
    # The previous chunk's (values, cumulants, discounts), kept in float32 whatever the compute
    # precision, so that a resumed run scores exactly what an uninterrupted one does.
    pending = tuple(jnp.zeros((seeds, chunk), jnp.float32) for _ in range(3))
    start_chunk, rows_written, finished = 0, 0, False
    metrics_path = out / "metrics.csv"
    if checkpoint_path.exists():
        (state, pending), extra = _load_tree(checkpoint_path, (state, pending))
        start_chunk, rows_written = int(extra["next_chunk"]), int(extra["rows_written"])
        finished = bool(extra["finished"])
        _truncate_csv(metrics_path, rows_written)
    elif metrics_path.exists():
        metrics_path.unlink()

    gamma = stream.gamma
    tail = math.ceil(10 / (1 - gamma)) if gamma < 1 else chunk
    bar = tqdm(total=num_chunks * chunk, initial=start_chunk * chunk, unit="step",
               unit_scale=True, disable=not progress, desc=out.name)  # fmt: skip
    last_chunk = num_chunks if stop_after is None else min(num_chunks, start_chunk + stop_after)
    for index in range(start_chunk, last_chunk):
        started = time.perf_counter()
        chunk_key = jax.vmap(lambda k, i=index: jax.random.fold_in(k, i))(seed_keys)
        state, values, cumulants, discounts = run_chunk(*state, chunk_key, stream.data)
        bad = ~np.isfinite(np.asarray(values)).all(axis=1)
        with np.errstate(over="ignore"):  # a diverging value may exceed float32's range
            values = np.where(np.isfinite(values), values, np.nan).astype(np.float32)
        scored = (values, np.asarray(cumulants, np.float32), np.asarray(discounts, np.float32))
        if index > 0:  # score the previous chunk with this one as look-ahead
            rows_written += _score(metrics_path, index - 1, pending, scored, config, keep=chunk)
        if bad.any():
            bar.close()
            _summarise(out, config, seeds, status="diverged")
            raise DivergedError(
                f"non-finite value in steps {index * chunk}-{(index + 1) * chunk} for seeds "
                f"{np.flatnonzero(bad).tolist()}; bins scored so far are kept in {metrics_path}. "
                "Lower step_size (--set step_size=...) and start a new run directory."
            )
        pending = tuple(jnp.asarray(a) for a in scored)
        _save_tree(checkpoint_path, (state, pending), next_chunk=index + 1,
                   rows_written=rows_written, finished=False)  # fmt: skip
        bar.update(chunk)
        bar.set_postfix(steps_per_s=f"{chunk / (time.perf_counter() - started):,.0f}")
    bar.close()
    if last_chunk < num_chunks:
        return _summarise(out, config, seeds, status="partial")
    if not finished:  # the last chunk has no look-ahead: drop its unreliable tail
        rows_written += _score(metrics_path, num_chunks - 1, pending, None, config,
                               keep=chunk - tail)  # fmt: skip
        _save_tree(checkpoint_path, (state, pending), next_chunk=num_chunks,
                   rows_written=rows_written, finished=True)  # fmt: skip
    return _summarise(out, config, seeds, status="complete")


def _score(path, chunk_index, data, look_ahead, config, keep) -> int:
    """Append the binned squared return errors of one chunk; returns the rows written."""
    values, cumulants, discounts = (np.asarray(a) for a in data)
    if look_ahead is not None:
        cumulants = np.concatenate([cumulants, np.asarray(look_ahead[1])], axis=1)
        discounts = np.concatenate([discounts, np.asarray(look_ahead[2])], axis=1)
    returns = jax.vmap(discounted_returns)(jnp.asarray(cumulants), jnp.asarray(discounts))
    errors = (values[:, :keep] - np.asarray(returns)[:, :keep]) ** 2
    bins = binned_means(errors.T, config["bin_size"]).T  # (seeds, bins)
    new_file = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new_file:
            writer.writerow(["seed", "step", "msre"])
        for seed, row in enumerate(bins):
            for b, value in enumerate(row):
                step = chunk_index * config["chunk"] + (b + 1) * config["bin_size"]
                writer.writerow([seed, step, f"{value:.8g}"])
    return bins.size


def _truncate_csv(path: Path, rows: int) -> None:
    """Drop rows written after the checkpoint (a run stopped between the two writes)."""
    if not path.exists():
        return
    with open(path) as f:
        lines = f.readlines()
    with open(path, "w") as f:
        f.writelines(lines[: rows + 1])


def read_metrics(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps (bins,), msre (seeds, bins)) of a run directory."""
    with open(run_dir / "metrics.csv") as f:
        rows = [(int(r["seed"]), int(r["step"]), float(r["msre"])) for r in csv.DictReader(f)]
    if not rows:
        return np.zeros(0, int), np.zeros((0, 0))
    seeds = max(r[0] for r in rows) + 1
    steps = sorted({r[1] for r in rows})
    table = np.full((seeds, len(steps)), np.nan)
    position = {s: i for i, s in enumerate(steps)}
    for seed, step, value in rows:
        table[seed, position[step]] = value
    return np.asarray(steps), table


def standard_error(per_seed) -> float:
    """Standard error of the mean over seeds (0 for a single seed)."""
    per_seed = np.asarray(per_seed)
    return float(per_seed.std(ddof=1) / np.sqrt(len(per_seed))) if len(per_seed) > 1 else 0.0


def _summarise(out: Path, config, seeds: int, status: str) -> dict[str, Any]:
    steps, table = read_metrics(out) if (out / "metrics.csv").exists() else (np.zeros(0), None)
    summary: dict[str, Any] = {
        "status": status,
        "scored_steps": int(steps[-1]) if len(steps) else 0,
    }
    if table is not None and table.size:
        window = max(1, config["final_window"] // config["bin_size"])
        final = np.nanmean(table[:, -window:], axis=1)
        lifetime = np.nanmean(table, axis=1)
        for name, per_seed in (("final", final), ("lifetime", lifetime)):
            summary[f"{name}_msre_per_seed"] = per_seed.tolist()
            summary[f"{name}_msre_mean"] = float(per_seed.mean())
            summary[f"{name}_msre_stderr"] = standard_error(per_seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
