"""`TransformerDecoderBlock`: one pre-LayerNorm decoder block (causal self-attention, attention
over the encoder's output, GELU MLP)."""

import keras

from kerasgen.layers.causal_self_attention import CausalSelfAttention
from kerasgen.layers.cross_attention import CrossAttention
from kerasgen.layers.pre_norm_block import PreNormBlock


@keras.saving.register_keras_serializable(package="kerasgen")
class TransformerDecoderBlock(PreNormBlock):
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # PreNormBlock's arguments, documented above
        attention = self._attention_arguments()
        self.self_attention_norm = self._layer_norm("self_attention_norm")
        self.self_attention = CausalSelfAttention(
            self.width, self.num_heads, name="self_attention", **attention
        )
        self.cross_attention_norm = self._layer_norm("cross_attention_norm")
        self.cross_attention = CrossAttention(
            self.width, self.num_heads, name="cross_attention", **attention
        )
        self._create_mlp()

    def build(self, input_shape):
        self._build_sublayers(
            [
                self.self_attention_norm,
                self.self_attention,
                self.cross_attention_norm,
                self.cross_attention,
            ]
        )

    def memory_keys_values(self, memory):
        """The cross-attention's keys and values of the encoder output `[batch, source_len,
        width]`: each `[batch, heads, source_len, head_dim]`, computed once per request."""
        return self.cross_attention.memory_keys_values(memory)

    def _cross_and_mlp(self, x, memory_keys, memory_values, source_mask, training):
        """The two sublayers after the self-attention; x `[batch, time, width]`."""
        attended, weights = self.cross_attention(
            self.cross_attention_norm(x), memory_keys, memory_values, source_mask, training=training
        )
        return self._residual_mlp(x + attended, training), weights

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
