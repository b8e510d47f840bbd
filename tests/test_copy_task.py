"""The copy task: its layout and fixed vocabulary, a content-blind model's score, the sequence
learner's RTRL gradient against backpropagation through whole sequences, and a run."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close

from rtrl.cells import make_cell
from rtrl.cells.base import step as cell_step
from rtrl.cli import main as cli_main
from rtrl.envs.copy_task import MARKER, NUM_CLASSES, NUM_INPUTS, PADDING, copy_batch
from rtrl.gradients import columnar_rtrl, truncated_bptt
from rtrl.learners.sequence import (
    bptt_sequence_classifier,
    classification_metrics,
    sequence_classifier,
)


def test_a_batch_is_a_pattern_then_its_recall_then_padding():
    length = 7
    batch = copy_batch(jax.random.PRNGKey(3), 64, length)
    tokens = np.asarray(jnp.argmax(batch.inputs, -1))
    assert tokens.shape == (2 * length, 64) and batch.inputs.shape[-1] == NUM_INPUTS
    for b, s in enumerate(np.asarray(batch.lengths)):
        assert 1 <= s <= length
        pattern = tokens[:s, b]
        assert set(pattern) <= {0, 1}
        np.testing.assert_array_equal(tokens[s : 2 * s, b], MARKER)
        np.testing.assert_array_equal(tokens[2 * s :, b], PADDING)
        scored = np.asarray(batch.scored[:, b])
        np.testing.assert_array_equal(np.nonzero(scored)[0], np.arange(s, 2 * s))
        np.testing.assert_array_equal(np.asarray(batch.targets[s : 2 * s, b]), pattern)
    assert set(np.asarray(batch.lengths)) > {1, length} - {1, length}  # lengths vary
    assert len(set(np.asarray(batch.lengths).tolist())) > 3


def test_a_content_blind_model_does_not_score():
    """Every target bit is scored, 0s and 1s alike (no padding index shared with a bit): a model
    that always says '1' (or '0') is right on about half the bits and few sequences."""
    batch = copy_batch(jax.random.PRNGKey(0), 2000, 50)
    for bit in (0, 1):
        logits = jnp.zeros(batch.targets.shape + (NUM_CLASSES,)).at[..., bit].set(1.0)
        metrics = classification_metrics(logits, batch.targets, batch.scored)
        assert 0.45 < float(metrics["accuracy"]) < 0.55
        assert float(metrics["sequence_accuracy"]) < 0.05  # a 1-bit pattern half the time: 1/50


def test_the_recalled_length_is_one_less_than_the_shortest_pattern_missed():
    from rtrl.experiments.copy_runs import recalled_length

    batch = copy_batch(jax.random.PRNGKey(4), 200, 9)
    perfect = jax.nn.one_hot(batch.targets, NUM_CLASSES)
    assert int(recalled_length(perfect, batch, 9)) == 9
    # One wrong bit in the recall of every pattern of 5 bits or more.
    long = np.asarray(batch.lengths) >= 5
    t = np.asarray(batch.lengths) + 4 * long  # recall step of bit 5 (0-based 4) where long
    flipped = np.asarray(perfect).copy()
    flipped[t[long], np.nonzero(long)[0]] = flipped[t[long], np.nonzero(long)[0]][:, ::-1]
    assert long.any() and int(recalled_length(jnp.asarray(flipped), batch, 9)) == 4
    # A wrong step outside the recall does not count.
    padded = np.asarray(perfect).copy()
    padded[-1] = padded[-1][:, ::-1]
    padded[:, np.asarray(batch.lengths) == 9] = perfect[:, np.asarray(batch.lengths) == 9]
    assert int(recalled_length(jnp.asarray(padded), batch, 9)) == 9


def whole_sequence_loss(cell, params, batch):
    """Backpropagation's reference: the mean cross-entropy of the scored steps, unrolled."""
    state = jax.vmap(lambda _: cell.initial_state(params["cell"]))(jnp.arange(batch.lengths.size))

    def per_step(state, x):
        state, features = jax.vmap(lambda s, x_: cell_step(cell, params["cell"], s, x_))(state, x)
        return state, features @ params["head"]["w"].T + params["head"]["b"]

    _, logits = jax.lax.scan(per_step, state, batch.inputs)
    return classification_metrics(logits, batch.targets, batch.scored)["loss"]


def gradient_against_whole_sequences(learner, cell):
    """The learner's gradient on a small copy batch equals backpropagation's through the
    unrolled sequences; returns (params, batch, that gradient, the learner's logits)."""
    state = learner.init(jax.random.PRNGKey(0), NUM_INPUTS)
    # Nonzero head weights, so that the recurrent parameters get a gradient at all.
    head = jax.random.normal(jax.random.PRNGKey(1), state.params["head"]["w"].shape)
    params = {**state.params, "head": {**state.params["head"], "w": head}}
    batch = copy_batch(jax.random.PRNGKey(2), 6, 4)
    got, logits = learner.gradient(params, batch.inputs, batch.targets, batch.scored)
    want = jax.grad(lambda p: whole_sequence_loss(cell, p, batch))(params)
    assert_trees_close(got, want, tol=1e-10)
    return params, batch, want, logits


