"""`TransformerEncoderBlock`: one pre-LayerNorm encoder block (padded self-attention, GELU MLP)."""

import keras

from kerasgen.layers.causal_self_attention import serialized_initializer
from kerasgen.layers.cross_attention import CrossAttention


@keras.saving.register_keras_serializable(package="kerasgen")
class TransformerEncoderBlock(keras.layers.Layer):
    """`x + attention(norm(x))`, then `x + mlp(norm(x))`, over a padded source.

    The attention is bidirectional: every position attends to every real (unpadded) position
    of the same sequence, before and after it (`CrossAttention` of the sequence over itself).
    Pre-LayerNorm as in `TransformerBlock`; the MLP is Dense(mlp_width, GELU) → Dense(width).

    Args:
        width: model width.
        num_heads: attention heads; must divide `width`.
        mlp_width: hidden width of the MLP.
        dropout: dropout on attention weights and on both residual branches (training only).
        layer_norm_epsilon: LayerNorm's epsilon.
        kernel_initializer: initializer of the input-side projections.
        output_initializer: initializer of the two projections that write into the residual
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
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="attention_norm"
        )
        self.attention = CrossAttention(
            width,
            num_heads,
            dropout=dropout,
            kernel_initializer=self.kernel_initializer,
            output_initializer=self.output_initializer,
            name="attention",
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
        for layer in (self.attention_norm, self.attention, self.mlp_norm, self.mlp_hidden):
            if not layer.built:
                layer.build(shape)
        if not self.mlp_output.built:
            self.mlp_output.build((None, None, self.mlp_width))

    def call(self, x, padding_mask, training=False):
        """x `[batch, source_len, width]`, bool padding_mask `[batch, source_len]` (True on real
        tokens) → `[batch, source_len, width]`. Padded positions compute values nobody reads."""
        normed = self.attention_norm(x)
        keys, values = self.attention.memory_keys_values(normed)
        attended, _ = self.attention(normed, keys, values, padding_mask, training=training)
        x = x + attended
        hidden = self.mlp_hidden(self.mlp_norm(x))
        return x + self.mlp_dropout(self.mlp_output(hidden), training=training)

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
