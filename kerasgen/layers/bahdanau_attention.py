"""`BahdanauAttention`: additive attention (Bahdanau et al., 2015) over an encoder's outputs."""

import keras


@keras.saving.register_keras_serializable(package="kerasgen")
class BahdanauAttention(keras.layers.Layer):
    """Additive attention: `score(q, h_j) = v . tanh(W_q q + W_k h_j)`.

    The sum and `v` are `keras.layers.AdditiveAttention` (its `scale` weight is `v`); this layer
    adds the two projections. `W_k h` does not depend on the query, so a decoder computes it once
    per request with `prepare_keys` and passes it to every step.

    Args:
        units: width of the projected query and keys.

    Example:
        >>> attention = BahdanauAttention(16)
        >>> keys = attention.prepare_keys(memory)                 # [batch, source_len, 16]
        >>> context, weights = attention(query, memory, keys, mask)
        >>> # context [batch, memory_dim], weights [batch, source_len]
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        policy = self.dtype_policy  # the sublayers follow this layer's (mixed) policy
        self.query_projection = keras.layers.Dense(
            units, use_bias=False, name="query_projection", dtype=policy
        )
        self.key_projection = keras.layers.Dense(
            units, use_bias=False, name="key_projection", dtype=policy
        )
        self.additive_attention = keras.layers.AdditiveAttention(
            use_scale=True, name="additive", dtype=policy
        )

    def build(self, query_shape, memory_shape):
        self.query_projection.build(query_shape)
        self.key_projection.build(memory_shape)
        projected = (None, None, self.units)
        self.additive_attention.build([projected, memory_shape, projected])

    def prepare_keys(self, memory):
        """`W_k h`: float `[batch, source_len, memory_dim]` → `[batch, source_len, units]`."""
        return self.key_projection(memory)

    def call(self, query, memory, keys, memory_mask):
        """Attends from one decoder step over the source.

        Args:
            query: float `[batch, query_dim]` (the decoder state).
            memory: float `[batch, source_len, memory_dim]`, the encoder outputs (the values).
            keys: float `[batch, source_len, units]` from `prepare_keys(memory)`.
            memory_mask: bool `[batch, source_len]`, False at source padding (weight 0 there).

        Returns:
            (context float `[batch, memory_dim]`, weights float `[batch, source_len]`).
        """
        query = self.query_projection(query)[:, None, :]  # [batch, 1, units]
        context, weights = self.additive_attention(
            [query, memory, keys], mask=[None, memory_mask], return_attention_scores=True
        )
        return context[:, 0, :], weights[:, 0, :]

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config
