"""Work whose length is known only at run time, at static shapes under XLA.

A decode step that reads the filled part of a cache, or a prefill that reads the longest prompt
of a batch, has a length that depends on the request. A graph run by TensorFlow (what
TensorFlow Serving executes by default) slices to that length at no cost. XLA compiles static
shapes only, so under XLA the work is traced once per *bucket* (16, 32, 64, ... up to the
largest length) and `tf.switch_case` runs the smallest bucket that holds the length: at most
twice the work of the exact length, for a handful of compiled variants.
"""

import functools

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

_SMALLEST_BUCKET = 16  # below this a step's cost hardly depends on the length read


def length_buckets(max_length):
    """The static lengths XLA compiles: powers of two from 16 below `max_length`, then
    `max_length` itself (a Python int >= 1). `length_buckets(100)` is `[16, 32, 64, 100]`."""
    buckets = []
    bucket = _SMALLEST_BUCKET
    while bucket < max_length:
        buckets.append(bucket)
        bucket *= 2
    return buckets + [max_length]


def bucket_of(length, max_length):
    """The bucket of `length` as a tensor: the smallest power of two `>= length` and `>= 16`,
    at most `max_length` (scalar int32 tensors; `max_length` may be known at run time only).
    For graphs outside XLA whose kernels are prepared per shape (oneDNN's): a slice to the
    bucket meets a handful of shapes where a slice to `length` meets a new one every step."""
    length = tf.cast(length, tf.int32)
    power = tf.math.ceil(tf.math.log(tf.cast(length, tf.float32)) / tf.math.log(2.0))
    bucket = tf.bitwise.left_shift(1, tf.cast(power, tf.int32))
    bucket = tf.where(bucket // 2 >= length, bucket // 2, bucket)  # the log's rounding
    bucket = tf.where(bucket < length, bucket * 2, bucket)
    return tf.minimum(tf.maximum(bucket, _SMALLEST_BUCKET), max_length)


def compiling_with_xla():
    """Whether the function being traced is compiled by XLA (`tf.function(jit_compile=True)`,
    also inside its loops' bodies)."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def run_at_length(length, max_length, fn):
    """`fn(n)` for the run-time `length`, at a static `n` under XLA.

    Args:
        length: scalar int32 tensor in `[1, max_length]`.
        max_length: Python int, the largest length.
        fn: `fn(n)` → a nest of tensors whose shapes do not depend on `n`; `n` is `length`
            itself (a tensor) outside XLA, a Python int bucket `>= length` under XLA, so `fn`
            must give the same result for any `n >= length`.
    """
    if not compiling_with_xla():
        return fn(length)
    buckets = length_buckets(max_length)
    if len(buckets) == 1:
        return fn(buckets[0])
    branch = tf.reduce_sum(tf.cast(length > tf.constant(buckets[:-1]), tf.int32))
    return tf.switch_case(branch, [functools.partial(fn, bucket) for bucket in buckets])
