"""`TransformerEncoderBlock`: one pre-LayerNorm encoder block (padded self-attention, GELU MLP)."""

import keras

from kerasgen.layers.cross_attention import CrossAttention
from kerasgen.layers.pre_norm_block import PreNormBlock


@keras.saving.register_keras_serializable(package="kerasgen")
class TransformerEncoderBlock(PreNormBlock):
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # PreNormBlock's arguments, documented above
        self.attention_norm = self._layer_norm("attention_norm")
        self.attention = CrossAttention(
            self.width, self.num_heads, name="attention", **self._attention_arguments()
        )
        self._create_mlp()

    def build(self, input_shape):
        self._build_sublayers([self.attention_norm, self.attention])

    def call(self, x, padding_mask, training=False):
        """x `[batch, source_len, width]`, bool padding_mask `[batch, source_len]` (True on real
        tokens) → `[batch, source_len, width]`. Padded positions compute values nobody reads."""
        normed = self.attention_norm(x)
        keys, values = self.attention.memory_keys_values(normed)
        attended, _ = self.attention(normed, keys, values, padding_mask, training=training)
        return self._residual_mlp(x + attended, training)
