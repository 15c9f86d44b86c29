"""Corpora and input pipelines: text in, batches of token ids out."""

from kerasgen.data.corpus import Corpus, CorpusError, load_corpus, split_paragraphs
from kerasgen.data.pipeline import check_enough_tokens, count_tokens, language_model_dataset

__all__ = [
    "Corpus",
    "CorpusError",
    "check_enough_tokens",
    "count_tokens",
    "language_model_dataset",
    "load_corpus",
    "split_paragraphs",
]
