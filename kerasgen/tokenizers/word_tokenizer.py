"""A tokenizer whose tokens are whole words and punctuation marks."""

import tensorflow as tf

from kerasgen.tokenizers.tokenizer import Tokenizer
from kerasgen.tokenizers.vocabulary import (
    RESERVED_TOKENS,
    check_max_vocab_size,
    most_frequent,
    write_vocabulary,
)
from kerasgen.tokenizers.word_splitting import count_words, join_words, split_words


class WordTokenizer(Tokenizer):
    """Tokenizes text into words, punctuation marks and newlines (see `word_splitting`).

    The vocabulary file holds `[PAD]`, `[START]`, `[END]`, `[UNK]` on its first four lines,
    then one word per line, most frequent first; a newline is the word `[NEWLINE]`.

    `detokenize` joins words with single spaces and restores newlines and the spacing of
    common punctuation (`join_words`), so "Hello, world.\\nBye!" comes back as it was but
    'He said "no"' comes back as 'He said " no "'.

    Example:

    >>> tokenizer = WordTokenizer.learn(["the cat sat.", "the dog."], "/tmp/words")
    >>> tokenizer.detokenize(tokenizer.tokenize(tf.constant(["the cow sat."])))
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'the [UNK] sat.'], dtype=object)>

    Args:
        vocabulary_file: path of the file of words, one per line.
        name: name of the module.
    """

    DEFAULT_MAX_VOCAB_SIZE = 20000  # large enough for most of a small corpus's running words

    def __init__(self, vocabulary_file: str, name: str | None = None):
        super().__init__(vocabulary_file, name=name)
        # word -> id; anything not in the file is unknown.
        self._id_table = self._vocabulary_table(
            from_tokens=True, token_dtype=tf.string, default_value=self.unk_id
        )
        # id -> word; line 3 of the file is "[UNK]", so the unknown id renders as "[UNK]".
        self._word_table = self._vocabulary_table(
            from_tokens=False, token_dtype=tf.string, default_value=RESERVED_TOKENS[self.unk_id]
        )

    @property
    def level(self) -> str:
        return "word"

    def _tokenize_valid_texts(self, texts):
        """Maps each word, punctuation mark and newline to its id."""
        words = split_words(texts)  # [batch, (words)] tf.string
        return tf.cast(tf.ragged.map_flat_values(self._id_table.lookup, words), tf.int32)

    def _detokenize_valid_ids(self, ids):
        """Joins the words of `ids` with spaces; unknown ids render as `[UNK]`."""
        return join_words(tf.ragged.map_flat_values(self._word_table.lookup, ids))

    @classmethod
    def learn(
        cls, texts: list[str], directory: str, max_vocab_size: int | None = None
    ) -> "WordTokenizer":
        """Writes the vocabulary of `texts` into `directory` and returns its tokenizer.

        Words are counted after the same split `tokenize` does, so every word of the
        vocabulary can actually come out of `tokenize`.

        Args:
            texts: the corpus, a list of documents.
            directory: where to write the vocabulary file; created if missing.
            max_vocab_size: cap on `vocab_size` (the 4 reserved ids included); the most
                frequent words are kept. None means `DEFAULT_MAX_VOCAB_SIZE`.

        Returns:
            the tokenizer of the written vocabulary.
        """
        if max_vocab_size is None:
            max_vocab_size = cls.DEFAULT_MAX_VOCAB_SIZE
        check_max_vocab_size(max_vocab_size)
        counts = count_words(texts)
        words = most_frequent(counts, max_vocab_size - len(RESERVED_TOKENS))
        return cls(write_vocabulary(directory, list(RESERVED_TOKENS) + words))
