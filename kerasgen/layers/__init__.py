"""Layers shared by the zoo's Transformer models."""

from kerasgen.layers.causal_self_attention import CausalSelfAttention, cache_write_indices
from kerasgen.layers.multi_head_attention_base import check_num_heads
from kerasgen.layers.transformer_block import TransformerBlock

__all__ = ["CausalSelfAttention", "TransformerBlock", "cache_write_indices", "check_num_heads"]

from kerasgen.layers.bahdanau_attention import BahdanauAttention  # noqa: E402
from kerasgen.layers.luong_attention import LuongAttention  # noqa: E402

__all__ += ["BahdanauAttention", "LuongAttention"]

from kerasgen.layers.cross_attention import CrossAttention  # noqa: E402
from kerasgen.layers.sinusoidal_position_encoding import sinusoidal_position_encoding  # noqa: E402
from kerasgen.layers.transformer_decoder_block import TransformerDecoderBlock  # noqa: E402
from kerasgen.layers.transformer_encoder_block import TransformerEncoderBlock  # noqa: E402

__all__ += [
    "CrossAttention",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
    "sinusoidal_position_encoding",
]
