"""Layers shared by the zoo's Transformer models."""

from kerasgen.layers.causal_self_attention import CausalSelfAttention, cache_write_indices
from kerasgen.layers.transformer_block import TransformerBlock

__all__ = ["CausalSelfAttention", "TransformerBlock", "cache_write_indices"]

from kerasgen.layers.bahdanau_attention import BahdanauAttention  # noqa: E402
from kerasgen.layers.luong_attention import LuongAttention  # noqa: E402

__all__ += ["BahdanauAttention", "LuongAttention"]
