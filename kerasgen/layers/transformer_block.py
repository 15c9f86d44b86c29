"""`TransformerBlock`: one pre-LayerNorm GPT block (causal self-attention, then a GELU MLP)."""

import keras

from kerasgen.layers.causal_self_attention import CausalSelfAttention
from kerasgen.layers.pre_norm_block import PreNormBlock


@keras.saving.register_keras_serializable(package="kerasgen")
class TransformerBlock(PreNormBlock):
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # PreNormBlock's arguments, documented above
        policy = self.dtype_policy  # every sublayer follows this layer's, as in the attention
        self.attention_norm = self._layer_norm("attention_norm", policy)
        self.attention = CausalSelfAttention(
            self.width,
            self.num_heads,
            name="attention",
            dtype=policy,
            **self._attention_arguments(),
        )
        self._create_mlp(policy)

    def build(self, input_shape):
        self._build_sublayers([self.attention_norm, self.attention])

    def call(self, x, training=False):
        """x `[batch, time, width]` → `[batch, time, width]`."""
        attended = self.attention(self.attention_norm(x), training=training)
        return self._residual_mlp(x + attended, training)

    def prefill(self, x):
        """`call` that also returns the attention's keys and values, each `[batch, heads, time,
        head_dim]`; see `CausalSelfAttention.prefill`. Returns (output, keys, values)."""
        return self._after_attention(x, self.attention.prefill(self.attention_norm(x)))

    def step(self, x, key_cache, value_cache, index, cache_indices):
        """One position `[batch, width]` against the layer's key/value cache; see
        `CausalSelfAttention.step`. Returns (output, new key cache, new value cache)."""
        normed = self.attention_norm(x)
        return self._after_attention(
            x, self.attention.step(normed, key_cache, value_cache, index, cache_indices)
        )

    def masked_step(self, x, key_cache, value_cache, cache_indices, positions, length):
        """`step` at per-row positions, reading the first `length` cache slots; see
        `CausalSelfAttention.masked_step`. Returns (output, new key cache, new value cache)."""
        normed = self.attention_norm(x)
        return self._after_attention(
            x,
            self.attention.masked_step(
                normed, key_cache, value_cache, cache_indices, positions, length
            ),
        )

    def _after_attention(self, x, attention_outputs):
        """The residual sum and the MLP after an inference path of the attention, which
        returned `(attended, keys, values)` (or the new caches); returns them with the block's
        output `x + attended`, then through the MLP, first."""
        attended, keys, values = attention_outputs
        return self._residual_mlp(x + attended, training=False), keys, values
