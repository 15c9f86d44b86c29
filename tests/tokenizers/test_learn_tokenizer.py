import json
import os
import shutil

import pytest
import tensorflow as tf

from kerasgen.tokenizers import (
    TOKENIZER_LEVELS,
    CharacterTokenizer,
    SentencePieceTokenizer,
    SubwordTokenizer,
    WordTokenizer,
    learn_tokenizer,
    load_tokenizer,
)

TEXTS = tf.constant(["The cat sat on the mat.\nThe dog", "Café — très bien", "", "the zebra Ω"])


def test_levels():
    assert TOKENIZER_LEVELS == ("character", "word", "subword", "sentencepiece")


def test_unknown_level_raises_value_error_naming_the_valid_levels(tmp_path, corpus):
    with pytest.raises(ValueError, match="character, word, subword, sentencepiece") as error:
        learn_tokenizer("byte", corpus, str(tmp_path / "byte"))

    assert "'byte'" in str(error.value)
    assert not os.path.exists(tmp_path / "byte")


@pytest.mark.parametrize(
    ("level", "tokenizer_class", "vocabulary_file"),
    [
        ("character", CharacterTokenizer, "vocabulary.txt"),
        ("word", WordTokenizer, "vocabulary.txt"),
        ("subword", SubwordTokenizer, "vocabulary.txt"),
        ("sentencepiece", SentencePieceTokenizer, "sentencepiece.model"),
    ],
)
def test_learn_writes_files_that_load_tokenizer_rebuilds(
    tmp_path, corpus, level, tokenizer_class, vocabulary_file
):
    directory = tmp_path / "nested" / level  # created by learn_tokenizer
    learned = learn_tokenizer(level, corpus, str(directory))

    assert sorted(os.listdir(directory)) == sorted(["tokenizer.json", vocabulary_file])
    with open(directory / "tokenizer.json", encoding="utf-8") as file:
        config = json.load(file)
    assert config == learned.get_config()
    assert config["level"] == level
    assert config["vocabulary_file"] == vocabulary_file  # relative, so the folder can move

    moved = tmp_path / "moved"
    shutil.move(str(directory), str(moved))
    loaded = load_tokenizer(str(moved))

    assert type(loaded) is tokenizer_class
    assert loaded.level == level
    assert loaded.vocab_size == learned.vocab_size
    assert loaded.vocabulary_file == os.path.join(str(moved), vocabulary_file)
    assert loaded.get_config() == config
    assert loaded.tokenize(TEXTS).to_list() == learned.tokenize(TEXTS).to_list()
    ids = learned.tokenize(TEXTS)
    assert loaded.detokenize(ids).numpy().tolist() == learned.detokenize(ids).numpy().tolist()


def test_load_tokenizer_rejects_an_unknown_level(tmp_path):
    with open(tmp_path / "tokenizer.json", "w", encoding="utf-8") as file:
        json.dump({"level": "bytes", "vocabulary_file": "vocabulary.txt"}, file)

    with pytest.raises(ValueError, match="valid levels"):
        load_tokenizer(str(tmp_path))


def test_learning_is_deterministic_whatever_the_document_order(tmp_path, corpus):
    for level in TOKENIZER_LEVELS:
        forward = learn_tokenizer(level, corpus, str(tmp_path / f"{level}_forward"))
        backward = learn_tokenizer(level, corpus[::-1], str(tmp_path / f"{level}_backward"))

        with open(forward.vocabulary_file, "rb") as first:
            with open(backward.vocabulary_file, "rb") as second:
                assert first.read() == second.read(), level
