"""`CrossAttention`: multi-head attention of a sequence over another (a memory), padding masked."""

import keras
import tensorflow as tf

from kerasgen.layers.causal_self_attention import serialized_initializer

# As in CausalSelfAttention: far below any real score, finite in bfloat16 and float16.
_MASK_VALUE = -1e4


@keras.saving.register_keras_serializable(package="kerasgen")
class CrossAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention of queries over a memory's keys and values.

    The queries come from `x` (`[batch, time, width]`), the keys and values from a memory
    (`[batch, memory_len, width]`) whose padded positions get no weight. The memory's keys and
    values are a separate step, `memory_keys_values`, so that a decoder computes them once per
    request and reuses them at every decoding step (they do not depend on the target).

    Attending over the sequence itself (`memory = x`) makes it bidirectional self-attention with
    a padding mask: the encoder blocks use it so.

    Args:
        width: model width; the size of queries, memory and output.
        num_heads: attention heads; must divide `width`.
        dropout: dropout on the attention weights and on the output (training only).
        kernel_initializer: initializer of the query and key/value projections.
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
        if num_heads < 1 or width % num_heads:
            raise ValueError(
                f"num_heads ({num_heads}) must be a positive divisor of the width ({width})."
            )
        self.width = width
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        self.dropout = dropout
        # Kept serialised, so every sublayer builds its own instance (and its own random seed).
        self.kernel_initializer = serialized_initializer(kernel_initializer)
        self.output_initializer = serialized_initializer(output_initializer or kernel_initializer)
        self.query = keras.layers.Dense(
            width, kernel_initializer=self.kernel_initializer, name="query"
        )
        self.key_value = keras.layers.Dense(
            2 * width, kernel_initializer=self.kernel_initializer, name="key_value"
        )
        self.output_projection = keras.layers.Dense(
            width, kernel_initializer=self.output_initializer, name="output_projection"
        )
        self.attention_dropout = keras.layers.Dropout(dropout)
        self.output_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        shape = (None, None, self.width)
        for layer in (self.query, self.key_value, self.output_projection):
            if not layer.built:
                layer.build(shape)

    def _split_heads(self, x):
        """`[batch, time, width]` → `[batch, heads, time, head_dim]`."""
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, time, self.num_heads, self.head_dim])
        return tf.transpose(x, [0, 2, 1, 3])

    def memory_keys_values(self, memory):
        """The memory's keys and values, each `[batch, heads, memory_len, head_dim]`.

        Args:
            memory: `[batch, memory_len, width]`.
        """
        batch, length = tf.shape(memory)[0], tf.shape(memory)[1]
        key_value = tf.reshape(
            self.key_value(memory), [batch, length, 2, self.num_heads, self.head_dim]
        )
        key_value = tf.transpose(key_value, [2, 0, 3, 1, 4])  # [2, batch, heads, len, head_dim]
        return key_value[0], key_value[1]

    def call(self, x, keys, values, memory_mask, training=False):
        """Attends from every position of `x` over the memory.

        Args:
            x: `[batch, time, width]`, the queries' input.
            keys, values: `[batch, heads, memory_len, head_dim]` from `memory_keys_values`.
            memory_mask: bool `[batch, memory_len]`, True on real (unpadded) memory positions.
            training: enables dropout.

        Returns:
            (output `[batch, time, width]`, the attention weights averaged over the heads,
            float32 `[batch, time, memory_len]`, before dropout; 0 exactly on padding).
        """
        q = self._split_heads(self.query(x))  # [batch, heads, time, head_dim]
        scores = tf.matmul(q, keys, transpose_b=True) * (self.head_dim**-0.5)
        visible = memory_mask[:, tf.newaxis, tf.newaxis, :]  # [batch, 1, 1, memory_len]
        # Softmax in float32 whatever the compute dtype: bfloat16 sums lose the small weights.
        scores = tf.where(visible, tf.cast(scores, "float32"), _MASK_VALUE)
        weights = tf.nn.softmax(scores, axis=-1)  # [batch, heads, time, memory_len]
        dropped = self.attention_dropout(tf.cast(weights, q.dtype), training=training)
        out = tf.transpose(tf.matmul(dropped, values), [0, 2, 1, 3])  # [b, time, heads, d]
        out = tf.reshape(out, [tf.shape(x)[0], tf.shape(x)[1], self.width])
        out = self.output_dropout(self.output_projection(out), training=training)
        return out, tf.reduce_mean(weights, axis=1)

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
