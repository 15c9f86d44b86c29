"""`MultiHeadAttentionBase`: what `CausalSelfAttention` and `CrossAttention` share."""

import keras
import tensorflow as tf

from kerasgen.decoding.length_buckets import compiling_with_xla

# Added to the scores of masked positions: far below any real score, yet finite in bfloat16
# and float16 (an `-inf` would turn a fully masked row into NaNs).
_MASK_VALUE = -1e4


class MultiHeadAttentionBase(keras.layers.Layer):
    """The arguments, the config, the head reshapes and the scaled dot-product attention of a
    multi-head attention layer.

    Not a layer of its own: a subclass creates its input projections (how queries, keys and
    values are computed is what differs), then calls `_create_output_sublayers()`, so the
    layer's weights list the input projections first, then the output projection, the order
    exports hold them in.

    Args:
        width: model width; the size of the queries, keys, values and output.
        num_heads: attention heads; must divide `width`.
        dropout: dropout on the attention weights and on the output (training only).
        kernel_initializer: initializer of the input projections.
        output_initializer: initializer of the output projection (defaults to
            `kernel_initializer`).
    """

    def __init__(
        self,
        width,
        num_heads,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        output_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_num_heads(num_heads, width)
        self.width = width
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        self.dropout = dropout
        # Kept serialised, so every sublayer builds its own instance (and its own random seed).
        self.kernel_initializer = serialized_initializer(kernel_initializer)
        self.output_initializer = serialized_initializer(output_initializer or kernel_initializer)

    def _create_output_sublayers(self, dtype=None):
        """Creates the output projection and both dropouts, under `dtype` (a policy; None: the
        global one); called by `__init__` after the input projections."""
        self.output_projection = keras.layers.Dense(
            self.width,
            kernel_initializer=self.output_initializer,
            name="output_projection",
            dtype=dtype,
        )
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=dtype)
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=dtype)

    def _split_heads(self, x, parts):
        """`[batch, time, parts * width]` → `parts` tensors `[batch, heads, time, head_dim]`
        (q, k, v of a fused projection for `parts=3`)."""
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, time, parts, self.num_heads, self.head_dim])
        x = tf.transpose(x, [2, 0, 3, 1, 4])  # [parts, batch, heads, time, head_dim]
        return tuple(x[part] for part in range(parts))

    def _merge_heads(self, x):
        """`[batch, heads, time, head_dim]` → `[batch, time, width]`."""
        x = tf.transpose(x, [0, 2, 1, 3])
        return tf.reshape(x, [tf.shape(x)[0], tf.shape(x)[1], self.width])

    def _attend(self, q, k, v, mask, training):
        """Scaled dot-product attention of every head.

        Args:
            q: `[batch, heads, query_len, head_dim]`.
            k, v: `[batch, heads, key_len, head_dim]`.
            mask: bool, broadcasting to `[batch, heads, query_len, key_len]`; True where a
                query may attend.
            training: enables the dropout on the weights.

        Returns:
            (output `[batch, heads, query_len, head_dim]`, the weights float32
            `[batch, heads, query_len, key_len]` before dropout, 0 exactly where masked).
        """
        if q.shape[2] == 1 and not training and not compiling_with_xla():
            return self._attend_one_query(q, k, v, mask)
        scores = tf.matmul(q, k, transpose_b=True) * (self.head_dim**-0.5)
        # Softmax in float32 whatever the compute dtype: bfloat16 sums lose the small weights.
        scores = tf.where(mask, tf.cast(scores, "float32"), _MASK_VALUE)
        weights = tf.nn.softmax(scores, axis=-1)
        dropped = self.attention_dropout(tf.cast(weights, q.dtype), training=training)
        return tf.matmul(dropped, v), weights

    def _attend_one_query(self, q, k, v, mask):
        """`_attend` for one query per row (a decoding step), by broadcast products and sums
        instead of batched matmuls, outside XLA.

        Why: a graph run by TensorFlow with oneDNN (the default on x86 CPUs) prepares a
        batched-matmul kernel for every new shape, and a decoding step's keys grow by one
        position every step; at batch 1 that preparation cost most of a GPT step (3.4 ms a token
        against ~1.2 ms this way; `benchmarks/gpt_decode_speed.py --serving_ratios`). XLA
        compiles the matmuls into its own kernels and keeps them.

        Args and returns: as `_attend`, with `query_len` 1.
        """
        # Sums in float32 whatever the compute dtype, as a matmul accumulates (the casts are
        # no-ops under float32).
        products = tf.cast(q * k, "float32")  # [batch, heads, key_len, head_dim]
        scores = tf.reduce_sum(products, axis=-1)[:, :, tf.newaxis, :] * (self.head_dim**-0.5)
        scores = tf.where(mask, scores, _MASK_VALUE)  # [batch, heads, 1, key_len]
        # The softmax written out: oneDNN's softmax kernel is also prepared for every new shape.
        exps = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
        weights = exps / tf.reduce_sum(exps, axis=-1, keepdims=True)
        # [batch, heads, key_len, 1] * [batch, heads, key_len, head_dim], summed over the keys.
        per_key = weights[:, :, 0, :, tf.newaxis] * tf.cast(v, "float32")
        return tf.cast(tf.reduce_sum(per_key, axis=2, keepdims=True), v.dtype), weights

    def get_config(self):
        config = super().get_config()
        config.update(
            width=self.width,
            num_heads=self.num_heads,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            output_initializer=self.output_initializer,
        )
        return config


def check_num_heads(num_heads, width):
    """Raises a ValueError unless `num_heads` is a positive divisor of `width` (what every
    attention's heads need: each reads `width // num_heads` of the width)."""
    if num_heads < 1 or width % num_heads:
        raise ValueError(
            f"num_heads ({num_heads}) must be a positive divisor of the width ({width})."
        )


def serialized_initializer(initializer):
    """An initializer (name, config dict or instance) as its config, from which each layer that
    uses it builds a fresh instance: one unseeded instance shared by several layers would give
    them all the same draw."""
    return keras.initializers.serialize(keras.initializers.get(initializer))
