"""`CausalSelfAttention`: multi-head self-attention in which a position sees only the past."""

import keras
import tensorflow as tf

from kerasgen.decoding.length_buckets import bucket_of, compiling_with_xla, run_at_length
from kerasgen.layers.multi_head_attention_base import MultiHeadAttentionBase


@keras.saving.register_keras_serializable(package="kerasgen")
class CausalSelfAttention(MultiHeadAttentionBase):
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # MultiHeadAttentionBase's arguments, documented above
        # Every sublayer takes this layer's dtype policy, so a model reloaded under another
        # global policy (`python -m kerasgen.export` runs under float32) keeps its own.
        policy = self.dtype_policy
        self.qkv = keras.layers.Dense(
            3 * self.width, kernel_initializer=self.kernel_initializer, name="qkv", dtype=policy
        )
        self._create_output_sublayers(dtype=policy)

    def build(self, input_shape):
        if not self.qkv.built:
            self.qkv.build(input_shape)
        if not self.output_projection.built:
            self.output_projection.build(tuple(input_shape[:-1]) + (self.width,))

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
        q, k, v = self._split_heads(self.qkv(x), 3)
        time = tf.shape(x)[1]
        causal = tf.linalg.band_part(tf.ones([time, time], tf.bool), -1, 0)  # [time, time]
        out = self._merge_heads(self._attend(q, k, v, causal, training)[0])
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
        the cache), rounded up to a length bucket (`kerasgen.decoding.length_buckets`): a
        slice to `bucket_of(length)` in graph mode, the smallest static bucket under XLA.

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
        q, k, v = self._split_heads(self.qkv(x)[:, tf.newaxis, :], 3)  # [batch, heads, 1, d]
        flat = [batch * self.num_heads, self.head_dim]
        key_cache = tf.tensor_scatter_nd_update(key_cache, cache_indices, tf.reshape(k, flat))
        value_cache = tf.tensor_scatter_nd_update(value_cache, cache_indices, tf.reshape(v, flat))

        def attend(n):
            visible = tf.range(n)[tf.newaxis, :] <= positions[:, tf.newaxis]  # [batch, n]
            visible = visible[:, tf.newaxis, tf.newaxis, :]  # [batch, heads, query, n]
            keys, values = key_cache[:, :, :n], value_cache[:, :, :n]
            return self._attend(q, keys, values, visible, training=False)[0]  # [b, h, 1, d]

        if compiling_with_xla():
            out = run_at_length(length, key_cache.shape[2], attend)
        else:  # a bucket too: kernels prepared per shape (oneDNN's) are then reused
            out = attend(bucket_of(length, tf.shape(key_cache)[2]))
        out = tf.reshape(out, [batch, self.width])
        return self.output_projection(out), key_cache, value_cache


def cache_write_indices(batch, num_heads, index):
    """The (row, head, position) slots `CausalSelfAttention.step` writes: `[batch * heads, 3]`.

    `index` is a scalar (every row at the same position) or int32 `[batch]` (a position per
    row, as after a prefill of prompts of different lengths)."""
    rows = tf.repeat(tf.range(batch), num_heads)
    heads = tf.tile(tf.range(num_heads), [batch])
    positions = tf.repeat(tf.broadcast_to(index, [batch]), num_heads)
    return tf.stack([rows, heads, positions], axis=1)
