"""A scripted Markov "model" for decoder tests: the next-token distribution depends only on the
current token, so the expected output of every strategy can be worked out by hand."""

import numpy as np
import tensorflow as tf

PAD, START, END, A, B, C = 0, 1, 2, 3, 4, 5
VOCAB_SIZE = 6


def markov_step_fn(transitions):
    """Step function over a `{token: {next_token: probability}}` table.

    The state counts steps per row, so tests can check that beam search reorders it.
    """
    table = np.full([VOCAB_SIZE, VOCAB_SIZE], 1e-9, np.float32)
    for token, nexts in transitions.items():
        for next_token, probability in nexts.items():
            table[token, next_token] = probability
    log_table = tf.constant(np.log(table / table.sum(axis=1, keepdims=True)))

    def step_fn(token_ids, state, index):
        del index
        return tf.gather(log_table, token_ids), state + 1

    return step_fn


def prompts(rows):
    """Python lists of prompt tokens (without start) → ragged int32 `[batch, (tokens)]`."""
    return (
        tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)
        if rows
        else tf.ragged.constant([], dtype=tf.int32, ragged_rank=1)
    )
