"""Tiny corpora and tokenizers learned from them, shared by the tokenizer tests."""

import pytest

from kerasgen.tokenizers import learn_tokenizer

# Repeated so that every word is seen more than the subword learner's MIN_PIECE_COUNT (10)
# times and becomes a piece of its own; the word tokenizer's counts then rank by frequency.
CORPUS = [
    "The cat sat on the mat.\nThe dog sat on the log!",
    "Café au lait — très bien, n'est-ce pas?",
    "A cat (a small one) ate; the dog didn't.",
] * 12


@pytest.fixture(scope="session")
def corpus():
    return list(CORPUS)


@pytest.fixture(scope="module")
def character_tokenizer(tmp_path_factory, corpus):
    return learn_tokenizer("character", corpus, str(tmp_path_factory.mktemp("character")))


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory, corpus):
    return learn_tokenizer("word", corpus, str(tmp_path_factory.mktemp("word")))


@pytest.fixture(scope="module")
def subword_tokenizer(tmp_path_factory, corpus):
    return learn_tokenizer("subword", corpus, str(tmp_path_factory.mktemp("subword")))


@pytest.fixture(scope="session")
def vocabulary_entries():
    """Returns a function giving a tokenizer's vocabulary file entries (str) in id order."""

    def read(tokenizer):
        with open(tokenizer.vocabulary_file, encoding="utf-8") as file:
            return file.read().split("\n")[:-1]

    return read