@pytest.mark.float64
def test_exact_rtrl_gives_the_gradient_of_the_whole_sequences():
    cell = make_cell("elstm", 5)
    learner = sequence_classifier(columnar_rtrl(cell), NUM_CLASSES, optax.sgd(0.1))
    params, batch, want, _ = gradient_against_whole_sequences(learner, cell)
    # Truncation to 2 steps loses credit across the delay between pattern and recall.
    truncated = sequence_classifier(truncated_bptt(cell, 2), NUM_CLASSES, optax.sgd(0.1))
    short, _ = truncated.gradient(params, batch.inputs, batch.targets, batch.scored)
    assert not np.allclose(short["cell"]["inputs"]["Z"], want["cell"]["inputs"]["Z"])


@pytest.mark.float64
def test_the_bptt_baseline_backpropagates_through_the_whole_sequences():
    cell = make_cell("dense_lstm", 5)
    learner = bptt_sequence_classifier(cell, NUM_CLASSES, optax.sgd(0.1))
    params, batch, _, logits = gradient_against_whole_sequences(learner, cell)
    metrics = learner.evaluate(params, batch.inputs, batch.targets, batch.scored)
    assert float(metrics["loss"]) == pytest.approx(float(whole_sequence_loss(cell, params, batch)))
    assert logits.shape == batch.targets.shape + (NUM_CLASSES,)


@pytest.mark.float64
def test_batch_truncated_bptt_backpropagates_within_segments_of_t_steps():
    """The reference: each segment unrolled on its own from the state the whole forward pass
    reaches at its start, held constant; the logits of all segments scored together."""
    cell, truncation = make_cell("dense_lstm", 5), 3
    learner = bptt_sequence_classifier(cell, NUM_CLASSES, optax.sgd(0.1), truncation)
    params, batch, whole, _ = gradient_against_whole_sequences(
        bptt_sequence_classifier(cell, NUM_CLASSES, optax.sgd(0.1)), cell
    )
    batched_step = jax.vmap(lambda p, s, x: cell_step(cell, p, s, x), in_axes=(None, 0, 0))

    def segments_loss(p):
        state = jax.vmap(lambda _: cell.initial_state(p["cell"]))(jnp.arange(batch.lengths.size))
        start, logits = jax.lax.stop_gradient(state), []
        for t, x in enumerate(batch.inputs):
            if t % truncation == 0:  # a new segment starts from the held-constant state
                state = start
            state, features = batched_step(p["cell"], state, x)
            start = jax.lax.stop_gradient(state) if (t + 1) % truncation == 0 else start
            logits.append(features @ p["head"]["w"].T + p["head"]["b"])
        return classification_metrics(jnp.stack(logits), batch.targets, batch.scored)["loss"]

    got, _ = learner.gradient(params, batch.inputs, batch.targets, batch.scored)
    assert_trees_close(got, jax.grad(segments_loss)(params), tol=1e-10)
    assert not np.allclose(got["cell"]["recurrent"]["W"], whole["cell"]["recurrent"]["W"])
    longest = bptt_sequence_classifier(cell, NUM_CLASSES, optax.sgd(0.1), len(batch.inputs))
    assert_trees_close(longest.gradient(params, batch.inputs, batch.targets, batch.scored)[0],
                       whole, tol=1e-10)  # fmt: skip


@pytest.mark.slow
def test_the_copy_run_learns_short_patterns(tmp_path, capsys):
    """Patterns of up to 3 bits: the exact-RTRL eLSTM recalls every validation sequence."""
    out = tmp_path / "copy"
    cli_main(["run", "copy-elstm-rtrl", "--seeds", "2", "--steps", "51200",
              "--set", "max_length=3", "--set", "units=32", "--set", "step_size=1e-2",
              "--set", "forget_bias=0",
              "--set", "chunk=6400", "--out", str(out)])  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_sequence_accuracy_mean"] == 1.0
    assert summary["final_recalled_length_per_seed"] == [3, 3]
    assert all(n is not None and n <= 51200 for n in summary["sequences_to_all_recalled"])
    assert "per-sequence accuracy 1.0000" in capsys.readouterr().out
    cli_main(["plot", str(out), "--out", str(tmp_path / "copy.png")])
    assert (tmp_path / "copy.png").stat().st_size > 0


def test_the_forget_bias_reaches_the_elstm_and_only_the_elstm():
    from rtrl.experiments import configuration
    from rtrl.experiments.copy_runs import build_classifier

    config = configuration.resolve("copy-elstm-rtrl", {"units": "4", "forget_bias": "2"})
    params = build_classifier(config).init(jax.random.PRNGKey(0), NUM_INPUTS).params
    plain = build_classifier({**config, "forget_bias": 0.0}).init(jax.random.PRNGKey(0), NUM_INPUTS)
    shift = params["cell"]["unit"]["b_f"] - plain.params["cell"]["unit"]["b_f"]
    np.testing.assert_allclose(shift, 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="eLSTM only"):
        build_classifier(configuration.resolve("copy-lstm-tbptt", {"forget_bias": "1"}))


def test_a_budget_of_part_of_a_chunk_is_rounded_up_and_said(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["run", "copy-elstm-rtrl", "--seeds", "1", "--steps", "100",
                     "--set", "max_length=3", "--set", "units=4", "--set", "batch_size=16",
                     "--set", "chunk=64", "--set", "validation_size=16",
                     "--out", str(out)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert (
        "100 sequences is not a whole number of 64-sequence chunks: running 128 (2 chunks)" in err
    )
    assert json.loads((out / "config.json").read_text())["steps_run"] == 128
