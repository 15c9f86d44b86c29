"""Fixtures shared by every test folder."""

import types

import numpy as np
import pytest
import tensorflow as tf

# The scripted decoding model: a six-token vocabulary whose first ids are pad, start and end as
# in every tokenizer, small enough that decoder tests work out each strategy's output by hand.
_SCRIPTED_TOKENS = dict(PAD=0, START=1, END=2, A=3, B=4, C=5)
_SCRIPTED_VOCAB_SIZE = 6


def _markov_step_fn(transitions):
    """A step function (see `kerasgen.decoding.engine`) over a `{token: {next_token:
    probability}}` table: the next-token distribution depends only on the current token.
    Unlisted transitions get probability ~1e-9; each row is renormalised.

    The state counts steps per row, so tests can check that beam search reorders it.
    """
    table = np.full([_SCRIPTED_VOCAB_SIZE, _SCRIPTED_VOCAB_SIZE], 1e-9, np.float32)
    for token, nexts in transitions.items():
        for next_token, probability in nexts.items():
            table[token, next_token] = probability
    log_table = tf.constant(np.log(table / table.sum(axis=1, keepdims=True)))

    def step_fn(token_ids, state, index):
        del index
        return tf.gather(log_table, token_ids), state + 1

    return step_fn


def _prompts(rows):
    """Python lists of prompt tokens (without start) → ragged int32 `[batch, (tokens)]`."""
    return tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)


@pytest.fixture
def scripted():
    """The scripted Markov decoding model: the token ids `PAD, START, END, A, B, C`,
    `VOCAB_SIZE`, `markov_step_fn(transitions)` and `prompts(rows)`."""
    return types.SimpleNamespace(
        **_SCRIPTED_TOKENS,
        VOCAB_SIZE=_SCRIPTED_VOCAB_SIZE,
        markov_step_fn=_markov_step_fn,
        prompts=_prompts,
    )
