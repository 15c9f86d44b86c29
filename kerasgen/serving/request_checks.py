"""Input specs, INVALID_ARGUMENT checks and request defaults shared by every generation
service's signatures."""

import numpy as np
import tensorflow as tf


def batch_vector(dtype):
    """The spec of one per-row input: `[batch]` of `dtype`."""
    return tf.TensorSpec([None], dtype)


def ensure_batch_vectors(*tensors):
    """`tensors`, each checked at run time to be a vector `[batch]`.

    The input signatures say `[None]`, but neither `tf.saved_model.load`'s signatures nor
    TensorFlow Serving check a request's shape against them, and inside the function the rank
    is known to be 1, so a rank check is folded away before it runs. `EnsureShape` is kept:
    any other shape (`[n, 1]`, a scalar) is INVALID_ARGUMENT "Shape of tensor <input> [n,1] is
    not compatible with expected shape [?]", naming the input. Use the returned tensors, so
    that everything computed from an input waits for its check.
    """
    return [tf.ensure_shape(tensor, [None]) for tensor in tensors]


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


def beam_search_checks(length_penalty, batch, *, batch_input):
    """The checks of `beam_search`'s `length_penalty` `[batch]`: one value per row, and a number
    >= 0 (a NaN fails the comparison too, so it is refused with the same message)."""
    return [
        check_same_batch("length_penalty", length_penalty, batch, batch_input=batch_input),
        tf.debugging.assert_non_negative(
            length_penalty, message="length_penalty must be a number >= 0 (0 means none)"
        ),
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
