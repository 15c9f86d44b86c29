"""`CrossAttention`: multi-head attention of a sequence over another (a memory), padding masked."""

import keras
import tensorflow as tf

from kerasgen.layers.multi_head_attention_base import MultiHeadAttentionBase


@keras.saving.register_keras_serializable(package="kerasgen")
class CrossAttention(MultiHeadAttentionBase):
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # MultiHeadAttentionBase's arguments, documented above
        # The sublayers take the global dtype policy (the encoder-decoders' layers do not follow
        # a saved policy, unlike GPT's).
        self.query = keras.layers.Dense(
            self.width, kernel_initializer=self.kernel_initializer, name="query"
        )
        self.key_value = keras.layers.Dense(
            2 * self.width, kernel_initializer=self.kernel_initializer, name="key_value"
        )
        self._create_output_sublayers()

    def build(self, input_shape):
        shape = (None, None, self.width)
        for layer in (self.query, self.key_value, self.output_projection):
            if not layer.built:
                layer.build(shape)

    def memory_keys_values(self, memory):
        """The memory's keys and values, each `[batch, heads, memory_len, head_dim]`.

        Args:
            memory: `[batch, memory_len, width]`.
        """
        return self._split_heads(self.key_value(memory), 2)

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
        (q,) = self._split_heads(self.query(x), 1)  # [batch, heads, time, head_dim]
        visible = memory_mask[:, tf.newaxis, tf.newaxis, :]  # [batch, 1, 1, memory_len]
        out, weights = self._attend(q, keys, values, visible, training)
        out = self.output_dropout(self.output_projection(self._merge_heads(out)), training=training)
        return out, tf.reduce_mean(weights, axis=1)  # weights [batch, heads, time, memory_len]
