"""A tokenizer whose tokens are SentencePiece pieces, learned from the raw text itself."""

import hashlib
import io
import os
import re

import sentencepiece
import tensorflow as tf
from tensorflow.python.trackable import resource

# tensorflow-text's SentencePiece ops. Its `SentencepieceTokenizer` class is not used: the
# resource it creates dies with TensorFlow's kernel cache (see `_SentencePieceModel`) and it
# cannot track the model file.
from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer

from kerasgen.errors import UserInputError
from kerasgen.tokenizers.tokenizer import Tokenizer
from kerasgen.tokenizers.vocabulary import RESERVED_TOKENS, check_max_vocab_size

# The name of the model file inside a tokenizer's directory (and inside a SavedModel's assets/).
MODEL_FILE_NAME = "sentencepiece.model"

# Lines longer than this many bytes are skipped by the trainer unless the limit is raised; the
# limit is raised to the longest line of the corpus (this is sentencepiece's default).
_DEFAULT_MAX_SENTENCE_LENGTH = 4192

# The messages of sentencepiece's trainer for a vocabulary size the text cannot support.
_TOO_LARGE = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


class _SentencePieceModel(resource.TrackableResource):
    """The resource of the SentencePiece ops: a loaded model, with its file tracked as an asset.

    The op takes the serialized model as an attribute, not an input, so the graph holds its own
    copy and a SavedModel runs without the file, wherever it is moved. The file is tracked all
    the same, as a child of this resource, so that a SavedModel's `assets/` holds it as it holds
    the other levels' vocabularies (what `init_from` and people read): a Keras `ExportArchive`
    keeps the resources it finds under a tracked object, with their children, and nothing else.

    The resource is named after the model's digest. Unnamed, it would belong to the op's kernel
    and be deleted with TensorFlow's kernel cache, which `tf.random.set_seed` (and so
    `keras.utils.set_random_seed`) clears: every later use, in a `tf.data` pipeline or a
    `tf.function`, would fail with "Resource ... SentencepieceOp ... does not exist". Named, it
    outlives the kernel, and equal models share one immutable resource.
    """

    def __init__(self, model_file: str):
        super().__init__()
        self.model = _read_model(model_file)
        self._track_trackable(tf.saved_model.Asset(model_file), name="model_file")
        _ = self.resource_handle  # created now, in eager mode

    def _create_resource(self):
        digest = hashlib.sha256(self.model).hexdigest()[:32]
        return gen_sentencepiece_tokenizer.sentencepiece_op(
            model=self.model, shared_name=f"kerasgen_sentencepiece_{digest}"
        )


