"""Input specs, INVALID_ARGUMENT checks and request defaults shared by every generation
service's signatures."""

import numpy as np
import tensorflow as tf


def batch_vector(dtype):
    """The spec of one per-row input: `[batch]` of `dtype`."""
    return tf.TensorSpec([None], dtype)


def check_same_batch(name, tensor, batch, *, batch_input="prompt"):
    """INVALID_ARGUMENT naming `name` when its batch size differs from `batch_input`'s."""
    return tf.debugging.assert_equal(
        tf.shape(tensor)[0],
        batch,
        message=f"{name} must have one value per row (the batch size of {batch_input})",
    )


def generation_checks(batch, cap, *, batch_input, max_new_tokens, temperature, top_k, top_p, seed):
    """The checks of the per-row sampling parameters (`generate`, `translate`).

    Args:
        batch: scalar int32, the batch size of `batch_input`.
        cap: Python int, the export's largest `max_new_tokens`.
        batch_input: the name of the signature's text input, for messages.
        max_new_tokens, temperature, top_k, top_p, seed: the `[batch]` inputs.

    Returns:
        The assertion ops; run what depends on the inputs under `tf.control_dependencies`.
    """
    per_row = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "seed": seed,
    }
    top_p_message = "top_p must be in (0, 1] (1 means off)"
    return [
        check_same_batch(name, tensor, batch, batch_input=batch_input)
        for name, tensor in per_row.items()
    ] + [
        tf.debugging.assert_non_negative(max_new_tokens, message="max_new_tokens must be >= 0"),
        tf.debugging.assert_less_equal(
            max_new_tokens, cap, message=f"max_new_tokens must be <= {cap}, the cap of this export"
        ),
        tf.debugging.assert_non_negative(temperature, message="temperature must be >= 0"),
        tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0 (0 means off)"),
        tf.debugging.assert_greater(top_p, 0.0, message=top_p_message),
        tf.debugging.assert_less_equal(top_p, 1.0, message=top_p_message),
    ]


def resolve_seeds(seed):
    """Per-row seeds `[batch]`: a negative seed asks for fresh randomness, so it is replaced by a
    seed drawn now; the others are kept, so the same request gives the same text."""
    fresh = tf.random.uniform(tf.shape(seed), maxval=tf.int32.max, dtype=tf.int32)
    return tf.where(seed < 0, fresh, seed)


def sampling_warmup_parameters():
    """The per-row sampling inputs of a two-row warmup request: one greedy row, one sampled with
    top-k and top-p, so warmup traces both branches of the token choice."""
    return {
        "max_new_tokens": np.array([4, 4], np.int32),
        "temperature": np.array([0.0, 1.0], np.float32),
        "top_k": np.array([0, 5], np.int32),
        "top_p": np.array([1.0, 0.9], np.float32),
        "seed": np.array([0, 1], np.int32),
    }
