"""Corpus loading from text files, kerasgen's default dataset, and TFDS by name."""

import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kerasgen.data.corpus import CorpusError, load_corpus, split_paragraphs


class KerasgenTestTrainOnly(tfds.core.GeneratorBasedBuilder):
    """A local dataset with only a train split and a text feature not called "text"."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {"content": tfds.features.Text(), "number": tfds.features.Scalar(np.int32)}
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for number in range(20):
            yield number, {"content": f"document {number}", "number": number}


def write_bytes(tmp_path, data: bytes) -> str:
    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("make_path", "problem"),
    [
        (lambda tmp: str(tmp / "missing.txt"), "no such file"),
        (lambda tmp: str(tmp), "directory"),
        (lambda tmp: write_bytes(tmp, b""), "empty"),
        (lambda tmp: write_bytes(tmp, b" \n\t\n  "), "whitespace"),
        (lambda tmp: write_bytes(tmp, b"text\x00more text"), "NUL"),
        (lambda tmp: write_bytes(tmp, "caf\u00e9".encode("latin-1")), "not valid UTF-8"),
        (lambda tmp: write_bytes(tmp, b"x"), "too small"),
        # The last tenth of this file is whitespace, so validation would be empty.
        (lambda tmp: write_bytes(tmp, b"x" * 90 + b"\n" + b" " * 10), "too small"),
    ],
    ids=["missing", "directory", "empty", "whitespace", "nul", "latin1", "tiny", "no-val"],
)
def test_bad_files_raise_one_line_errors_naming_the_path(tmp_path, make_path, problem):
    path = make_path(tmp_path)
    with pytest.raises(CorpusError) as raised:
        load_corpus(data_path=path)
    message = str(raised.value)
    assert "\n" not in message
    assert path in message
    assert problem in message


def test_text_file_splits_by_characters_then_paragraphs(tmp_path):
    paragraphs = [f"paragraph {i} line one\nparagraph {i} line two" for i in range(20)]
    text = "\n\n".join(paragraphs) + "\n"
    path = write_bytes(tmp_path, text.encode("utf-8"))

    corpus = load_corpus(data_path=path, validation_fraction=0.2)

    assert corpus.name == path
    # Single newlines stay inside a paragraph; the cut lands in paragraph 16 of 20.
    assert corpus.train[0] == paragraphs[0]
    assert corpus.train[:16] == paragraphs[:16]
    assert corpus.validation[1:] == paragraphs[17:]
    # Nothing is lost or repeated: train then validation is the text, less the blank lines.
    squeeze = lambda s: "".join(s.split())  # noqa: E731
    assert squeeze("".join(corpus.train + corpus.validation)) == squeeze(text)
    validation_chars = len("".join(corpus.validation))
    assert 0.15 < validation_chars / len(text) < 0.25


def test_text_file_with_crlf_and_unicode(tmp_path):
    text = "Première ligne\r\nsuite\r\n\r\n  \r\nÜberall: ça marche.\r\n\r\nfin\r\n"
    corpus = load_corpus(data_path=write_bytes(tmp_path, text.encode("utf-8")))
    assert corpus.train[0] == "Première ligne\nsuite"
    assert "".join(corpus.train + corpus.validation).replace("\n", "") == (
        "Première lignesuiteÜberall: ça marche.fin"
    )


def test_split_paragraphs():
    text = "\n\na\nb\n\n\n  \t\nc  \n \nd\n"
    assert split_paragraphs(text) == ["a\nb", "c  ", "d"]
    assert split_paragraphs(" \n\n ") == []


def test_file_and_dataset_together_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="not both"):
        load_corpus(data_path=str(tmp_path / "a.txt"), dataset="kerasgen_dialogue")


def test_validation_fraction_must_be_a_fraction(tmp_path):
    with pytest.raises(ValueError, match="validation_fraction"):
        load_corpus(data_path=str(tmp_path / "a.txt"), validation_fraction=1.0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def test_default_corpus_is_kerasgen_dialogue(data_dir):
    corpus = load_corpus(data_dir=data_dir)
    assert corpus.name == "kerasgen_dialogue"
    assert 500 < len(corpus.train) < 700
    assert 40 < len(corpus.validation) < 100
    assert corpus.train[0].startswith(("SCENE: ", "SONG: "))
    assert not set(corpus.train) & set(corpus.validation)
    # Loading by name reads the same prepared dataset.
    assert load_corpus(dataset="kerasgen_dialogue", data_dir=data_dir) == corpus


def test_dataset_without_validation_split_holds_out_train(tmp_path):
    corpus = load_corpus(dataset="kerasgen_test_train_only", data_dir=str(tmp_path))
    assert len(corpus.train) == 18 and len(corpus.validation) == 2
    all_documents = {f"document {number}" for number in range(20)}
    assert set(corpus.train) | set(corpus.validation) == all_documents
    assert not set(corpus.train) & set(corpus.validation)


@pytest.mark.parametrize("name", ["no_such_dataset_anywhere", "kerasgen_dialog"])
def test_unknown_dataset_names_some_valid_ones(tmp_path, name):
    with pytest.raises(CorpusError) as raised:
        load_corpus(dataset=name, data_dir=str(tmp_path))
    message = str(raised.value)
    assert "\n" not in message
    assert name in message
    assert "tfds.list_builders()" in message
    if name == "kerasgen_dialog":
        assert "did you mean kerasgen_dialogue" in message


class KerasgenTestUnreachable(tfds.core.GeneratorBasedBuilder):
    """A dataset whose source is a closed port on this machine: a download that cannot
    connect, with or without a network."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()})
        )

    def _split_generators(self, dl_manager):
        path = dl_manager.download("http://127.0.0.1:9/corpus.txt")  # port 9: discard, closed
        return {"train": self._generate_examples(path)}

    def _generate_examples(self, path):
        yield 0, {"text": path.read_text()}


def test_a_dataset_that_cannot_be_downloaded_fails_fast_saying_to_prepare_it_online(tmp_path):
    started = time.monotonic()
    with pytest.raises(CorpusError) as raised:
        load_corpus(dataset="kerasgen_test_unreachable", data_dir=str(tmp_path))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("kerasgen_test_unreachable: could not download it")
    assert "prepare it once on a machine that is online" in message
    # TFDS alone retries 10 times with backoff (minutes); two retries take about a second.
    assert time.monotonic() - started < 60
