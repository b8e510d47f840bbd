"""The copy task (Irie et al. 2023's diagnostic): memorise a bit pattern, then recall it.

A sequence of a batch: a pattern of s bits, s ~ U{1..L}; then s recall markers, during which the
target is the pattern, bit by bit; then padding up to 2L steps, so that every sequence of a batch
has the same length. Only the recall steps are scored.

The vocabulary is fixed, by index, never built from the data (a public implementation built it
by order of first appearance, which made the padding index bit '1', ignored every '1' in the loss
and let a content-blind model score 100%)::

    inputs   0: bit 0   1: bit 1   2: recall marker   3: padding    (one-hot, 4 values)
    targets  0: bit 0   1: bit 1                                    (scored at recall steps)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

BIT_0, BIT_1, MARKER, PADDING = 0, 1, 2, 3
NUM_INPUTS = 4
NUM_CLASSES = 2


class CopyBatch(NamedTuple):
    """Time first: ``inputs`` (2L, B, 4) one-hot, ``targets`` (2L, B) bits (0 where not
    scored), ``scored`` (2L, B) bool (the recall steps), ``lengths`` (B,) pattern lengths."""

    inputs: jax.Array
    targets: jax.Array
    scored: jax.Array
    lengths: jax.Array


def copy_batch(key: jax.Array, batch: int, max_length: int) -> CopyBatch:
    """``batch`` sequences with patterns of 1 to ``max_length`` bits."""
    if max_length < 1:
        raise ValueError(f"the copy task's max_length must be at least 1, got {max_length}")
    k_length, k_bits = jax.random.split(key)
    lengths = jax.random.randint(k_length, (batch,), 1, max_length + 1)
    bits = jax.random.randint(k_bits, (max_length, batch), 0, 2)
    t = jnp.arange(2 * max_length)[:, None]
    in_pattern = t < lengths
    scored = (t >= lengths) & (t < 2 * lengths)
    pattern_bit = jnp.take_along_axis(bits, jnp.minimum(t, max_length - 1) * jnp.ones_like(
        lengths), axis=0)  # fmt: skip
    recalled_bit = jnp.take_along_axis(bits, jnp.clip(t - lengths, 0, max_length - 1), axis=0)
    tokens = jnp.where(in_pattern, pattern_bit, jnp.where(scored, MARKER, PADDING))
    targets = jnp.where(scored, recalled_bit, 0)
    return CopyBatch(jax.nn.one_hot(tokens, NUM_INPUTS), targets, scored, lengths)
