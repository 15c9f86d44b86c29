"""`CausalSelfAttention`: multi-head self-attention in which a position sees only the past."""

import keras
import tensorflow as tf

from kerasgen.decoding.length_buckets import run_at_length

# Added to the scores of masked positions: far below any real score, yet finite in bfloat16
# and float16 (an `-inf` would turn a fully masked row into NaNs).
_MASK_VALUE = -1e4


@keras.saving.register_keras_serializable(package="kerasgen")
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head causal self-attention with one fused Q, K, V projection.

    Every head attends with scaled dot products, `softmax(q k^T / sqrt(head_dim)) v`, over the
    positions up to and including its own. The same weights serve two paths:

    - `call(x)`: a whole sequence `[batch, time, width]` (training, scoring).
    - `step(x, key_cache, value_cache, index)`: one position `[batch, width]` against a key/value
      cache of fixed size `[batch, heads, context, head_dim]`, written in place at `index` with
      `tf.tensor_scatter_nd_update` (no growing by concatenation, so the decode loop compiles
      with XLA).

    Args:
        width: model width; the input and output size.
        num_heads: attention heads; must divide `width`.
        dropout: dropout on the attention weights and on the output (training only).
        kernel_initializer: initializer of both projections.
        output_initializer: initializer of the output projection (GPT-2 scales it down with depth
            so residual sums do not grow); defaults to `kernel_initializer`.
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
        # Every sublayer takes this layer's dtype policy, so a model reloaded under another
        # global policy (`python -m kerasgen.export` runs under float32) keeps its own.
        policy = self.dtype_policy
        self.qkv = keras.layers.Dense(
            3 * width, kernel_initializer=self.kernel_initializer, name="qkv", dtype=policy
        )
        self.output_projection = keras.layers.Dense(
            width,
            kernel_initializer=self.output_initializer,
            name="output_projection",
            dtype=policy,
        )
        self.attention_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.output_dropout = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape):
        if not self.qkv.built:
            self.qkv.build(input_shape)
        if not self.output_projection.built:
            self.output_projection.build(tuple(input_shape[:-1]) + (self.width,))

    def _heads(self, x):
        """`[batch, time, 3 * width]` → q, k, v, each `[batch, heads, time, head_dim]`."""
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, time, 3, self.num_heads, self.head_dim])
        x = tf.transpose(x, [2, 0, 3, 1, 4])  # [3, batch, heads, time, head_dim]
        return x[0], x[1], x[2]

    def _attend(self, q, k, v, mask, training):
        """q `[b, h, tq, d]`, k and v `[b, h, tk, d]`, bool mask `[.., tq, tk]` → q-shaped."""
        scores = tf.matmul(q, k, transpose_b=True) * (self.head_dim**-0.5)
        # Softmax in float32 whatever the compute dtype: bfloat16 sums lose the small weights.
        scores = tf.where(mask, tf.cast(scores, "float32"), _MASK_VALUE)
        weights = tf.cast(tf.nn.softmax(scores, axis=-1), q.dtype)
        weights = self.attention_dropout(weights, training=training)
        return tf.matmul(weights, v)

    def _merge_heads(self, x):
        """`[batch, heads, time, head_dim]` → `[batch, time, width]`."""
        x = tf.transpose(x, [0, 2, 1, 3])
        return tf.reshape(x, [tf.shape(x)[0], tf.shape(x)[1], self.width])

    def call(self, x, training=False):
        """x `[batch, time, width]` → `[batch, time, width]`; position t attends to 0..t."""
        out, _, _ = self._self_attend(x, training)
        return out

    def prefill(self, x):
        """`call` that also returns the keys and values a decode's cache holds for positions
        `0 .. time - 1` (the prompt in one pass, `GPT.prefill_decoding_state`).

        Returns:
            (output `[batch, time, width]`, keys and values `[batch, heads, time, head_dim]`).
        """
        return self._self_attend(x, training=False)

    def _self_attend(self, x, training):
        q, k, v = self._heads(self.qkv(x))
        time = tf.shape(x)[1]
        causal = tf.linalg.band_part(tf.ones([time, time], tf.bool), -1, 0)  # [time, time]
        out = self._merge_heads(self._attend(q, k, v, causal, training))
        return self.output_dropout(self.output_projection(out), training=training), k, v

    def step(self, x, key_cache, value_cache, index, cache_indices):
        """One position through the attention, reading and writing the key/value cache.

        Args:
            x: `[batch, width]`, the input at position `index`.
            key_cache, value_cache: `[batch, heads, context, head_dim]`; slots past `index` are
                ignored whatever they hold.
            index: scalar int32 position, `< context`.
            cache_indices: int32 `[batch * heads, 3]`, the (row, head, index) of every slot
                written (shared by all layers; see `cache_write_indices`).

        Returns:
            (output `[batch, width]`, new key cache, new value cache).
        """
        batch = tf.shape(x)[0]
        positions = tf.broadcast_to(index, [batch])
        return self.masked_step(
            x, key_cache, value_cache, cache_indices, positions, tf.shape(key_cache)[2]
        )

    def masked_step(self, x, key_cache, value_cache, cache_indices, positions, length):
        """`step` at a position per row, reading only the first `length` slots of the cache
        (the part written so far, so a step's cost follows what was generated, not the size of
        the cache): a slice in graph mode, the smallest static bucket `>= length` under XLA
        (`kerasgen.decoding.length_buckets`).

        Args:
            x: `[batch, width]`.
            key_cache, value_cache: `[batch, heads, context, head_dim]`.
            cache_indices: int32 `[batch * heads, 3]`, the slots written (`cache_write_indices`).
            positions: int32 `[batch]`, each row's position (it attends to slots `0 ..
                position`).
            length: scalar int32, `max(positions) + 1 <= length <= context`.

        Returns:
            (output `[batch, width]`, new key cache, new value cache).
        """
        batch = tf.shape(x)[0]
        q, k, v = self._heads(self.qkv(x)[:, tf.newaxis, :])  # each [batch, heads, 1, head_dim]
        flat = [batch * self.num_heads, self.head_dim]
        key_cache = tf.tensor_scatter_nd_update(key_cache, cache_indices, tf.reshape(k, flat))
        value_cache = tf.tensor_scatter_nd_update(value_cache, cache_indices, tf.reshape(v, flat))

        def attend(n):
            visible = tf.range(n)[tf.newaxis, :] <= positions[:, tf.newaxis]  # [batch, n]
            visible = visible[:, tf.newaxis, tf.newaxis, :]  # [batch, heads, query, n]
            keys, values = key_cache[:, :, :n], value_cache[:, :, :n]
            return self._attend(q, keys, values, visible, training=False)  # [b, h, 1, d]

        out = run_at_length(length, key_cache.shape[2], attend)
        out = tf.reshape(out, [batch, self.width])
        return self.output_projection(out), key_cache, value_cache

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


def cache_write_indices(batch, num_heads, index):
    """The (row, head, position) slots `CausalSelfAttention.step` writes: `[batch * heads, 3]`.

    `index` is a scalar (every row at the same position) or int32 `[batch]` (a position per
    row, as after a prefill of prompts of different lengths)."""
    rows = tf.repeat(tf.range(batch), num_heads)
    heads = tf.tile(tf.range(num_heads), [batch])
    positions = tf.repeat(tf.broadcast_to(index, [batch]), num_heads)
    return tf.stack([rows, heads, positions], axis=1)


def serialized_initializer(initializer):
    """An initializer (name, config dict or instance) as its config, from which each layer that
    uses it builds a fresh instance: one unseeded instance shared by several layers would give
    them all the same draw."""
    return keras.initializers.serialize(keras.initializers.get(initializer))
