import pytest
import tensorflow as tf

from kerasgen.tokenizers import Tokenizer, WordTokenizer, learn_tokenizer


def words_of(tokenizer, vocabulary_entries, texts):
    """Tokenizes `texts` and spells each id with its vocabulary entry."""
    entries = vocabulary_entries(tokenizer)
    return [[entries[i] for i in row] for row in tokenizer.tokenize(tf.constant(texts)).to_list()]


def decoded(strings):
    return [text.decode("utf-8") for text in strings.numpy()]


def test_reserved_ids_head_the_vocabulary(word_tokenizer, vocabulary_entries):
    entries = vocabulary_entries(word_tokenizer)

    assert (Tokenizer.pad_id, Tokenizer.start_id, Tokenizer.end_id, Tokenizer.unk_id) == (
        0,
        1,
        2,
        3,
    )
    assert entries[:4] == ["[PAD]", "[START]", "[END]", "[UNK]"]
    assert word_tokenizer.vocab_size == len(entries)
    assert word_tokenizer.level == "word"
    assert isinstance(word_tokenizer, WordTokenizer)


def test_words_punctuation_and_newlines_are_separate_tokens(word_tokenizer, vocabulary_entries):
    words = words_of(word_tokenizer, vocabulary_entries, ["The cat sat.\nA dog (didn't)!"])

    assert words == [
        ["The", "cat", "sat", ".", "[NEWLINE]", "A", "dog", "(", "didn", "'", "t", ")", "!"]
    ]


def test_vocabulary_is_ranked_by_frequency(word_tokenizer, vocabulary_entries):
    entries = vocabulary_entries(word_tokenizer)

    # "the" (2 per copy of the corpus) outranks "mat" (1 per copy).
    assert entries.index("the") < entries.index("mat")
    assert len(entries) == len(set(entries))


def test_round_trip_of_in_vocabulary_sentences(word_tokenizer):
    texts = [
        "The cat sat on the mat.\nThe dog sat on the log!",
        "Café au lait — très bien, n'est-ce pas?",
        "A cat (a small one) ate; the dog didn't.",
        "the dog\n\nthe cat",
        "",
    ]

    ids = word_tokenizer.tokenize(tf.constant(texts))

    assert ids.dtype == tf.int32
    assert min(ids.flat_values.numpy()) >= 4
    assert max(ids.flat_values.numpy()) < word_tokenizer.vocab_size
    # Spacing of "n'est - ce" is not restored: only the words are guaranteed, plus the
    # punctuation rules of join_words.
    assert decoded(word_tokenizer.detokenize(ids)) == [
        "The cat sat on the mat.\nThe dog sat on the log!",
        "Café au lait — très bien, n'est - ce pas?",
        "A cat (a small one) ate; the dog didn't.",
        "the dog\n\nthe cat",
        "",
    ]


def test_unknown_words_map_to_unk(word_tokenizer):
    ids = word_tokenizer.tokenize(tf.constant(["the zebra sat", "Zebra"])).to_list()

    assert ids[0][1] == Tokenizer.unk_id and ids[0][0] != Tokenizer.unk_id
    assert ids[1] == [Tokenizer.unk_id]
    assert decoded(word_tokenizer.detokenize(tf.ragged.constant(ids))) == [
        "the [UNK] sat",
        "[UNK]",
    ]


def test_detokenize_dense_ids_drops_reserved_and_renders_bad_ids_as_unk(word_tokenizer):
    cat, sat = word_tokenizer.tokenize(tf.constant(["cat sat"])).to_list()[0]
    ids = tf.constant([[1, cat, sat, 2, 0], [1, cat, 99999, -5, 0]], dtype=tf.int32)

    assert decoded(word_tokenizer.detokenize(ids)) == ["cat sat", "cat [UNK] [UNK]"]


def test_empty_batch_empty_strings_and_invalid_utf8(word_tokenizer):
    assert word_tokenizer.tokenize(tf.constant([], dtype=tf.string)).shape[0] == 0
    assert word_tokenizer.detokenize(tf.zeros([0, 3], tf.int32)).shape == [0]

    ids = word_tokenizer.tokenize(tf.constant([b"", b" \t ", b"cat\xff\xfesat"])).to_list()

    assert ids[:2] == [[], []]
    # The invalid bytes become U+FFFD, a symbol, hence a separate (unknown) token.
    assert ids[2][0] != Tokenizer.unk_id and Tokenizer.unk_id in ids[2]


def test_inside_tf_function_with_unknown_batch_size(word_tokenizer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(texts):
        return word_tokenizer.detokenize(word_tokenizer.tokenize(texts))

    assert decoded(round_trip(tf.constant(["the dog sat.", "the zebra"]))) == [
        "the dog sat.",
        "the [UNK]",
    ]
    assert round_trip(tf.constant([], dtype=tf.string)).shape == [0]


def test_max_vocab_size_keeps_the_most_frequent_words(tmp_path, vocabulary_entries):
    tokenizer = learn_tokenizer("word", ["b a a c c c"], str(tmp_path), max_vocab_size=6)

    assert tokenizer.vocab_size == 6
    assert vocabulary_entries(tokenizer)[4:] == ["c", "a"]
    assert tokenizer.tokenize(tf.constant(["a b c"])).to_list() == [[5, 3, 4]]


def test_max_vocab_size_must_leave_room_for_real_tokens(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        learn_tokenizer("word", ["a b"], str(tmp_path), max_vocab_size=4)
