"""Model families of the zoo, and their presets."""

from kerasgen.models.gpt import GPT
from kerasgen.models.presets import PRESETS, build_model, get_preset, preset_names
from kerasgen.models.text_generator import TextGenerator
from kerasgen.models.transformer_seq2seq import TransformerSeq2Seq

__all__ = [
    "GPT",
    "PRESETS",
    "TextGenerator",
    "TransformerSeq2Seq",
    "build_model",
    "get_preset",
    "preset_names",
]
