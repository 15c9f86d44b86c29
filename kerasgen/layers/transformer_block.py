"""`TransformerBlock`: one pre-LayerNorm GPT block (causal self-attention, then a GELU MLP)."""

import keras

from kerasgen.layers.causal_self_attention import CausalSelfAttention, serialized_initializer


@keras.saving.register_keras_serializable(package="kerasgen")
class TransformerBlock(keras.layers.Layer):
    """`x + attention(norm(x))`, then `x + mlp(norm(x))`, as in GPT-2.

    Pre-LayerNorm keeps the residual stream unnormalised, which trains without the learning-rate
    warmup tricks post-LN blocks need. The MLP is Dense(mlp_width, GELU) → Dense(width).

    Args:
        width: model width.
        num_heads: attention heads; must divide `width`.
        mlp_width: hidden width of the MLP (GPT uses 4 * width).
        dropout: dropout on attention weights and on both residual branches (training only).
        layer_norm_epsilon: LayerNorm's epsilon.
        kernel_initializer: initializer of the input-side projections.
        output_initializer: initializer of the two projections that write into the residual
            stream (GPT-2 scales it by 1/sqrt(2 * num_layers)).
    """

    def __init__(
        self,
        width,
        num_heads,
        mlp_width,
        dropout=0.0,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        output_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.width = width
        self.num_heads = num_heads
        self.mlp_width = mlp_width
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        # Kept serialised, so every sublayer builds its own instance (and its own random seed).
        self.kernel_initializer = serialized_initializer(kernel_initializer)
        self.output_initializer = serialized_initializer(output_initializer or kernel_initializer)
        policy = self.dtype_policy  # every sublayer follows this layer's, as in the attention
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="attention_norm", dtype=policy
        )
        self.attention = CausalSelfAttention(
            width,
            num_heads,
            dropout=dropout,
            kernel_initializer=self.kernel_initializer,
            output_initializer=self.output_initializer,
            name="attention",
            dtype=policy,
        )
        self.mlp_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="mlp_norm", dtype=policy
        )
        self.mlp_hidden = keras.layers.Dense(
            mlp_width,
            activation="gelu",
            kernel_initializer=self.kernel_initializer,
            name="mlp_hidden",
            dtype=policy,
        )
        self.mlp_output = keras.layers.Dense(
            width, kernel_initializer=self.output_initializer, name="mlp_output", dtype=policy
        )
        self.mlp_dropout = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape):
        for layer in (self.attention_norm, self.attention, self.mlp_norm, self.mlp_hidden):
            if not layer.built:
                layer.build(input_shape)
        if not self.mlp_output.built:
            self.mlp_output.build(tuple(input_shape[:-1]) + (self.mlp_width,))

    def _mlp(self, x, training):
        hidden = self.mlp_hidden(self.mlp_norm(x))
        return self.mlp_dropout(self.mlp_output(hidden), training=training)

    def call(self, x, training=False):
        """x `[batch, time, width]` → `[batch, time, width]`."""
        x = x + self.attention(self.attention_norm(x), training=training)
        return x + self._mlp(x, training)

    def prefill(self, x):
        """`call` that also returns the attention's keys and values, each `[batch, heads, time,
        head_dim]`; see `CausalSelfAttention.prefill`. Returns (output, keys, values)."""
        attended, keys, values = self.attention.prefill(self.attention_norm(x))
        x = x + attended
        return x + self._mlp(x, training=False), keys, values

    def step(self, x, key_cache, value_cache, index, cache_indices):
        """One position `[batch, width]` against the layer's key/value cache; see
        `CausalSelfAttention.step`. Returns (output, new key cache, new value cache)."""
        attended, key_cache, value_cache = self.attention.step(
            self.attention_norm(x), key_cache, value_cache, index, cache_indices
        )
        x = x + attended
        return x + self._mlp(x, training=False), key_cache, value_cache

    def masked_step(self, x, key_cache, value_cache, cache_indices, positions, length):
        """`step` at per-row positions, reading the first `length` cache slots; see
        `CausalSelfAttention.masked_step`. Returns (output, new key cache, new value cache)."""
        attended, key_cache, value_cache = self.attention.masked_step(
            self.attention_norm(x), key_cache, value_cache, cache_indices, positions, length
        )
        x = x + attended
        return x + self._mlp(x, training=False), key_cache, value_cache

    def get_config(self):
        config = super().get_config()
        config.update(
            width=self.width,
            num_heads=self.num_heads,
            mlp_width=self.mlp_width,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=self.kernel_initializer,
            output_initializer=self.output_initializer,
        )
        return config
