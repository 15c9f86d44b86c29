import json
import os

import pytest
import tensorflow as tf

from kerasgen.tokenizers import SubwordTokenizer, Tokenizer, learn_tokenizer, load_tokenizer


def pieces_of(tokenizer, vocabulary_entries, text):
    """Tokenizes one text and spells each id with its vocabulary entry."""
    entries = vocabulary_entries(tokenizer)
    return [entries[i] for i in tokenizer.tokenize(tf.constant([text])).to_list()[0]]


def decoded(strings):
    return [text.decode("utf-8") for text in strings.numpy()]


def test_reserved_tokens_head_the_vocabulary(subword_tokenizer, vocabulary_entries):
    entries = vocabulary_entries(subword_tokenizer)

    # The corpus has newlines, so "[NEWLINE]" is reserved right after the four reserved ids.
    assert entries[:5] == ["[PAD]", "[START]", "[END]", "[UNK]", "[NEWLINE]"]
    assert subword_tokenizer.vocab_size == len(entries) == len(set(entries))
    assert subword_tokenizer.level == "subword"
    assert isinstance(subword_tokenizer, SubwordTokenizer)


def test_vocabulary_holds_no_suffix_form_of_punctuation(subword_tokenizer, vocabulary_entries):
    entries = vocabulary_entries(subword_tokenizer)

    # Punctuation is always a word of its own, so "##." could never be produced.
    assert "." in entries and "—" in entries
    assert "##." not in entries and "##—" not in entries
    assert "##a" in entries  # letters keep their suffix form


def test_frequent_words_are_single_pieces(subword_tokenizer, vocabulary_entries):
    pieces = pieces_of(subword_tokenizer, vocabulary_entries, "The cat sat.\nthe dog")

    assert pieces == ["The", "cat", "sat", ".", "[NEWLINE]", "the", "dog"]


def test_unseen_word_of_known_letters_splits_into_pieces(subword_tokenizer, vocabulary_entries):
    pieces = pieces_of(subword_tokenizer, vocabulary_entries, "cattle")

    assert pieces[0] == "cat" and len(pieces) > 1
    assert all(piece.startswith("##") for piece in pieces[1:])
    ids = subword_tokenizer.tokenize(tf.constant(["the cattle"]))
    assert decoded(subword_tokenizer.detokenize(ids)) == ["the cattle"]


def test_word_with_unknown_character_maps_to_one_unk(subword_tokenizer):
    ids = subword_tokenizer.tokenize(tf.constant(["the zebra sat", "Ω"])).to_list()

    assert len(ids[0]) == 3 and ids[0][1] == Tokenizer.unk_id
    assert ids[1] == [Tokenizer.unk_id]
    assert decoded(subword_tokenizer.detokenize(tf.ragged.constant(ids))) == [
        "the [UNK] sat",
        "[UNK]",
    ]


def test_round_trip_of_in_vocabulary_sentences(subword_tokenizer):
    texts = [
        "The cat sat on the mat.\nThe dog sat on the log!",
        "Café au lait — très bien, pas?",
        "A cat (a small one) ate; the dog didn't.",
        "",
    ]

    ids = subword_tokenizer.tokenize(tf.constant(texts))

    assert ids.dtype == tf.int32 and ids.ragged_rank == 1
    assert min(ids.flat_values.numpy()) >= 4
    assert max(ids.flat_values.numpy()) < subword_tokenizer.vocab_size
    assert decoded(subword_tokenizer.detokenize(ids)) == texts


def test_detokenize_repairs_dangling_suffixes_and_drops_reserved(
    subword_tokenizer, vocabulary_entries
):
    entry_id = {entry: i for i, entry in enumerate(vocabulary_entries(subword_tokenizer))}
    ids = tf.constant(
        [
            [1, entry_id["##t"], entry_id["the"], 2, 0],  # starts mid-word
            [1, entry_id["dog"], entry_id["[NEWLINE]"], entry_id["##s"], 0],
            [1, entry_id["cat"], 99999, -1, 2],
        ],
        dtype=tf.int32,
    )

    assert decoded(subword_tokenizer.detokenize(ids)) == ["t the", "dog\ns", "cat [UNK] [UNK]"]


def test_empty_batch_empty_strings_and_invalid_utf8(subword_tokenizer):
    assert subword_tokenizer.tokenize(tf.constant([], dtype=tf.string)).shape[0] == 0
    assert subword_tokenizer.detokenize(tf.zeros([0, 3], tf.int32)).shape == [0]

    ids = subword_tokenizer.tokenize(tf.constant([b"", b"cat\xffsat"])).to_list()

    assert ids[0] == []
    assert ids[1][0] != Tokenizer.unk_id and Tokenizer.unk_id in ids[1]


def test_inside_tf_function_with_unknown_batch_size(subword_tokenizer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(texts):
        return subword_tokenizer.detokenize(subword_tokenizer.tokenize(texts))

    assert decoded(round_trip(tf.constant(["the cattle sat.", "Ω"]))) == [
        "the cattle sat.",
        "[UNK]",
    ]
    assert round_trip(tf.constant([], dtype=tf.string)).shape == [0]


def test_max_vocab_size_is_respected_and_characters_are_kept(tmp_path, corpus):
    # The corpus has 33 characters, 23 of them letters with a "##" form: 61 entries with the
    # 5 reserved ones, so 65 leaves room for a few whole words.
    tokenizer = learn_tokenizer("subword", corpus, str(tmp_path), max_vocab_size=65)

    assert 61 <= tokenizer.vocab_size <= 65
    ids = tokenizer.tokenize(tf.constant(corpus[:3])).flat_values.numpy()
    assert Tokenizer.unk_id not in ids  # every character survived the cut
    assert max(ids) < tokenizer.vocab_size


def test_max_vocab_size_below_the_alphabet_cuts_characters(tmp_path, corpus):
    tokenizer = learn_tokenizer("subword", corpus, str(tmp_path), max_vocab_size=40)

    assert tokenizer.vocab_size == 40
    assert max(tokenizer.tokenize(tf.constant(corpus[:3])).flat_values.numpy()) < 40


def test_lower_case_option_is_applied_and_saved(tmp_path):
    tokenizer = learn_tokenizer("subword", ["The Cat sat"] * 12, str(tmp_path), lower_case=True)

    assert tokenizer.lower_case
    assert (
        tokenizer.tokenize(tf.constant(["THE CAT"])).to_list()
        == tokenizer.tokenize(tf.constant(["the cat"])).to_list()
    )
    with open(os.path.join(tmp_path, "tokenizer.json"), encoding="utf-8") as file:
        assert json.load(file)["lower_case"] is True
    assert load_tokenizer(str(tmp_path)).lower_case


def test_corpus_without_words_gives_reserved_only_vocabulary(tmp_path, vocabulary_entries):
    tokenizer = learn_tokenizer("subword", ["", " "], str(tmp_path))

    assert vocabulary_entries(tokenizer) == ["[PAD]", "[START]", "[END]", "[UNK]"]
    assert tokenizer.tokenize(tf.constant(["any word"])).to_list() == [[3, 3]]


@pytest.mark.parametrize("max_vocab_size", [None, 100])
def test_vocabulary_file_has_no_empty_line(tmp_path, corpus, max_vocab_size):
    tokenizer = learn_tokenizer("subword", corpus, str(tmp_path), max_vocab_size=max_vocab_size)

    with open(tokenizer.vocabulary_file, "rb") as file:
        assert b"\n\n" not in file.read()
