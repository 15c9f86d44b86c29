"""A tokenizer whose tokens are WordPiece subwords."""

import math
import re

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

from kerasgen.tokenizers.tokenizer import Tokenizer
from kerasgen.tokenizers.vocabulary import (
    RESERVED_TOKENS,
    check_max_vocab_size,
    write_vocabulary,
)
from kerasgen.tokenizers.word_splitting import NEWLINE_TOKEN, count_words, join_words, split_words

# Marks a piece that continues the word before it: "playing" -> "play", "##ing".
SUFFIX_INDICATOR = "##"

# Pieces seen fewer times than this in the corpus are not learned: on a small corpus they would
# only memorise rare words (the default of tensorflow-text's learner).
MIN_PIECE_COUNT = 10


class SubwordTokenizer(Tokenizer):
    """Tokenizes text into WordPiece subwords with tensorflow-text's `WordpieceTokenizer`.

    Text is first split into words exactly as `WordTokenizer` splits it (whitespace dropped,
    punctuation and newlines kept as words), then each word into the longest pieces of the
    vocabulary, greedily from its start; pieces after the first carry the `##` prefix. A word
    with a character outside the vocabulary, or longer than 100 bytes, becomes one `[UNK]`.

    The vocabulary file holds `[PAD]`, `[START]`, `[END]`, `[UNK]` on its first four lines (ids
    0-3), then, if the corpus had newlines, `[NEWLINE]` (so it is always one piece), then the
    single characters and the learned pieces.

    `detokenize` glues pieces back into words, then joins the words as `WordTokenizer` does.

    Args:
        vocabulary_file: path of the WordPiece vocabulary, one piece per line.
        lower_case: whether `tokenize` case-folds texts first; must match the learned
            vocabulary.
        name: name of the module.
    """

    DEFAULT_MAX_VOCAB_SIZE = 8000  # small enough for a small corpus to fill with frequent pieces

    def __init__(self, vocabulary_file: str, lower_case: bool = False, name: str | None = None):
        super().__init__(vocabulary_file, name=name)
        self._lower_case = lower_case
        # piece -> id. WordpieceTokenizer only checks membership and reads ids through it, and
        # detokenizes by exporting it, which needs ids dense on [0, vocab_size): line numbers.
        self._id_table = self._vocabulary_table(
            from_tokens=True, token_dtype=tf.string, default_value=self.unk_id
        )
        self._wordpiece = tf_text.WordpieceTokenizer(
            self._id_table,
            suffix_indicator=SUFFIX_INDICATOR,
            token_out_type=tf.int64,
            unknown_token=RESERVED_TOKENS[self.unk_id],
        )

    @property
    def level(self) -> str:
        return "subword"

    @property
    def lower_case(self) -> bool:
        """Whether texts are case-folded before tokenization."""
        return self._lower_case

    def _tokenize_valid_texts(self, texts):
        """Maps texts to WordPiece ids, the pieces of all words in one row."""
        if self._lower_case:
            texts = tf_text.case_fold_utf8(texts)
        words = split_words(texts)  # [batch, (words)] tf.string
        pieces = self._wordpiece.tokenize(words)  # [batch, (words), (pieces)] int64
        return tf.cast(pieces.merge_dims(1, 2), tf.int32)

    def _detokenize_valid_ids(self, ids):
        """Glues pieces into words and joins the words; unknown ids render as `[UNK]`."""
        words = self._wordpiece.detokenize(ids)  # [batch, (words)] tf.string
        # A suffix piece with no piece before it (a sequence cut mid-word) keeps its "##",
        # which would leak into the text.
        words = tf.ragged.map_flat_values(
            lambda flat: tf.strings.regex_replace(flat, "^" + SUFFIX_INDICATOR, ""), words
        )
        return join_words(words)

    def get_config(self) -> dict:
        return {**super().get_config(), "lower_case": self._lower_case}

    @classmethod
    def learn(
        cls,
        texts: list[str],
        directory: str,
        max_vocab_size: int | None = None,
        lower_case: bool = False,
    ) -> "SubwordTokenizer":
        """Learns a WordPiece vocabulary of `texts`, writes it into `directory`, returns it.

        Words are counted after the same split (and case folding) `tokenize` does, then
        tensorflow-text's WordPiece learner (the one behind `bert_vocab_from_dataset`) picks
        the pieces.

        Args:
            texts: the corpus, a list of documents.
            directory: where to write the vocabulary file; created if missing.
            max_vocab_size: cap on `vocab_size` (the 4 reserved ids included). A small corpus
                gives fewer ids, since no piece seen fewer than `MIN_PIECE_COUNT` times is
                learned. None means `DEFAULT_MAX_VOCAB_SIZE`.
            lower_case: whether to case-fold texts, when learning and when tokenizing.

        Returns:
            the tokenizer of the written vocabulary.
        """
        if max_vocab_size is None:
            max_vocab_size = cls.DEFAULT_MAX_VOCAB_SIZE
        check_max_vocab_size(max_vocab_size)
        counts = count_words(texts, lower_case=lower_case)
        word_counts = {word.decode("utf-8"): count for word, count in counts.items()}
        reserved = list(RESERVED_TOKENS)
        if NEWLINE_TOKEN in word_counts:
            reserved.append(NEWLINE_TOKEN)
        if set(word_counts) - set(reserved):
            vocabulary = _learn_wordpiece_vocabulary(word_counts, reserved, max_vocab_size)
        else:  # the learner cannot learn from no words
            vocabulary = reserved
        return cls(write_vocabulary(directory, vocabulary), lower_case=lower_case)


