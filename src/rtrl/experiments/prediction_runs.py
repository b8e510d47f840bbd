"""Online prediction runs: many seeds in one compiled call, run in chunks by the run loop.

``run_prediction(config, seeds, out)`` runs online TD(lambda) prediction on a stream (animal
learning, or recorded Atari play: ``rtrl.experiments.atari_runs`` runs several games) through
``rtrl.experiments.run_loop``. Each chunk is one jitted ``lax.scan`` over ``chunk`` steps for all
seeds at once. The run directory holds

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
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rtrl import cells, compiled
from rtrl.experiments import builders
from rtrl.experiments.results import (
    CONFIG_FILE,
    SUMMARY_FILE,
    append_rows,
    final_and_lifetime,
    read_metrics,
    write_json,
)
from rtrl.experiments.run_loop import Program, chunks_for, run_loop
from rtrl.learners import binned_means, discounted_returns, unreliable_tail
from rtrl.learners.optim import with_step_size


def compile_chunks(
    stream, learner, chunk: int, reset_at_episode_start: bool = False, blocks: int = 1
):
    """Jitted ``init(keys)`` and ``run_chunk(learner_state, env_state, keys, data) ->
    ((learner_state, env_state), values, cumulants, discounts)`` advancing every seed ``chunk``
    steps (outputs (seeds, chunk)). ``data`` is the stream's recorded data (shared by all seeds),
    an argument so that large recordings are not compiled in as constants. With ``blocks`` > 1
    the learners are ``blocks`` copies of the seeds (a grouped run's step sizes): the streams
    run once per seed (``keys`` and the stream state are the seeds') and every block learns
    from them; ``init`` takes the learners' keys.

    Seeds are independent learners. The stream runs vmapped over seeds; the learner, when it can,
    runs all seeds in one step with the seed axis last in every array (where XLA's CPU backend
    vectorises; ``rtrl.cells.base``), otherwise vmapped. The learner state is kept in that
    layout between chunks."""

    def init_one(key):
        k_learner, k_env = jax.random.split(key)
        return learner.init(k_learner, stream.num_observations), stream.reset(k_env)

    def init(keys):
        learner_state, env_state = jax.vmap(init_one)(keys)
        env_state = jax.tree.map(lambda a: a[: a.shape[0] // blocks], env_state)
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
        if blocks > 1:
            transitions = jax.tree.map(lambda a: jnp.tile(a, (blocks,) + (1,) * (a.ndim - 1)),
                                       transitions)  # fmt: skip
        if learner.streams_last:
            learner_state, values = run_learner(learner_state, cells.streams_last(transitions))
            values = values.T
        else:
            learner_state, values = jax.vmap(run_learner)(learner_state, transitions)
        return (learner_state, env_state), values, transitions.cumulant, transitions.discount

    return compiled.jit(init), compiled.jit(run_chunk)


def check_schedule(config: dict[str, Any]) -> None:
    chunk, bin_size = config["chunk"], config["bin_size"]
    if chunk < 1 or bin_size < 1 or chunk % bin_size:
        raise ValueError(f"chunk ({chunk}) must be a positive multiple of bin_size ({bin_size})")
    if config["final_window"] % bin_size:
        raise ValueError(
            f"final_window ({config['final_window']}) must be a multiple of bin_size ({bin_size})"
        )
    chunks_for(config["steps"], chunk, exact=True)
    if config["steps"] < 2 * chunk:
        raise ValueError(f"steps ({config['steps']}) must be at least two chunks ({2 * chunk})")


def prediction_program(
    config: dict[str, Any], seeds: int, stream, learner, step_sizes: list[float] | None = None
) -> Program:
    """The run loop's program: ``run_chunk`` returns each seed's values, cumulants and
    discounts of the chunk (float32, whatever the compute precision). With ``step_sizes``,
    the rows are ``len(step_sizes)`` blocks of ``seeds`` seeds, block i learning with step size
    i and the seeds' keys repeated in every block, so that a block's numbers are those of a
    run with that step size alone."""
    chunk = config["chunk"]
    blocks = 1 if step_sizes is None else len(step_sizes)
    init, run_chunk = compile_chunks(
        stream, learner, chunk, config["reset_at_episode_start"], blocks
    )
    seed_keys = jax.random.split(jax.random.PRNGKey(config["seed"]), seeds)
    learner_keys = jnp.tile(seed_keys, (blocks, 1))

    def init_program():
        learner_state, env_state = init(learner_keys)
        if step_sizes is not None:
            per_row = np.repeat(np.asarray(step_sizes, np.float64), seeds)
            opt_state = with_step_size(learner_state.opt_state, per_row)
            learner_state = learner_state._replace(opt_state=opt_state)
        return learner_state, env_state

    def run(state, index):
        chunk_keys = jax.vmap(lambda k: jax.random.fold_in(k, index))(seed_keys)
        state, values, cumulants, discounts = run_chunk(*state, chunk_keys, stream.data)
        with np.errstate(over="ignore"):  # a diverging value may exceed float32's range
            values = np.asarray(values).astype(np.float32)
        outputs = {"value": values, "cumulant": np.asarray(cumulants, np.float32),
                   "discount": np.asarray(discounts, np.float32)}  # fmt: skip
        return state, outputs

    return Program(init_program, run, chunk)


def constant_predictor_error(stream, steps: int, key: jax.Array) -> float:
    """The squared return error of the best constant predictor (the variance of the returns),
    over ``steps`` steps of one stream drawn with ``key``; the last 10 / (1 - gamma) steps,
    whose returns are cut short, are left out."""
    keys = key[None]
    _, transitions = stream.rollout_seeds(keys, jax.vmap(stream.reset)(keys), stream.data, steps)
    returns = np.asarray(discounted_returns(transitions.cumulant[0], transitions.discount[0]))
    return float(returns[: steps - unreliable_tail(stream.gamma)].var())


METRICS_FILE = "metrics.csv"


class ReturnErrorRecorder:
    """Scores each chunk's values against the returns in hindsight (the module docstring):
    the carry is the previous chunk's outputs, scored once this chunk gives the look-ahead."""

    metrics_file = METRICS_FILE
    header = ["seed", "step", "msre"]
    watched = "value"

    def __init__(self, config: dict[str, Any], seeds: int, gamma: float):
        self.config, self.seeds = config, seeds
        self.tail = unreliable_tail(gamma) if gamma < 1 else config["chunk"]

    def initial(self):
        return tuple(np.zeros((self.seeds, self.config["chunk"]), np.float32) for _ in range(3))

    def record(self, carry, index, outputs):
        values = np.where(np.isfinite(outputs["value"]), outputs["value"], np.nan)
        scored = (values, outputs["cumulant"], outputs["discount"])
        rows = self._score(index - 1, carry, scored, keep=self.config["chunk"]) if index else []
        return scored, rows

    def finish(self, carry, chunks):
        # The last chunk has no look-ahead: drop its unreliable tail.
        return self._score(chunks - 1, carry, None, keep=self.config["chunk"] - self.tail)

    def _score(self, chunk_index, data, look_ahead, keep) -> list[list]:
        """The binned squared return errors of one chunk, as rows."""
        values, cumulants, discounts = (np.asarray(a) for a in data)
        if look_ahead is not None:
            cumulants = np.concatenate([cumulants, look_ahead[1]], axis=1)
            discounts = np.concatenate([discounts, look_ahead[2]], axis=1)
        returns = jax.vmap(discounted_returns)(jnp.asarray(cumulants), jnp.asarray(discounts))
        errors = (values[:, :keep] - np.asarray(returns)[:, :keep]) ** 2
        bin_size = self.config["bin_size"]
        bins = binned_means(errors.T, bin_size).T  # (seeds, bins)
        first = chunk_index * self.config["chunk"]
        return [[seed, first + (b + 1) * bin_size, f"{value:.8g}"]
                for seed, row in enumerate(bins) for b, value in enumerate(row)]  # fmt: skip

    def summary(self, out: Path) -> dict[str, Any]:
        if not (out / self.metrics_file).exists():
            return {"scored_steps": 0}
        steps, table = read_metrics(out)
        summary: dict[str, Any] = {"scored_steps": int(steps[-1]) if len(steps) else 0}
        if table.size:
            window = max(1, self.config["final_window"] // self.config["bin_size"])
            summary.update(final_and_lifetime(table, window, "msre"))
        return summary


def run_prediction(
    config: dict[str, Any],
    seeds: int,
    out: Path,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a prediction experiment; returns the summary.

    ``stop_after``: run at most this many chunks in this call (the run stays resumable). A
    ``step_size`` that is a list runs every value with ``seeds`` seeds in one program (a
    grouped run, ``rtrl.experiments.grouping``): the directory's rows are the values' blocks of
    seeds, and a block that diverges does not stop the others.
    """
    check_schedule(config)
    step_sizes = config["step_size"] if isinstance(config["step_size"], list) else None
    single = config if step_sizes is None else {**config, "step_size": step_sizes[0]}
    stream, learner = builders.build_prediction(single)  # names checked before writing
    program = prediction_program(config, seeds, stream, learner, step_sizes)
    rows = seeds * (len(step_sizes) if step_sizes else 1)
    recorder = ReturnErrorRecorder(config, rows, stream.gamma)
    chunks = chunks_for(config["steps"], config["chunk"], exact=True)
    record = {"config": config, "seeds": rows}
    return run_loop(program, recorder, out, record, chunks, progress, stop_after,
                    stop_on_divergence=step_sizes is None)  # fmt: skip


def split_grouped_prediction(
    group: Path, members: list[tuple[dict[str, Any], Path]], seeds: int
) -> list[dict[str, Any]]:
    """Write each member of the finished grouped run in ``group`` (its configuration and run
    directory, in the order of the group's step sizes) as the run it stands for: its block of
    seeds' rows, renumbered, up to where a run of its own would have stopped, and its summary.
    A member diverged where its rows first hold a non-finite error that is not an overflow:
    a run of its own records the chunk before that and stops (``rtrl.experiments.run_loop``)."""
    with open(group / METRICS_FILE, newline="") as handle:
        table = list(csv.reader(handle))
    header, rows = table[0], table[1:]
    summaries = []
    for index, (config, out) in enumerate(members):
        mine = [[int(seed) - index * seeds, int(step), msre] for seed, step, msre in rows
                if index * seeds <= int(seed) < (index + 1) * seeds]  # fmt: skip
        diverged = [step for _, step, msre in mine if msre.lower() == "nan"]
        if diverged:
            chunk = config["chunk"]
            stop = (min(diverged) - 1) // chunk * chunk  # the first step of that chunk
            mine = [row for row in mine if row[1] <= stop]
        out.mkdir(parents=True, exist_ok=True)
        (out / METRICS_FILE).unlink(missing_ok=True)
        append_rows(out / METRICS_FILE, header, mine)
        write_json(out / CONFIG_FILE, {"config": config, "seeds": seeds})
        recorder = ReturnErrorRecorder(config, seeds, 1.0)
        summary = {"status": "diverged" if diverged else "complete", **recorder.summary(out)}
        write_json(out / SUMMARY_FILE, summary)
        summaries.append(summary)
    return summaries
