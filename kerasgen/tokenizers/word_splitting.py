"""Splitting text into words and joining words back, shared by the word and subword levels.

Splitting rules (RE2 patterns, run by tensorflow_text.regex_split):

- every punctuation (`\\p{P}`) or symbol (`\\p{S}`) character is a word of its own;
- a newline is a word of its own, spelled `NEWLINE_TOKEN` so that it fits on a line of a
  vocabulary file and the line structure of poems, lyrics or code survives;
- runs of other whitespace (`\\p{Z}`, tabs, carriage returns) and control characters separate
  words and are dropped.

So a word never holds whitespace, and never equals a bracketed placeholder such as `[UNK]` or
`[NEWLINE]`, since the brackets would have been split off.
"""

import collections
import re

import tensorflow as tf
import tensorflow_text as tf_text

from kerasgen.tokenizers.vocabulary import batches

# How a newline is spelled in vocabularies. "\n" itself cannot be a line of a vocabulary file.
NEWLINE_TOKEN = "[NEWLINE]"

# Delimiters that are words themselves: a newline, or one punctuation or symbol character.
_KEPT_DELIMITERS = r"\n|[\p{P}\p{S}]"
# All delimiters: those kept, and runs of whitespace and control characters except "\n".
_DELIMITERS = _KEPT_DELIMITERS + r"|[\p{Z}\x00-\x09\x0b-\x1f\x7f-\x9f]+"


def split_words(texts: tf.Tensor) -> tf.RaggedTensor:
    """Splits valid UTF-8 texts into words, punctuation and newline tokens.

    Args:
        texts: `[batch]` tf.string, valid UTF-8 (see `Tokenizer._prepare_texts`).

    Returns:
        `[batch, (words)]` tf.string RaggedTensor, newlines spelled `NEWLINE_TOKEN`.

    Example: `"Hi, you.\\nBye"` -> `["Hi", ",", "you", ".", "[NEWLINE]", "Bye"]`.
    """
    words = tf_text.regex_split(texts, _DELIMITERS, _KEPT_DELIMITERS)
    return tf.ragged.map_flat_values(
        lambda flat: tf.where(tf.equal(flat, "\n"), NEWLINE_TOKEN, flat), words
    )


def join_words(words: tf.RaggedTensor) -> tf.Tensor:
    """Joins words with single spaces, restoring newlines and the cheap part of punctuation.

    The split dropped the original spacing, so it is rebuilt by rule: no space before
    `. , ; : ! ? % ) ] }` or after `( [ {`, none around an apostrophe (' or U+2019) between
    two letters, and none around a newline. Quotes, dashes and numbers such as "3.14" come
    back with spaces ("3. 14"), since which side a space belongs to cannot be told from the
    words alone.

    Args:
        words: `[batch, (words)]` tf.string RaggedTensor, newlines spelled `NEWLINE_TOKEN`.

    Returns:
        `[batch]` tf.string.
    """
    texts = tf.strings.reduce_join(words, axis=-1, separator=" ")
    # Replaced in the joined text rather than word by word, so that a newline glued to a
    # subword suffix ("[NEWLINE]" + "##s") still becomes a newline. A literal "[NEWLINE]" typed
    # in a text is safe: it was split into "[ NEWLINE ]", which this pattern does not match.
    texts = tf.strings.regex_replace(texts, " *" + re.escape(NEWLINE_TOKEN) + " *", "\n")
    texts = tf.strings.regex_replace(texts, r" ([.,;:!?%)\]}])", r"\1")
    texts = tf.strings.regex_replace(texts, r"([(\[{]) ", r"\1")
    return tf.strings.regex_replace(texts, r"(\pL) (['\x{2019}]) (\pL)", r"\1\2\3")


def count_words(texts: list[str], lower_case: bool = False) -> collections.Counter:
    """Counts the words `split_words` makes of a corpus.

    Args:
        texts: the corpus, a list of documents.
        lower_case: whether to case-fold the documents first (`tf_text.case_fold_utf8`).

    Returns:
        a Counter from UTF-8 `bytes` words to their number of occurrences.
    """
    counts = collections.Counter()
    for batch in batches(texts):
        texts_tensor = tf.strings.unicode_transcode(
            tf.constant(batch, dtype=tf.string), "UTF-8", "UTF-8", errors="replace"
        )
        if lower_case:
            texts_tensor = tf_text.case_fold_utf8(texts_tensor)
        counts.update(split_words(texts_tensor).flat_values.numpy().tolist())
    return counts
