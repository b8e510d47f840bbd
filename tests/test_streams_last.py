"""Many streams at once with the stream axis last (the compiled loops' layout) give exactly
what each stream gives on its own, batched the plain way with jax.vmap (the reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rtrl import cells
from rtrl.envs import animal_learning
from rtrl.experiments import configuration
from rtrl.experiments.builders import build_prediction as build
from rtrl.experiments.prediction_runs import compile_chunks
from rtrl.gradients import columnar_rtrl, snap1, truncated_bptt
from rtrl.learners import online_regression, rmsprop_on_update, td_lambda
from rtrl.networks.staged import staged_network, staged_rtrl

pytestmark = pytest.mark.float64

STREAMS, STEPS, INPUTS = 3, 25, 5


def _assert_layouts_agree(learner, inputs):
    """Run ``learner`` over ``inputs`` (time, streams, ...) for independent streams, vmapped and
    streams-last, and check both give the same final state and per-step metrics."""
    keys = jax.random.split(jax.random.PRNGKey(3), STREAMS)
    state = jax.vmap(learner.init, in_axes=(0, None))(keys, INPUTS)

    def run(step, state, inputs):
        def one(state, args):
            state, metrics = step(state, *args)
            return state, metrics

        return jax.lax.scan(one, state, inputs)

    reference = jax.jit(lambda s, i: run(jax.vmap(learner.step), s, i))(state, inputs)
    state_last = cells.streams_last(state)
    inputs_last = jax.tree.map(lambda a: jnp.moveaxis(a, 1, -1), inputs)  # (time, ..., streams)
    final, metrics = jax.jit(lambda s, i: run(learner.step, s, i))(state_last, inputs_last)
    back = jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), final), metrics
    _assert_close(reference, back)


def _assert_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-9, atol=1e-12)


def _regression_inputs(seed, reset_at):
    """Inputs, targets and resets (one reset at ``reset_at`` = (step, stream)) of a regression
    stream per stream."""
    k_x, k_y = jax.random.split(jax.random.PRNGKey(seed))
    xs = jax.random.normal(k_x, (STEPS, STREAMS, INPUTS))
    ys = jax.random.normal(k_y, (STEPS, STREAMS))
    resets = jnp.zeros((STEPS, STREAMS), bool).at[reset_at].set(True)
    return xs, ys, resets


def test_every_cell_with_columnar_rtrl(cell):
    learner = online_regression(columnar_rtrl(cell), optax.adam(1e-2))
    _assert_layouts_agree(learner, _regression_inputs(0, reset_at=(9, 1)))


def _td_inputs():
    k_x, k_c = jax.random.split(jax.random.PRNGKey(1))
    xs = (jax.random.uniform(k_x, (STEPS, STREAMS, INPUTS)) < 0.4).astype(jnp.float64)
    cumulants = jax.random.uniform(k_c, (STEPS, STREAMS))
    discounts = jnp.full((STEPS, STREAMS), 0.9).at[12].set(0.0)
    resets = jnp.zeros((STEPS, STREAMS), bool).at[12, 0].set(True)
    return xs, cumulants, discounts, resets


@pytest.mark.parametrize("stage_size", [1, 2, 4])
def test_staged_network_in_td_lambda(stage_size):
    """Stage switches (every 6 steps), input and feature normalisation, frozen stages, the head's
    per-feature step: all per stream."""
    network = staged_network("columnar_lstm", 4, stage_size, 6, input_norm_rate=0.9)
    learner = td_lambda(staged_rtrl(network), rmsprop_on_update(1e-2), 0.9,
                        feature_norm_rate=0.95, head_step_per_feature=True)  # fmt: skip
    _assert_layouts_agree(learner, _td_inputs())


def test_truncated_bptt_dense_lstm_in_td_lambda():
    learner = td_lambda(truncated_bptt(cells.dense_lstm(3), 4), optax.sgd(1e-2), 0.9)
    _assert_layouts_agree(learner, _td_inputs())


def test_runner_layouts_agree():
    """The runner's compiled chunk gives the same values in either layout."""
    config = configuration.resolve("ccn", {"steps": "4000", "stage_steps": "300"})
    stream, learner = build(config)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    values = []
    for layout in (True, False):
        init, run_chunk = compile_chunks(stream, learner._replace(streams_last=layout), 500)
        state = init(keys)
        for _ in range(2):
            state, chunk_values, _, _ = run_chunk(*state, keys, stream.data)
        values.append(np.asarray(chunk_values))
    np.testing.assert_allclose(values[0], values[1], rtol=1e-9, atol=1e-12)


def test_stream_rollout_equals_stepping_key_by_key():
    stream = animal_learning.javed_trace_patterning()
    key = jax.random.PRNGKey(5)
    state = stream.reset(key)
    _, rolled = stream.rollout(key, state, None, 300)
    observations = []
    for step_key in jax.random.split(key, 300):
        state, observation, _ = stream.step(step_key, state)
        observations.append(observation)
    np.testing.assert_array_equal(np.asarray(rolled.observation), np.stack(observations))


@pytest.mark.parametrize("name", ["dense_lstm", "dense_gru", "coupled_columns"])
def test_snap1_on_dense_and_coupled_cells(name):
    """Reads of other units (a broadcast for dense cells, a gather for coupled columns) and each
    unit's reads of its own state, per stream."""
    cell = {
        "dense_lstm": lambda: cells.dense_lstm(3),
        "dense_gru": lambda: cells.dense_gru(3),
        "coupled_columns": lambda: cells.coupled_columns(cells.columnar_lstm(4), 0.5),
    }[name]()
    learner = online_regression(snap1(cell), optax.sgd(1e-2))
    _assert_layouts_agree(learner, _regression_inputs(2, reset_at=(7, 2)))
