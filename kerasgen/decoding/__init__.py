"""Decoding in the graph: one loop (`decode`) and the strategies that plug into it."""

from kerasgen.decoding.beam_search import BeamSearchStrategy, length_penalty
from kerasgen.decoding.engine import decode, generated_tokens, prepare_prompts
from kerasgen.decoding.sampling import SamplingStrategy, choose_tokens, filter_logits

__all__ = [
    "BeamSearchStrategy",
    "SamplingStrategy",
    "choose_tokens",
    "decode",
    "filter_logits",
    "generated_tokens",
    "length_penalty",
    "prepare_prompts",
]
