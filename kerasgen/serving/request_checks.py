"""Input specs, INVALID_ARGUMENT checks and request defaults shared by every generation
service's signatures."""

import numpy as np
import tensorflow as tf


def batch_vector(dtype):
    """The spec of one per-row input: `[batch]` of `dtype`."""
    return tf.TensorSpec([None], dtype)


def batch_matrix(dtype):
    """The spec of a per-row list of values: `[batch, k]` of `dtype` (`stop_sequences`)."""
    return tf.TensorSpec([None, None], dtype)


def ensure_batch_matrix(tensor):
    """`tensor`, checked at run time to be `[batch, k]` (INVALID_ARGUMENT naming the input
    otherwise, as `ensure_batch_vectors`)."""
    return tf.ensure_shape(tensor, [None, None])


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


def _same_batch_checks(batch, batch_input, **per_row):
    """One `check_same_batch` per named `[batch, ...]` input."""
    return [
        check_same_batch(name, tensor, batch, batch_input=batch_input)
        for name, tensor in per_row.items()
    ]


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
    top_p_message = "top_p must be in (0, 1] (1 means off)"
    return _same_batch_checks(
        batch,
        batch_input,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
    ) + [
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


def control_checks(
    batch,
    config,
    *,
    batch_input,
    stop_sequences,
    stop_sequence_lengths,
    repetition_penalty,
    no_repeat_ngram_size,
    min_new_tokens,
    num_samples,
    top_logprobs,
):
    """The checks of the generation controls (`generate_with_controls`, ...).

    Args:
        batch: scalar int32, the batch size of `batch_input`.
        config: the export's `DecodingConfig` (its limits name themselves in the messages).
        batch_input: the name of the signature's text input, for messages.
        stop_sequences: string `[batch, k]`, as given.
        stop_sequence_lengths: int `[batch * k]`, each stop sequence's length in tokens.
        repetition_penalty, no_repeat_ngram_size, min_new_tokens, num_samples, top_logprobs:
            the `[batch]` inputs.

    Returns:
        The assertion ops; run what depends on the inputs under `tf.control_dependencies`.
    """
    penalty_message = "repetition_penalty must be a finite number > 0 (1 means off)"
    samples, stops = config.max_num_samples, config.max_stop_sequences
    longest, most_top = config.max_stop_sequence_tokens, config.max_top_logprobs
    same_batch = _same_batch_checks(
        batch,
        batch_input,
        stop_sequences=stop_sequences,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        min_new_tokens=min_new_tokens,
        num_samples=num_samples,
        top_logprobs=top_logprobs,
    )
    return same_batch + [
        tf.debugging.assert_less_equal(
            tf.shape(stop_sequences)[1],
            stops,
            message=f"stop_sequences must have at most {stops} columns, the limit of this export",
        ),
        tf.debugging.assert_less_equal(
            tf.cast(stop_sequence_lengths, tf.int32),
            longest,
            message=f"stop_sequences must each be at most {longest} tokens, the limit of this "
            "export",
        ),
        # Both comparisons fail for NaN; the second also refuses inf, whose products are NaN.
        tf.debugging.assert_greater(repetition_penalty, 0.0, message=penalty_message),
        tf.debugging.assert_less(repetition_penalty, np.inf, message=penalty_message),
        tf.debugging.assert_non_negative(
            no_repeat_ngram_size, message="no_repeat_ngram_size must be >= 0 (0 means off)"
        ),
        tf.debugging.assert_non_negative(
            min_new_tokens, message="min_new_tokens must be >= 0 (0 means off)"
        ),
        tf.debugging.assert_positive(num_samples, message="num_samples must be >= 1"),
        tf.debugging.assert_less_equal(
            num_samples,
            samples,
            message=f"num_samples must be <= {samples}, the limit of this export",
        ),
        tf.debugging.assert_non_negative(
            top_logprobs, message="top_logprobs must be >= 0 (0 means none)"
        ),
        tf.debugging.assert_less_equal(
            top_logprobs,
            most_top,
            message=f"top_logprobs must be <= {most_top}, the limit of this export",
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


def controls_warmup_parameters(max_top_logprobs):
    """The control inputs of a two-row warmup request: every control off in the first row,
    every control on in the second (two stop sequences, two samples, alternatives up to
    `max_top_logprobs`, the export's limit)."""
    return {
        "stop_sequences": np.array([[b"", b""], [b".", b"\n"]], dtype=object),
        "repetition_penalty": np.array([1.0, 1.3], np.float32),
        "no_repeat_ngram_size": np.array([0, 2], np.int32),
        "min_new_tokens": np.array([0, 1], np.int32),
        "num_samples": np.array([1, 2], np.int32),
        "top_logprobs": np.array([0, min(2, max_top_logprobs)], np.int32),
    }
