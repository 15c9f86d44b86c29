"""A tokenizer whose tokens are Unicode code points."""

import collections

import numpy as np
import tensorflow as tf

from kerasgen.tokenizers.tokenizer import Tokenizer
from kerasgen.tokenizers.vocabulary import (
    RESERVED_TOKENS,
    batches,
    check_max_vocab_size,
    most_frequent,
    write_vocabulary,
)

# U+FFFD, what an unknown id turns into, like an undecodable byte does.
REPLACEMENT_CHARACTER = 0xFFFD


class CharacterTokenizer(Tokenizer):
    """Tokenizes text into Unicode code points, one token per character.

    A newline cannot be a line of a line-based file, so the vocabulary file stores each code
    point as a decimal integer, one per line, read back with a `TextFileInitializer` of
    `key_dtype=tf.int64`. The reserved ids 0-3 are stored as the negative numbers -1 to -4,
    which no code point can collide with. Any text made only of in-vocabulary characters
    survives `detokenize(tokenize(text))` exactly, newlines and non-ASCII included.

    Example:

    >>> tokenizer = CharacterTokenizer.learn(["hi\\n"], "/tmp/chars")
    >>> tokenizer.tokenize(tf.constant(["hi", "hiX"]))
    <tf.RaggedTensor [[5, 6], [5, 6, 3]]>

    Args:
        vocabulary_file: path of the file of code points, one decimal integer per line.
        name: name of the module.
    """

    DEFAULT_MAX_VOCAB_SIZE = None  # every character of the corpus

    def __init__(self, vocabulary_file: str, name: str | None = None):
        super().__init__(vocabulary_file, name=name)
        # code point -> id; anything not in the file is unknown.
        self._id_table = self._vocabulary_table(
            from_tokens=True, token_dtype=tf.int64, default_value=self.unk_id
        )
        # id -> code point; unknown and reserved ids (stored as negatives) render as U+FFFD.
        self._code_point_table = self._vocabulary_table(
            from_tokens=False, token_dtype=tf.int64, default_value=REPLACEMENT_CHARACTER
        )

    @property
    def level(self) -> str:
        return "character"

    def _tokenize_valid_texts(self, texts):
        """Maps each code point to its id: `[batch]` → `[batch, (characters)]` int32."""
        code_points = tf.strings.unicode_decode(
            texts, "UTF-8", errors="replace", replacement_char=REPLACEMENT_CHARACTER
        )  # [batch, (characters)] int32
        ids = tf.ragged.map_flat_values(
            lambda flat: self._id_table.lookup(tf.cast(flat, tf.int64)), code_points
        )
        return tf.cast(ids, tf.int32)

    def _detokenize_valid_ids(self, ids):
        """Maps ids back to characters; unknown ids become U+FFFD."""
        code_points = tf.ragged.map_flat_values(self._code_point_table.lookup, ids)
        code_points = tf.ragged.map_flat_values(
            lambda flat: tf.where(flat < 0, tf.constant(REPLACEMENT_CHARACTER, tf.int64), flat),
            code_points,
        )
        return tf.strings.unicode_encode(tf.cast(code_points, tf.int32), "UTF-8")

    @classmethod
    def learn(
        cls, texts: list[str], directory: str, max_vocab_size: int | None = None
    ) -> "CharacterTokenizer":
        """Writes the vocabulary of `texts` into `directory` and returns its tokenizer.

        Args:
            texts: the corpus, a list of documents.
            directory: where to write the vocabulary file; created if missing.
            max_vocab_size: cap on `vocab_size` (the 4 reserved ids included); the most
                frequent characters are kept. None keeps every character.

        Returns:
            the tokenizer of the written vocabulary.
        """
        check_max_vocab_size(max_vocab_size)
        counts = collections.Counter()
        for batch in batches(texts):
            code_points = tf.strings.unicode_decode(
                tf.constant(batch, dtype=tf.string),
                "UTF-8",
                errors="replace",
                replacement_char=REPLACEMENT_CHARACTER,
            )
            values, frequencies = np.unique(code_points.flat_values.numpy(), return_counts=True)
            counts.update(dict(zip(values.tolist(), frequencies.tolist(), strict=True)))
        limit = None if max_vocab_size is None else max_vocab_size - len(RESERVED_TOKENS)
        # Sorted by code point so that a vocabulary reads like the alphabet.
        code_points = sorted(most_frequent(counts, limit))
        reserved = [str(-1 - index) for index in range(len(RESERVED_TOKENS))]
        return cls(write_vocabulary(directory, reserved + [str(point) for point in code_points]))