def _learn_wordpiece_vocabulary(
    word_counts: dict[str, int], reserved: list[str], max_vocab_size: int
) -> list[str]:
    """Runs tensorflow-text's WordPiece learner; returns at most `max_vocab_size` entries.

    The learner keeps the pieces seen at least `threshold` times, so the vocabulary shrinks as
    the threshold grows, and each threshold costs one learning pass (~1 s per MB of text). Its
    own `learn` bisects the threshold linearly between its bounds, ~15 passes; this searches
    the lowest threshold whose vocabulary fits in `max_vocab_size` instead: first
    `MIN_PIECE_COUNT` (enough on a small corpus, one pass), then by bisection in log space,
    since the size falls roughly with the threshold's logarithm, stopping within 5% of the
    target as the learner does, or when the bounds are within 10% of each other (~7 passes).
    """

    def learn_at(threshold: int) -> list[str]:
        # Equal bounds make the learner's search a single pass at that threshold.
        vocabulary = wordpiece_tokenizer_learner_lib.learn(
            word_counts,
            vocab_size=max_vocab_size,
            reserved_tokens=reserved,
            lower_thresh=threshold,
            upper_thresh=threshold,
            joiner=SUFFIX_INDICATOR,
        )
        return _drop_unusable_suffixes(vocabulary)

    low = MIN_PIECE_COUNT
    vocabulary = learn_at(low)
    if len(vocabulary) <= max_vocab_size:
        return vocabulary
    high = max(low + 1, max(word_counts.values()))
    vocabulary = learn_at(high)
    if len(vocabulary) > max_vocab_size:
        # Even the fewest pieces do not fit: keep the characters, as many as there is room for.
        return _cut_vocabulary(vocabulary, len(reserved), max_vocab_size)
    # Invariant: learn_at(low) is too large, learn_at(high) == vocabulary fits.
    # Thresholds 10% apart give vocabularies of nearly the same size: not worth more passes.
    while high > max(low + 1, 1.1 * low) and len(vocabulary) < 0.95 * max_vocab_size:
        middle = min(max(round(math.sqrt(low * high)), low + 1), high - 1)
        candidate = learn_at(middle)
        if len(candidate) <= max_vocab_size:
            high, vocabulary = middle, candidate
        else:
            low = middle
    return vocabulary


def _drop_unusable_suffixes(vocabulary: list[str]) -> list[str]:
    """Drops the `##` forms of punctuation and symbols, which `tokenize` can never produce.

    The learner adds a `##` form of every character, but punctuation and symbols are always
    words of their own (`split_words`), so these would waste ids.
    """
    suffixes = [piece for piece in vocabulary if piece.startswith(SUFFIX_INDICATOR)]
    # Asked of RE2 itself, so that "punctuation" means exactly what `split_words` splits off.
    unusable = tf.strings.regex_full_match(
        tf.constant(suffixes, dtype=tf.string), re.escape(SUFFIX_INDICATOR) + r"[\p{P}\p{S}]"
    ).numpy()
    unusable = {piece for piece, drop in zip(suffixes, unusable, strict=True) if drop}
    return [piece for piece in vocabulary if piece not in unusable]


def _cut_vocabulary(vocabulary: list[str], num_reserved: int, max_vocab_size: int) -> list[str]:
    """Cuts a vocabulary to `max_vocab_size` entries, keeping single characters longest.

    Without a character (or its `##` form) every word holding it becomes `[UNK]`, whereas
    without a longer piece the word only splits into more pieces.
    """
    reserved, learned = vocabulary[:num_reserved], vocabulary[num_reserved:]

    def is_character(piece: str) -> bool:
        return len(piece.removeprefix(SUFFIX_INDICATOR)) == 1

    # Stable sort: characters first, each group keeping the learner's order (by frequency).
    learned = sorted(learned, key=lambda piece: not is_character(piece))
    return reserved + learned[: max_vocab_size - num_reserved]
