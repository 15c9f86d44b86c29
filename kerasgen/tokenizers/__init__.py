"""In-graph tokenizers: text to ids and back with TensorFlow ops only, so exports need no Python.

Four levels share one interface (`Tokenizer`): `CharacterTokenizer` (Unicode code points),
`WordTokenizer` (words and punctuation), `SubwordTokenizer` (WordPiece) and
`SentencePieceTokenizer` (SentencePiece unigram pieces, spacing restored exactly). Ids 0-3 are
reserved in all of them (`pad_id`, `start_id`, `end_id`, `unk_id`).

Example:

>>> tokenizer = learn_tokenizer("word", ["the cat sat.", "the dog sat."], "/tmp/tok")
>>> ids = tokenizer.tokenize(tf.constant(["the dog sat."]))  # [batch, (tokens)] int32
>>> same = load_tokenizer("/tmp/tok")  # rebuilt from /tmp/tok/tokenizer.json
"""

import json
import os

from kerasgen.tokenizers.character_tokenizer import CharacterTokenizer
from kerasgen.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from kerasgen.tokenizers.subword_tokenizer import SubwordTokenizer
from kerasgen.tokenizers.tokenizer import Tokenizer
from kerasgen.tokenizers.word_tokenizer import WordTokenizer

TOKENIZER_LEVELS = ("character", "word", "subword", "sentencepiece")

# The file, in a tokenizer's directory, that `load_tokenizer` rebuilds the tokenizer from.
CONFIG_FILE_NAME = "tokenizer.json"

_TOKENIZER_CLASSES = {
    "character": CharacterTokenizer,
    "word": WordTokenizer,
    "subword": SubwordTokenizer,
    "sentencepiece": SentencePieceTokenizer,
}


def _tokenizer_class(level: str) -> type[Tokenizer]:
    if level not in _TOKENIZER_CLASSES:
        raise ValueError(
            f"Unknown tokenizer level {level!r}; valid levels are {', '.join(TOKENIZER_LEVELS)}."
        )
    return _TOKENIZER_CLASSES[level]


def learn_tokenizer(
    level: str,
    texts: list[str],
    directory: str,
    max_vocab_size: int | None = None,
    **options,
) -> Tokenizer:
    """Learns a vocabulary from a corpus and saves the tokenizer into `directory`.

    Writes the vocabulary file (the model file for "sentencepiece") and `tokenizer.json` (the
    tokenizer's `get_config()`), so that `load_tokenizer(directory)` gives the same tokenizer
    back.

    Args:
        level: one of `TOKENIZER_LEVELS`.
        texts: the corpus, a list of documents (str).
        directory: where to write the files; created if missing.
        max_vocab_size: cap on `vocab_size`, the 4 reserved ids included (for "sentencepiece",
            the exact size). None means the level's default: every character, 20000 words,
            8000 subwords, or at most 8000 pieces.
        **options: options of the level, e.g. `lower_case=True` for "subword".

    Returns:
        the tokenizer, built from the written files.

    Raises:
        ValueError: for an unknown level, or a `max_vocab_size` of 4 or less.
        UserInputError: (a ValueError) for a SentencePiece size the text cannot support.
    """
    tokenizer = _tokenizer_class(level).learn(
        texts, directory, max_vocab_size=max_vocab_size, **options
    )
    with open(os.path.join(directory, CONFIG_FILE_NAME), "w", encoding="utf-8") as file:
        json.dump(tokenizer.get_config(), file, indent=2)
    return tokenizer


def load_tokenizer(directory: str) -> Tokenizer:
    """Rebuilds the tokenizer that `learn_tokenizer` saved into `directory`."""
    with open(os.path.join(directory, CONFIG_FILE_NAME), encoding="utf-8") as file:
        config = json.load(file)
    return _tokenizer_class(config["level"]).from_config(config, directory)


__all__ = [
    "TOKENIZER_LEVELS",
    "CharacterTokenizer",
    "SentencePieceTokenizer",
    "SubwordTokenizer",
    "Tokenizer",
    "WordTokenizer",
    "learn_tokenizer",
    "load_tokenizer",
]