class SentencePieceTokenizer(Tokenizer):
    """Tokenizes text with a SentencePiece unigram model, in the graph (tensorflow-text's op).

    Pieces are learned from the raw text, spaces included (a space is the piece prefix `▁`), so
    no word splitting is needed and `detokenize(tokenize(text)) == text` for every text made of
    characters seen in training: spacing, newlines, hyphens, apostrophes, numbers and accented
    letters come back exactly. The model is trained so that nothing is rewritten on the way in:
    no Unicode normalization (`identity`), no collapsing of spaces, and no space added before
    the text, which also makes detokenization concatenate (`detokenize(a + b)` equals
    `detokenize(a) + detokenize(b)`), as a prompt and its generated continuation need.

    Every character of the training text gets a piece (`character_coverage=1.0`), as in the
    character level; a character never seen becomes `unk_id`, rendered `[UNK]`. Byte fallback
    (unknown characters as UTF-8 byte pieces) is off: its 256 byte ids would not fit the small
    vocabularies the models here train with, and a generator could emit byte pieces that do not
    form valid UTF-8.

    The model file holds `[PAD]`, `[START]`, `[END]`, `[UNK]` as pieces 0-3 (ids 0-3, as in
    every tokenizer); pieces follow from id 4.

    Example:

    >>> tokenizer = SentencePieceTokenizer.learn(["it's 3.5 m", "Muž v klobouku"] * 4, "/tmp/sp")
    >>> tokenizer.detokenize(tokenizer.tokenize(tf.constant(["it's 3.5 m"])))
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b"it's 3.5 m"], dtype=object)>

    Args:
        vocabulary_file: path of the SentencePiece model file (a serialized `ModelProto`).
        name: name of the module.
    """

    DEFAULT_MAX_VOCAB_SIZE = 8000  # as the subword level; a cap when left to the default

    def __init__(self, vocabulary_file: str, name: str | None = None):
        super().__init__(vocabulary_file, name=name)
        self._model = _SentencePieceModel(self.vocabulary_file)

    @property
    def level(self) -> str:
        return "sentencepiece"

    def _count_ids(self) -> int:
        model = _read_model(self._vocabulary_file)
        return sentencepiece.SentencePieceProcessor(model_proto=model).get_piece_size()

    def _tokenize_valid_texts(self, texts):
        """Maps texts to the ids of their most likely segmentation into pieces."""
        ids, row_splits = gen_sentencepiece_tokenizer.sentencepiece_tokenize_op(
            self._model.resource_handle,
            texts,
            nbest_size=0,  # the best segmentation, no sampling
            alpha=1.0,
            add_bos=False,  # callers add start and end ids
            add_eos=False,
            reverse=False,
            out_type=tf.int32,
        )
        return tf.RaggedTensor.from_row_splits(ids, row_splits, validate=False)

    def _detokenize_valid_ids(self, ids):
        """Concatenates the pieces of `ids`, `▁` read as a space; unknown ids render as `[UNK]`."""
        ids = tf.cast(ids, tf.int32)  # [batch, (length)], the op's id type
        return gen_sentencepiece_tokenizer.sentencepiece_detokenize_op(
            self._model.resource_handle,
            ids.flat_values,
            ids.row_splits,
            add_bos=False,
            add_eos=False,
            reverse=False,
        )

    @classmethod
    def learn(
        cls, texts: list[str], directory: str, max_vocab_size: int | None = None, seed: int = 0
    ) -> "SentencePieceTokenizer":
        """Trains a unigram SentencePiece model on `texts`, writes it into `directory`.

        Training runs in memory on the lines of the documents (`_training_lines`: newlines
        kept, so they get pieces too); the lines are sorted first and the trainer runs on one
        thread with a fixed seed, so the same corpus gives the same model, byte for byte,
        whatever the order of its documents.

        Args:
            texts: the corpus, a list of documents.
            directory: where to write `sentencepiece.model`; created if missing.
            max_vocab_size: the number of ids (the 4 reserved ones included). Given, the model
                has exactly that many, or `UserInputError` says the largest (or smallest) the
                text supports. None means at most `DEFAULT_MAX_VOCAB_SIZE`, fewer for a corpus
                too small to fill them.
            seed: seed of sentencepiece's random generator.

        Returns:
            the tokenizer of the written model.

        Raises:
            UserInputError: for a corpus without text, or a `max_vocab_size` it cannot support.
        """
        check_max_vocab_size(max_vocab_size)
        lines = sorted(line for text in texts for line in _training_lines(text))
        if not lines:
            raise UserInputError("the text to learn a SentencePiece model from is empty")
        longest = max(len(line.encode("utf-8", errors="replace")) for line in lines)
        model = io.BytesIO()
        sentencepiece.set_random_generator_seed(seed)
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(lines),
                model_writer=model,
                model_type="unigram",
                vocab_size=max_vocab_size or cls.DEFAULT_MAX_VOCAB_SIZE,
                # Only an explicit size must be met exactly; the default is a cap.
                hard_vocab_limit=max_vocab_size is not None,
                pad_id=0,
                bos_id=1,
                eos_id=2,
                unk_id=3,
                pad_piece=RESERVED_TOKENS[0],
                bos_piece=RESERVED_TOKENS[1],
                eos_piece=RESERVED_TOKENS[2],
                unk_piece=RESERVED_TOKENS[3],
                unk_surface=RESERVED_TOKENS[3],
                character_coverage=1.0,
                byte_fallback=False,
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                max_sentence_length=max(longest, _DEFAULT_MAX_SENTENCE_LENGTH),
                num_threads=1,
                minloglevel=2,
            )
        except RuntimeError as error:
            raise _vocab_size_error(error) from None
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, MODEL_FILE_NAME)
        with open(path, "wb") as file:
            file.write(model.getvalue())
        return cls(path)


def _training_lines(text: str) -> list[str]:
    """Splits a document into the sentences the trainer learns from, keeping every character.

    The trainer strips line breaks ("\r", "\n") at the end of a sentence, as if it had read
    lines from a file, so each sentence starts with the line breaks before it instead, and the
    document's final line breaks move to its start: "a\r\nb\n" -> ["\na", "\r\nb"]. Short
    sentences keep the trainer's work per sentence small.
    """
    body = text.rstrip("\r\n")
    text = text[len(body) :] + body
    # A sentence of line breaks alone would be stripped to nothing (only a document of line
    # breaks alone gives one).
    return [line for line in re.findall(r"[\r\n]*[^\r\n]*", text) if line.strip("\r\n")]


def _read_model(path: str) -> bytes:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SentencePiece model file not found: {path}")
    with open(path, "rb") as file:
        return file.read()


def _vocab_size_error(error: RuntimeError) -> Exception:
    """A one-line `UserInputError` for a vocabulary size the text cannot support, else `error`."""
    message = str(error)
    if found := _TOO_LARGE.search(message):
        return UserInputError(
            f"max_vocab_size={found.group(1)} is more ids than SentencePiece can learn from this "
            f"text; the largest that works is {found.group(2)}"
        )
    if found := _TOO_SMALL.search(message):
        return UserInputError(
            f"max_vocab_size={found.group(1)} leaves no id for some characters of this text; "
            f"the smallest that works is {found.group(2)} (the {len(RESERVED_TOKENS)} reserved "
            "ids and one per distinct character)"
        )
    return error
