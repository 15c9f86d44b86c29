"""SentencePieceTokenizer: exact round trips, reserved ids, sizes, determinism, exports."""

import json
import os
import shutil
import subprocess
import sys

import keras
import pytest
import sentencepiece
import tensorflow as tf

from kerasgen.errors import UserInputError
from kerasgen.serving import check_serving_ops
from kerasgen.tokenizers import SentencePieceTokenizer, learn_tokenizer, load_tokenizer

# Spacing a word tokenizer cannot restore: hyphens between spaces, apostrophes, a decimal
# number, accented letters, doubled and trailing spaces, newlines (one a document's last
# character), tabs.
TEXTS = [
    "Muž v oranžovém klobouku - it's 3.5 m",
    "Die Straße ist naß, oder?  Grüß Gott!\n",
    "  two spaces before,\tthen a tab\nand a new line ",
    "l'été \u2014 «déjà-vu» 42",
]
CORPUS = TEXTS * 8


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return learn_tokenizer("sentencepiece", CORPUS, str(tmp_path_factory.mktemp("sp")))


def _round_trip(tokenizer, texts):
    ids = tokenizer.tokenize(tf.constant(texts))
    return [text.decode("utf-8") for text in tokenizer.detokenize(ids).numpy()]


def test_detokenize_restores_the_original_spacing_exactly(tokenizer):
    assert _round_trip(tokenizer, TEXTS) == TEXTS
    recombined = ["it's 3.5 m - Muž", "Straße\n\n  oder", ""]  # new texts of seen characters
    assert _round_trip(tokenizer, recombined) == recombined


def test_pieces_of_two_parts_detokenize_to_the_two_texts_joined(tokenizer):
    """A prompt and its continuation are detokenized apart: no space may appear or vanish."""
    prompt, continuation = tokenizer.tokenize(tf.constant(["Muž v", " oranžovém klobouku"]))
    joined = tf.ragged.stack([tf.concat([prompt, continuation], axis=0)])
    assert tokenizer.detokenize(joined).numpy().tolist() == ["Muž v oranžovém klobouku".encode()]


def test_reserved_ids_are_pad_start_end_unknown(tokenizer):
    processor = sentencepiece.SentencePieceProcessor(model_file=tokenizer.vocabulary_file)
    assert [processor.id_to_piece(i) for i in range(4)] == ["[PAD]", "[START]", "[END]", "[UNK]"]
    assert (processor.pad_id(), processor.bos_id(), processor.eos_id(), processor.unk_id()) == (
        tokenizer.pad_id,
        tokenizer.start_id,
        tokenizer.end_id,
        tokenizer.unk_id,
    )
    assert tokenizer.vocab_size == processor.get_piece_size()

    ids = tokenizer.tokenize(tf.constant(["Muž Ω"])).to_list()[0]
    assert min(ids[:-1]) >= 4 and ids[-1] == tokenizer.unk_id  # Ω was never seen
    muz = tokenizer.tokenize(tf.constant(["Muž"])).to_list()[0]
    # Pad, start and end ids are dropped; the unknown id and out-of-range ids render as [UNK].
    ids = tf.ragged.constant([[1, *muz, 3, 2, 0, 0], [tokenizer.vocab_size, -5]])
    assert tokenizer.detokenize(ids).numpy().tolist() == ["Muž[UNK]".encode(), b"[UNK][UNK]"]


def test_invalid_utf8_and_empty_batches(tokenizer):
    ids = tokenizer.tokenize(tf.constant([b"Mu\xff"]))
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"Mu[UNK]"]  # U+FFFD is unknown
    empty = tokenizer.tokenize(tf.constant([], tf.string))
    assert empty.shape[0] == 0 and tokenizer.detokenize(empty).shape == [0]


def test_an_explicit_size_is_met_exactly_and_the_default_is_a_cap(tmp_path, tokenizer):
    exact = learn_tokenizer("sentencepiece", CORPUS, str(tmp_path / "a"), max_vocab_size=60)
    assert exact.vocab_size == 60
    assert _round_trip(exact, TEXTS) == TEXTS
    # This small corpus has fewer pieces than DEFAULT_MAX_VOCAB_SIZE: the default gives them all.
    assert tokenizer.vocab_size < SentencePieceTokenizer.DEFAULT_MAX_VOCAB_SIZE


def test_a_size_too_large_for_the_text_is_one_line_naming_the_largest_that_works(tmp_path):
    with pytest.raises(UserInputError) as error:
        learn_tokenizer("sentencepiece", CORPUS, str(tmp_path / "big"), max_vocab_size=5000)
    message = str(error.value)
    assert "\n" not in message and message.startswith("max_vocab_size=5000 ")
    largest = int(message.rsplit(" ", 1)[-1])
    assert (
        learn_tokenizer(
            "sentencepiece", CORPUS, str(tmp_path / "largest"), max_vocab_size=largest
        ).vocab_size
        == largest
    )
    assert not os.path.exists(tmp_path / "big" / "sentencepiece.model")


