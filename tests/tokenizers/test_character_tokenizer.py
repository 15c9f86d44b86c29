import pytest
import tensorflow as tf

from kerasgen.tokenizers import CharacterTokenizer, learn_tokenizer


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    """Vocabulary "\\n" -> 4, "a" -> 5, "b" -> 6 (sorted by code point), so ids are known."""
    return learn_tokenizer("character", ["ab\n", "ba"], str(tmp_path_factory.mktemp("tiny")))


def test_tokenize_gives_exact_ids_for_batches_of_different_lengths(tiny_tokenizer):
    ids = tiny_tokenizer.tokenize(tf.constant(["ab", "b\na", "", "aab\n\n"]))

    assert isinstance(ids, tf.RaggedTensor)
    assert ids.dtype == tf.int32
    assert ids.to_list() == [[5, 6], [6, 4, 5], [], [5, 5, 6, 4, 4]]


def test_vocabulary_file_stores_code_points_after_negative_reserved_ids(
    tiny_tokenizer, vocabulary_entries
):
    assert vocabulary_entries(tiny_tokenizer) == ["-1", "-2", "-3", "-4", "10", "97", "98"]
    assert tiny_tokenizer.vocab_size == 7
    assert tiny_tokenizer.level == "character"
    assert isinstance(tiny_tokenizer, CharacterTokenizer)


def test_round_trip_of_in_vocabulary_text(character_tokenizer):
    texts = [
        "The cat sat on the mat.\nThe dog sat on the log!",
        "Café au lait — très bien",
        " \n\n ",
        "",
    ]

    ids = character_tokenizer.tokenize(tf.constant(texts))
    restored = character_tokenizer.detokenize(ids)

    assert [text.decode("utf-8") for text in restored.numpy()] == texts
    # One id per code point, not per byte: "é" and "—" are one character each.
    assert ids.row_lengths().numpy().tolist() == [len(text) for text in texts]
    assert min(ids.flat_values.numpy()) >= 4
    assert max(ids.flat_values.numpy()) < character_tokenizer.vocab_size


def test_unknown_characters_map_to_unk_and_render_as_replacement_character(tiny_tokenizer):
    ids = tiny_tokenizer.tokenize(tf.constant(["aXb", "€"]))

    assert ids.to_list() == [[5, CharacterTokenizer.unk_id, 6], [CharacterTokenizer.unk_id]]
    assert tiny_tokenizer.detokenize(ids).numpy().tolist() == [
        "a\ufffdb".encode(),
        "\ufffd".encode(),
    ]


def test_invalid_utf8_bytes_do_not_crash(tiny_tokenizer):
    ids = tiny_tokenizer.tokenize(tf.constant([b"a\xffb", b"\xc3", b"\xe2\x80"]))

    assert ids.to_list()[0] == [5, 3, 6]
    assert all(token == 3 for row in ids.to_list()[1:] for token in row)


def test_empty_batch(tiny_tokenizer):
    ids = tiny_tokenizer.tokenize(tf.constant([], dtype=tf.string))

    assert ids.shape[0] == 0
    assert tiny_tokenizer.detokenize(ids).shape == [0]
    assert tiny_tokenizer.detokenize(tf.zeros([0, 0], tf.int32)).shape == [0]


def test_detokenize_dense_ids_drops_pad_start_and_end(tiny_tokenizer):
    ids = tf.constant([[1, 5, 6, 2, 0, 0], [1, 4, 2, 0, 0, 0]], dtype=tf.int32)

    assert tiny_tokenizer.detokenize(ids).numpy().tolist() == [b"ab", b"\n"]


def test_detokenize_out_of_range_ids_as_replacement_character(tiny_tokenizer):
    ids = tf.ragged.constant([[5, 7, -1, 1000, 6]], dtype=tf.int64)

    assert tiny_tokenizer.detokenize(ids).numpy().tolist() == ["a\ufffd\ufffd\ufffdb".encode()]


def test_inside_tf_function_with_unknown_batch_size(character_tokenizer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(texts):
        return character_tokenizer.detokenize(character_tokenizer.tokenize(texts))

    texts = ["Café — the cat\nsat.", ""]
    assert [text.decode() for text in round_trip(tf.constant(texts)).numpy()] == texts
    assert round_trip(tf.constant([], dtype=tf.string)).shape == [0]


def test_max_vocab_size_keeps_the_most_frequent_characters(tmp_path):
    tokenizer = learn_tokenizer("character", ["aaaccb"], str(tmp_path), max_vocab_size=6)

    assert tokenizer.vocab_size == 6
    # "a" and "c" kept, sorted by code point; "b" (least frequent) is unknown.
    assert tokenizer.tokenize(tf.constant(["abc"])).to_list() == [[4, 3, 5]]
