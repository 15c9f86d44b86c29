"""The base class of kerasgen's in-graph tokenizers."""

import os

import tensorflow as tf

from kerasgen.tokenizers.vocabulary import count_vocabulary_entries


class Tokenizer(tf.Module):
    """Maps a batch of strings to ragged int32 ids and back, entirely with TensorFlow ops.

    Subclasses build their lookup tables in `__init__` from one vocabulary file and keep them
    as attributes. Saving any `tf.Module` (or Keras `ExportArchive`) that tracks the tokenizer
    therefore saves the tables too, and copies the vocabulary file into the SavedModel's
    `assets/` folder: the export needs neither kerasgen nor the original file to run (only
    `import tensorflow_text` for the word, subword and sentencepiece levels, whose graphs use
    its ops). With a Keras `ExportArchive`, call `archive.track(tokenizer)`.

    A level supplies `_tokenize_valid_texts` and `_detokenize_valid_ids`; `tokenize` and
    `detokenize` check and clean their inputs first, the same way for every level.

    `tokenize` and `detokenize` run eagerly or inside `tf.function`, e.g. with
    `input_signature=[tf.TensorSpec([None], tf.string)]`, for any batch size including 0.

    Line `i` of the vocabulary file (piece `i` of a SentencePiece model) is id `i`. Ids 0-3 are
    reserved in every tokenizer and real tokens start at 4:

    - `pad_id = 0` pads batches and is dropped by `detokenize`;
    - `start_id = 1` and `end_id = 2` mark a sequence's ends; `tokenize` never adds them
      (callers do), `detokenize` drops them;
    - `unk_id = 3` stands for any token outside the vocabulary.

    Args:
        vocabulary_file: path of the vocabulary file.
        name: name of the module.
    """

    pad_id = 0
    start_id = 1
    end_id = 2
    unk_id = 3

    def __init__(self, vocabulary_file: str, name: str | None = None):
        super().__init__(name=name)
        self._vocabulary_file = os.fspath(vocabulary_file)
        self._vocab_size = self._count_ids()

    @property
    def level(self) -> str:
        """The tokenization level: "character", "word", "subword" or "sentencepiece"."""
        raise NotImplementedError

    def _count_ids(self) -> int:
        """The number of ids of the vocabulary file: one per line, unless a level stores its
        vocabulary otherwise (SentencePiece keeps a binary model) and overrides this."""
        return count_vocabulary_entries(self._vocabulary_file)

    @property
    def vocab_size(self) -> int:
        """The number of ids, the 4 reserved ones included: every id is in `[0, vocab_size)`."""
        return self._vocab_size

    @property
    def vocabulary_file(self) -> str:
        """The path of the vocabulary file the lookup tables were built from."""
        return self._vocabulary_file

    def tokenize(self, texts) -> tf.RaggedTensor:
        """Splits texts into token ids, without start or end ids.

        Args:
            texts: `[batch]` tf.string. Invalid UTF-8 bytes are replaced by U+FFFD first.

        Returns:
            `[batch, (tokens)]` int32 RaggedTensor; tokens outside the vocabulary are `unk_id`.
        """
        return self._tokenize_valid_texts(self._prepare_texts(texts))

    def detokenize(self, ids) -> tf.Tensor:
        """Turns ids back into text, dropping pad, start and end ids.

        Args:
            ids: `[batch, (length)]` integer ids, a RaggedTensor or a dense Tensor. Ids outside
                `[0, vocab_size)` render as an unknown token does.

        Returns:
            `[batch]` tf.string.
        """
        return self._detokenize_valid_ids(self._prepare_ids(ids))

    # What each level supplies; they see only inputs `tokenize` and `detokenize` have checked.

    def _tokenize_valid_texts(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """`[batch]` tf.string, valid UTF-8 → `[batch, (tokens)]` int32 ids."""
        raise NotImplementedError

    def _detokenize_valid_ids(self, ids: tf.RaggedTensor) -> tf.Tensor:
        """`[batch, (length)]` int64 ids in `[0, vocab_size)`, no pad, start or end id →
        `[batch]` tf.string."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """Returns the JSON-serialisable arguments that rebuild this tokenizer.

        File names are relative to the tokenizer's directory, so a directory can be moved.
        """
        return {"level": self.level, "vocabulary_file": os.path.basename(self._vocabulary_file)}

    @classmethod
    def from_config(cls, config: dict, directory: str) -> "Tokenizer":
        """Rebuilds a tokenizer from `get_config()` and the directory holding its files."""
        arguments = {key: value for key, value in config.items() if key != "level"}
        arguments["vocabulary_file"] = os.path.join(directory, config["vocabulary_file"])
        return cls(**arguments)

    def _vocabulary_table(self, *, from_tokens: bool, token_dtype, default_value):
        """A lookup table over the vocabulary file, where line `i` holds the token of id `i`.

        Args:
            from_tokens: True for token → id, False for id → token.
            token_dtype: how a line reads: `tf.string`, or `tf.int64` for code points.
            default_value: what a missing key maps to.
        """
        line_number = tf.lookup.TextFileIndex.LINE_NUMBER
        whole_line = tf.lookup.TextFileIndex.WHOLE_LINE
        if from_tokens:
            keys, values = (token_dtype, whole_line), (tf.int64, line_number)
        else:
            keys, values = (tf.int64, line_number), (token_dtype, whole_line)
        return tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.vocabulary_file,
                key_dtype=keys[0],
                key_index=keys[1],
                value_dtype=values[0],
                value_index=values[1],
                vocab_size=self.vocab_size,
            ),
            default_value=default_value,
        )

    def _prepare_texts(self, texts) -> tf.Tensor:
        """Returns `[batch]` tf.string texts that are valid UTF-8, so later ops never raise."""
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank is not None and texts.shape.rank != 1:
            raise ValueError(f"texts must be a [batch] string tensor, got shape {texts.shape}.")
        return tf.strings.unicode_transcode(
            texts, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace"
        )

    def _prepare_ids(self, ids) -> tf.RaggedTensor:
        """Returns `[batch, (length)]` int64 ids without pad, start or end ids.

        Ids outside `[0, vocab_size)` become `unk_id`, so that lookups and gathers never fail.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        if ids.shape.rank != 2:
            raise ValueError(f"ids must be [batch, (length)], got shape {ids.shape}.")
        ids = tf.cast(ids, tf.int64)
        ids = tf.ragged.map_flat_values(
            lambda flat: tf.where(
                (flat < 0) | (flat >= self._vocab_size), tf.constant(self.unk_id, tf.int64), flat
            ),
            ids,
        )
        return tf.ragged.boolean_mask(ids, ids > self.end_id)
