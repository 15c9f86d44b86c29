"""`TransformerDecoderBlock`: one pre-LayerNorm decoder block (causal self-attention, attention
over the encoder's output, GELU MLP)."""

import keras

from kerasgen.layers.causal_self_attention import CausalSelfAttention, serialized_initializer
from kerasgen.layers.cross_attention import CrossAttention


@keras.saving.register_keras_serializable(package="kerasgen")
class TransformerDecoderBlock(keras.layers.Layer):
    """`x + self_attention(norm(x))`, `x + cross_attention(norm(x), memory)`, `x + mlp(norm(x))`.

    The self-attention is `CausalSelfAttention` (the GPT blocks' layer, with its fixed-size
    key/value cache for decoding); the cross-attention reads keys and values of the encoder's
    output that the model computes once per request (`memory_keys_values`). The same weights
    serve two paths:

    - `call`: a whole target sequence (training, scoring).
    - `step`: one position of every row, against the self-attention cache.

    Args:
        width: model width.
        num_heads: attention heads of both attentions; must divide `width`.
        mlp_width: hidden width of the MLP.
        dropout: dropout on attention weights and on the three residual branches (training
            only).
        layer_norm_epsilon: LayerNorm's epsilon.
        kernel_initializer: initializer of the input-side projections.
        output_initializer: initializer of the projections that write into the residual
            stream (defaults to `kernel_initializer`).
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
        self.kernel_initializer = serialized_initializer(kernel_initializer)
        self.output_initializer = serialized_initializer(output_initializer or kernel_initializer)
        initializers = dict(
            kernel_initializer=self.kernel_initializer, output_initializer=self.output_initializer
        )
        self.self_attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="self_attention_norm"
        )
        self.self_attention = CausalSelfAttention(
            width, num_heads, dropout=dropout, name="self_attention", **initializers
        )
        self.cross_attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="cross_attention_norm"
        )
        self.cross_attention = CrossAttention(
            width, num_heads, dropout=dropout, name="cross_attention", **initializers
        )
        self.mlp_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="mlp_norm")
        self.mlp_hidden = keras.layers.Dense(
            mlp_width,
            activation="gelu",
            kernel_initializer=self.kernel_initializer,
            name="mlp_hidden",
        )
        self.mlp_output = keras.layers.Dense(
            width, kernel_initializer=self.output_initializer, name="mlp_output"
        )
        self.mlp_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        shape = (None, None, self.width)
        for layer in (
            self.self_attention_norm,
            self.self_attention,
            self.cross_attention_norm,
            self.cross_attention,
            self.mlp_norm,
            self.mlp_hidden,
        ):
            if not layer.built:
                layer.build(shape)
        if not self.mlp_output.built:
            self.mlp_output.build((None, None, self.mlp_width))

    def memory_keys_values(self, memory):
        """The cross-attention's keys and values of the encoder output `[batch, source_len,
        width]`: each `[batch, heads, source_len, head_dim]`, computed once per request."""
        return self.cross_attention.memory_keys_values(memory)

    def _cross_and_mlp(self, x, memory_keys, memory_values, source_mask, training):
        """The two sublayers after the self-attention; x `[batch, time, width]`."""
        attended, weights = self.cross_attention(
            self.cross_attention_norm(x), memory_keys, memory_values, source_mask, training=training
        )
        x = x + attended
        hidden = self.mlp_hidden(self.mlp_norm(x))
        return x + self.mlp_dropout(self.mlp_output(hidden), training=training), weights

    def call(self, x, memory_keys, memory_values, source_mask, training=False):
        """A whole target sequence.

        Args:
            x: `[batch, target_len, width]`.
            memory_keys, memory_values: `[batch, heads, source_len, head_dim]`.
            source_mask: bool `[batch, source_len]`, True on real source tokens.
            training: enables dropout.

        Returns:
            (`[batch, target_len, width]`, cross-attention weights averaged over the heads,
            float32 `[batch, target_len, source_len]`).
        """
        x = x + self.self_attention(self.self_attention_norm(x), training=training)
        return self._cross_and_mlp(x, memory_keys, memory_values, source_mask, training)

    def step(
        self,
        x,
        key_cache,
        value_cache,
        index,
        cache_indices,
        memory_keys,
        memory_values,
        source_mask,
    ):
        """One position of every row; see `CausalSelfAttention.step` for the cache arguments.

        Args:
            x: `[batch, width]`, the input at position `index`.
            key_cache, value_cache: `[batch, heads, cache_len, head_dim]`.
            index: scalar int32 position, `< cache_len`.
            cache_indices: int32 `[batch * heads, 3]` (see `cache_write_indices`).
            memory_keys, memory_values, source_mask: as in `call`.

        Returns:
            (output `[batch, width]`, weights float32 `[batch, source_len]`, new key cache,
            new value cache).
        """
        attended, key_cache, value_cache = self.self_attention.step(
            self.self_attention_norm(x), key_cache, value_cache, index, cache_indices
        )
        x = (x + attended)[:, None, :]  # the cross-attention and MLP take a time axis
        x, weights = self._cross_and_mlp(x, memory_keys, memory_values, source_mask, training=False)
        return x[:, 0], weights[:, 0], key_cache, value_cache

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
