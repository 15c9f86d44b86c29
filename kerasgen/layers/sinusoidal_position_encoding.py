"""`sinusoidal_position_encoding`: the fixed position signal of "Attention Is All You Need"."""

import tensorflow as tf


def sinusoidal_position_encoding(positions, width, dtype="float32"):
    """Sines and cosines of the positions at `width / 2` geometrically spaced frequencies.

    `[sin(p * w_0), ..., sin(p * w_{n-1}), cos(p * w_0), ..., cos(p * w_{n-1})]` with
    `w_i = 10000^(-i / n)`, `n = width / 2` (Vaswani et al., 2017; the halves concatenated
    rather than interleaved, as in tensor2tensor, which is the same signal up to a fixed
    permutation of the features). No weights, and defined at every position, so a model using it
    has no maximum sequence length of its own.

    Args:
        positions: int tensor of any shape (a scalar index, or `[time]`).
        width: even Python int, the encoding's size.
        dtype: the result's dtype (computed in float32 first: bfloat16 cannot hold large
            positions' phases).

    Returns:
        `positions.shape + [width]`, values in [-1, 1].
    """
    if width % 2:
        raise ValueError(f"A sinusoidal position encoding needs an even width, got {width}.")
    half = width // 2
    frequencies = tf.exp(tf.range(half, dtype=tf.float32) * (-tf.math.log(10000.0) / half))
    angles = tf.cast(positions, tf.float32)[..., tf.newaxis] * frequencies  # [..., half]
    return tf.cast(tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1), dtype)
