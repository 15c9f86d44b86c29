"""The kerasgen_dialogue dataset: a real build into a temporary data_dir, read back."""

import random
import re

import pytest
import tensorflow_datasets as tfds

import kerasgen_datasets  # noqa: F401  (registers kerasgen_dialogue)
from kerasgen_datasets.kerasgen_dialogue import grammar, lexicon
from kerasgen_datasets.kerasgen_dialogue.kerasgen_dialogue_dataset_builder import write_splits

SPLITS = ("train", "validation", "test")

# One line of a document: a header, a stage direction, or a speaker in capitals and a line.
LINE = re.compile(r"(SCENE|SONG): [A-Z].*\.|\[[A-Z].*\]|[A-Z]+: [A-Z].*[.,!?]")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = tfds.builder("kerasgen_dialogue", data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return data_dir


@pytest.fixture(scope="module")
def documents(data_dir):
    builder = tfds.builder("kerasgen_dialogue", data_dir=str(data_dir))
    return {
        split: [
            example["text"].decode("utf-8")
            for example in tfds.as_numpy(builder.as_dataset(split=split))
        ]
        for split in SPLITS
    }


def test_info():
    builder = tfds.builder("kerasgen_dialogue", data_dir="/nonexistent")
    assert str(builder.version) == "1.0.0"
    assert list(builder.info.features) == ["text"]
    assert isinstance(builder.info.features["text"], tfds.features.Text)


def test_build_downloads_nothing(data_dir):
    downloads = data_dir / "downloads"
    assert not [path for path in downloads.rglob("*") if path.is_file()]


def test_split_sizes(documents):
    chars = {split: sum(map(len, documents[split])) for split in SPLITS}
    assert 400_000 <= chars["train"] < 402_000
    for split in ("validation", "test"):
        assert 40_000 <= chars[split] < 42_000
        assert 40 <= len(documents[split]) <= 100


def test_no_document_repeats_within_or_across_splits(documents):
    everything = [document for split in SPLITS for document in documents[split]]
    assert len(set(everything)) == len(everything)


def test_build_matches_the_grammar_and_is_deterministic(documents):
    written = write_splits()
    assert write_splits() == written
    for split in SPLITS:
        # TFDS stores examples in an order of its own; the documents are the same.
        assert sorted(documents[split]) == sorted(written[split])


def test_seeds_write_different_documents():
    assert grammar.write_documents(7, 5_000) == grammar.write_documents(7, 5_000)
    assert grammar.write_documents(7, 5_000) != grammar.write_documents(8, 5_000)


def test_alphabet_is_modest(documents):
    alphabet = set("".join(documents["train"]))
    assert 40 <= len(alphabet) <= 70
    # The evaluation splits need no character the train split lacks.
    assert set("".join(documents["validation"] + documents["test"])) <= alphabet


def test_documents_are_scenes_and_songs(documents):
    kinds = set()
    for document in documents["train"]:
        lines = document.split("\n")
        kind = lines[0].split(":")[0]
        kinds.add(kind)
        assert kind in ("SCENE", "SONG")
        for line in lines:
            assert LINE.fullmatch(line), line
        # Every document closes on its refrain, sung by everyone; a scene's opens it too.
        assert lines[-1].startswith("ALL: ")
        if kind == "SCENE":
            assert lines[2].split(": ", 1)[1] == lines[-1].split(": ", 1)[1]
    assert kinds == {"SCENE", "SONG"}


def test_couplets_rhyme():
    rhyme_group = {
        word: index for index, group in enumerate(lexicon.RHYME_GROUPS) for word, _ in group
    }
    document = grammar.write_song(random.Random(3))
    verses = [line for line in document.split("\n")[2:] if not line.startswith("ALL:")]
    last_words = [re.findall(r"[a-z]+", line)[-1] for line in verses]
    for first, second in zip(last_words[::2], last_words[1::2], strict=True):
        assert first != second
        assert rhyme_group[first] == rhyme_group[second]