def test_a_size_too_small_for_the_characters_names_the_smallest_that_works(tmp_path):
    characters = set("".join(CORPUS))
    with pytest.raises(UserInputError) as error:
        learn_tokenizer("sentencepiece", CORPUS, str(tmp_path / "small"), max_vocab_size=10)
    message = str(error.value)
    assert "\n" not in message
    # The 4 reserved ids, one per character, a space being the piece "▁".
    smallest = 4 + len(characters)
    assert f"the smallest that works is {smallest} " in message
    tokenizer = learn_tokenizer(
        "sentencepiece", CORPUS, str(tmp_path / "smallest"), max_vocab_size=smallest
    )
    assert _round_trip(tokenizer, TEXTS) == TEXTS


def test_a_corpus_without_text_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="empty"):
        learn_tokenizer("sentencepiece", ["", "\n"], str(tmp_path / "empty"))


def test_learning_is_deterministic_given_the_seed(tmp_path):
    def model_bytes(name, texts, seed=0):
        directory = str(tmp_path / name)
        SentencePieceTokenizer.learn(texts, directory, max_vocab_size=60, seed=seed)
        with open(os.path.join(directory, "sentencepiece.model"), "rb") as file:
            return file.read()

    first = model_bytes("first", CORPUS)
    assert model_bytes("again", CORPUS) == first
    assert model_bytes("reversed", CORPUS[::-1]) == first
    assert model_bytes("seeded", CORPUS, seed=7) == model_bytes("seeded_again", CORPUS, seed=7)


# Runs in a fresh interpreter importing only TensorFlow and tensorflow-text.
LOAD_AND_RUN = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401, registers the SentencePiece ops

loaded = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.loads(sys.argv[2]))
ids = loaded.token_ids(texts)
print(json.dumps({
    "ids": ids.numpy().tolist(),
    "texts": [text.decode("utf-8") for text in loaded.round_trip(texts).numpy()],
    "kerasgen_imported": any(module.startswith("kerasgen") for module in sys.modules),
}))
"""


class TokenizerModule(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(self, texts):
        return self.tokenizer.detokenize(self.tokenizer.tokenize(texts))  # [batch]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def token_ids(self, texts):
        return self.tokenizer.tokenize(texts).to_tensor(self.tokenizer.pad_id)  # [batch, len]


def test_an_export_archive_moved_and_reloaded_without_kerasgen_gives_the_same_ids(tmp_path):
    directory = tmp_path / "tokenizer"
    learn_tokenizer("sentencepiece", CORPUS, str(directory), max_vocab_size=56)
    tokenizer = load_tokenizer(str(directory))  # the saved files, reloaded
    module = TokenizerModule(tokenizer)
    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    archive.add_endpoint("round_trip", module.round_trip)
    archive.add_endpoint("token_ids", module.token_ids)
    archive.write_out(str(tmp_path / "written"), verbose=False)
    expected_ids = module.token_ids(tf.constant(TEXTS)).numpy().tolist()

    shutil.rmtree(directory)
    moved = shutil.move(str(tmp_path / "written"), str(tmp_path / "elsewhere" / "export"))
    assert os.listdir(os.path.join(moved, "assets")) == ["sentencepiece.model"]
    check_serving_ops(moved)  # SentencePiece ops are tensorflow-text's, which Serving links

    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_RUN, moved, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),  # not the repository, so kerasgen is not importable
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert reloaded == {"ids": expected_ids, "texts": TEXTS, "kerasgen_imported": False}


def test_the_model_outlives_tensorflows_kernel_cache(tmp_path):
    """`keras.utils.set_random_seed` clears the kernel cache, which deletes kernel-owned
    resources: a trainer seeds after learning its tokenizer, then maps it over a tf.data
    pipeline."""
    tokenizer = learn_tokenizer("sentencepiece", CORPUS, str(tmp_path / "sp"))
    expected = tokenizer.tokenize(tf.constant(TEXTS[:2])).to_list()
    keras.utils.set_random_seed(0)

    data = tf.data.Dataset.from_tensor_slices(TEXTS[:2]).batch(2).map(tokenizer.tokenize)
    assert [batch.to_list() for batch in data] == [expected]
    round_trip = tf.function(lambda texts: tokenizer.detokenize(tokenizer.tokenize(texts)))
    assert round_trip(tf.constant(TEXTS[:2])).numpy().tolist() == [t.encode() for t in TEXTS[:2]]
