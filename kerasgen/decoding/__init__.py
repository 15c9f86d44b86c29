"""Decoding in the graph: one loop (`decode`) and the strategies that plug into it."""

from kerasgen.decoding.beam_search import BeamSearchStrategy, length_penalty
from kerasgen.decoding.engine import decode, generated_tokens, generated_values, prepare_prompts
from kerasgen.decoding.logits_processors import (
    LogitsProcessor,
    MinNewTokens,
    NoRepeatNGram,
    RepetitionPenalty,
    apply_logits_processors,
    make_logits_processors,
)
from kerasgen.decoding.multiple_samples import group_samples, repeat_rows, sample_seeds
from kerasgen.decoding.sampling import SamplingStrategy, choose_tokens, filter_logits
from kerasgen.decoding.stop_sequences import StopSequenceMatcher

__all__ = [
    "BeamSearchStrategy",
    "LogitsProcessor",
    "MinNewTokens",
    "NoRepeatNGram",
    "RepetitionPenalty",
    "SamplingStrategy",
    "StopSequenceMatcher",
    "apply_logits_processors",
    "choose_tokens",
    "decode",
    "filter_logits",
    "generated_tokens",
    "generated_values",
    "group_samples",
    "length_penalty",
    "make_logits_processors",
    "prepare_prompts",
    "repeat_rows",
    "sample_seeds",
]
