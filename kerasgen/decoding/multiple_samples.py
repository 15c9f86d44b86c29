"""Several independent samples per prompt: repeat the rows, derive a seed per sample, regroup.

The decode loop does not know about samples: every sample is a row of its own. Repeating the
prompts (and every per-row input, and the model's initial state) `num_samples` times before the
loop and regrouping the outputs after it is all there is to it::

    seeds = sample_seeds(seeds, num_samples)                  # [batch * num_samples]
    prompt_ids, prompt_lengths, temperature, ... = repeat_rows(
        (prompt_ids, prompt_lengths, temperature, ...), num_samples)
    result = decode(step_fn, SamplingStrategy(..., seeds=seeds), state, prompt_ids, ...)
    result = group_samples(result, num_samples)              # each [batch, num_samples, ...]

Rows are request-major: the samples of request `b` are rows `b * num_samples + i`.

Seed derivation: sample 0 of a request with seed `s` uses `s` itself, so `num_samples=1` is the
single-sample request unchanged. Sample `i >= 1` uses
`mix32(mix32(s ^ 0x5851F42D) ^ (i * 0x2545F491)) & 0x7FFFFFFF` (32-bit unsigned arithmetic;
`mix32` is MurmurHash3's finaliser, as in `kerasgen.decoding.sampling`), a non-negative int32,
so it is also a valid explicit seed of a serving request (a negative one asks for a fresh
seed). A row's sample depends only on its own prompt, parameters and seed, so a single-sample
request with the seed `sample_seeds` gives for sample `i` returns exactly that sample.
"""

import tensorflow as tf

from kerasgen.decoding.sampling import _mix32


def sample_seeds(seeds, num_samples):
    """The seed of every sample, request-major.

    Args:
        seeds: int32 `[batch]`, one per request (already resolved: not negative).
        num_samples: Python int or scalar int32 tensor, at least 1.

    Returns:
        int32 `[batch * num_samples]`; entry `b * num_samples + i` is sample `i` of request `b`
        (see the module docstring for the formula).
    """
    seeds = tf.bitcast(tf.cast(seeds, tf.int32), tf.uint32)[:, tf.newaxis]  # [batch, 1]
    sample = tf.range(num_samples)[tf.newaxis, :]  # [1, num_samples]
    request_key = _mix32(seeds ^ tf.constant(0x5851F42D, tf.uint32))
    derived = _mix32(
        request_key ^ (tf.bitcast(sample, tf.uint32) * tf.constant(0x2545F491, tf.uint32))
    )
    derived = tf.bitcast(
        tf.bitwise.bitwise_and(derived, tf.constant(0x7FFFFFFF, tf.uint32)), tf.int32
    )
    own_seed = tf.bitcast(seeds, tf.int32)
    return tf.reshape(tf.where(sample == 0, own_seed, derived), [-1])


def repeat_rows(rows, num_samples):
    """Repeats every leaf of a nest `num_samples` times along its first axis, request-major.

    Args:
        rows: a nest of tensors with the requests first (prompt ids, lengths, per-row
            parameters, stop sequences, the model's initial state).
        num_samples: Python int or scalar int32 tensor.
    """
    return tf.nest.map_structure(lambda t: tf.repeat(t, num_samples, axis=0), rows)


def group_samples(rows, num_samples):
    """Reshapes every leaf `[batch * num_samples, ...]` of a nest to `[batch, num_samples, ...]`.

    Args:
        rows: a nest of dense tensors with the rows first, request-major (a `decode` result).
        num_samples: Python int or scalar int32 tensor.
    """

    def group(t):
        # The batch is spelled out: with a zero-size dimension (an empty batch, no
        # per-token columns) a -1 would be ambiguous.
        batch = tf.shape(t)[0] // num_samples
        return tf.reshape(t, tf.concat([[batch, num_samples], tf.shape(t)[1:]], axis=0))

    return tf.nest.map_structure(group, rows)
