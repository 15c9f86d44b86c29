"""Runners of the sampling strategy over the scripted model (the `scripted` fixture)."""

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.decoding import SamplingStrategy, decode, generated_tokens, prepare_prompts


@pytest.fixture
def sampling_transitions(scripted):
    """The default table: greedy takes A (0.6) then ends (0.35); B ends with 0.9; C loops."""
    s = scripted
    return {
        s.START: {s.A: 0.6, s.B: 0.4},
        s.A: {s.END: 0.35, s.A: 0.33, s.B: 0.32},
        s.B: {s.END: 0.9, s.A: 0.05, s.C: 0.05},
        s.C: {s.C: 1.0},
    }


def _per_row(value, n, dtype):
    """A scalar for every row, or one value per row."""
    return tf.fill([n], tf.cast(value, dtype)) if np.isscalar(value) else tf.constant(value, dtype)


@pytest.fixture
def decode_sampling(scripted, sampling_transitions):
    """Runs `SamplingStrategy` over the scripted model.

    `run(prompt_rows, *, transitions, max_new, temperature, top_k, top_p, seeds, max_length,
    max_prompt_tokens, jit, **controls)`: per-row arguments take a scalar or one value per row;
    `controls` go to `SamplingStrategy` as they are. Returns the `finalize` dict as numpy arrays
    plus `ids`, the continuations as Python lists (end token dropped).
    """

    def run(
        prompt_rows,
        *,
        transitions=None,
        max_new=5,
        temperature=0.0,
        top_k=0,
        top_p=1.0,
        seeds=None,
        max_length=12,
        max_prompt_tokens=6,
        jit=False,
        **controls,
    ):
        n = len(prompt_rows)
        if n:
            prompt_ids, prompt_lengths = prepare_prompts(
                scripted.prompts(prompt_rows),
                start_id=scripted.START,
                pad_id=scripted.PAD,
                max_prompt_tokens=max_prompt_tokens,
                max_length=max_length,
            )
        else:
            prompt_ids, prompt_lengths = (
                tf.zeros([0, max_length], tf.int32),
                tf.zeros([0], tf.int32),
            )
        step_fn = scripted.markov_step_fn(transitions or sampling_transitions)

        def loop():
            strategy = SamplingStrategy(
                end_id=scripted.END,
                pad_id=scripted.PAD,
                max_new_tokens=_per_row(max_new, n, tf.int32),
                temperature=_per_row(temperature, n, tf.float32),
                top_k=_per_row(top_k, n, tf.int32),
                top_p=_per_row(top_p, n, tf.float32),
                seeds=tf.constant(seeds if seeds is not None else [0] * n, tf.int32),
                **controls,
            )
            return decode(step_fn, strategy, tf.zeros([n], tf.int32), prompt_ids, prompt_lengths)

        out = tf.function(loop, jit_compile=True)() if jit else loop()
        ids = generated_tokens(
            out["tokens"], out["prompt_lengths"], out["num_tokens"], scripted.END
        )
        result = {key: value.numpy() for key, value in out.items()}
        result["ids"] = ids.to_list()
        return result

    return run


@pytest.fixture
def run_sampling(decode_sampling):
    """`decode_sampling` reduced to `(continuations, num_tokens, log_prob)`."""

    def run(prompt_rows, **kwargs):
        out = decode_sampling(prompt_rows, **kwargs)
        return out["ids"], out["num_tokens"], out["log_prob"]

    return run
