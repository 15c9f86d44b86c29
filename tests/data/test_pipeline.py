"""The language-model pipeline, checked against a token stream built by hand."""

import random
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.data.corpus import CorpusError, load_corpus
from kerasgen.data.pipeline import check_enough_tokens, count_tokens, language_model_dataset

START, END = 1, 2


def byte_tokenize(texts):
    """A stand-in tokenizer: Unicode code points shifted past the reserved ids 0-3."""
    return tf.strings.unicode_decode(texts, "UTF-8") + 4


def reference_stream(documents):
    """The token stream the pipeline should cut, written in plain Python."""
    stream = []
    for document in documents:
        stream += [START] + [ord(char) + 4 for char in document] + [END]
    return stream


def make_dataset(documents, **overrides):
    options = dict(seq_len=8, batch_size=4, start_id=START, end_id=END, shuffle=False, seed=None)
    options.update(overrides)
    return language_model_dataset(documents, byte_tokenize, **options)


def windows_of(dataset):
    """Each example as the window it came from, in order: [num_windows, seq_len + 1]."""
    windows = [
        np.concatenate([inputs, targets[:, -1:]], axis=1)  # inputs + the last target
        for inputs, targets in dataset.as_numpy_iterator()
    ]
    return np.concatenate(windows).tolist()


# More documents than one tokenizer call takes (256), so windows run on across calls.
DOCUMENTS = [f"document {i}: " + "ab" * (i % 7) + "\nsecond line" for i in range(300)]


def test_shapes_dtypes_and_length():
    dataset = make_dataset(DOCUMENTS)
    inputs, targets = next(iter(dataset))
    assert inputs.shape == targets.shape == (4, 8)
    assert inputs.dtype == targets.dtype == tf.int32
    assert len(dataset) == len(reference_stream(DOCUMENTS)) // 9 // 4
    assert make_dataset(DOCUMENTS, repeat=True).cardinality() == tf.data.INFINITE_CARDINALITY


def test_the_training_stream_runs_without_the_autotuning_thread():
    # With it, destroying a long-lived iterator (fit does when it returns) stalled for tens of
    # seconds; see kerasgen/data/prefetching.py.
    dataset = make_dataset(DOCUMENTS, shuffle=True, seed=3, repeat=True)
    assert dataset.options().autotune.enabled is False
    assert len(list(dataset.take(3))) == 3


def test_windows_are_the_token_stream_cut_in_order():
    dataset = make_dataset(DOCUMENTS)
    stream = reference_stream(DOCUMENTS)
    num_windows = len(dataset) * 4
    expected = np.reshape(stream[: num_windows * 9], [num_windows, 9])
    for index, (inputs, targets) in enumerate(dataset.as_numpy_iterator()):
        batch = expected[index * 4 : (index + 1) * 4]
        np.testing.assert_array_equal(inputs, batch[:, :-1])
        np.testing.assert_array_equal(targets, batch[:, 1:])  # inputs shifted by one


def test_documents_are_wrapped_in_start_and_end_ids():
    documents = ["abc", "de", "fghij"]
    (window,) = windows_of(make_dataset(documents, seq_len=15, batch_size=1))
    a, d, f = ord("a") + 4, ord("d") + 4, ord("f") + 4
    assert window[:6] == [START, a, a + 1, a + 2, END, START]
    assert window[6:10] == [d, d + 1, END, START]
    assert window[10:] == [f, f + 1, f + 2, f + 3, f + 4, END]


def test_count_tokens():
    assert count_tokens(["abc", "", "é"], byte_tokenize) == 3 + 0 + 1 + 2 * 3
    assert count_tokens(DOCUMENTS, byte_tokenize) == len(reference_stream(DOCUMENTS))


def test_nested_ragged_tokens_are_flattened():
    def word_tokenize(texts):  # [batch, (words), (characters)]
        return tf.strings.unicode_decode(tf.strings.split(texts), "UTF-8") + 4

    assert count_tokens(["ab cd", "e"], word_tokenize) == 5 + 2 * 2
    dataset = language_model_dataset(
        ["ab cd", "e"],
        word_tokenize,
        seq_len=8,
        batch_size=1,
        start_id=START,
        end_id=END,
        shuffle=False,
        seed=None,
    )
    inputs, targets = next(iter(dataset))
    assert inputs.numpy().tolist() == [[START, 101, 102, 103, 104, END, START, 105]]
    assert targets.numpy().tolist() == [[101, 102, 103, 104, END, START, 105, END]]


def test_shuffle_is_deterministic_for_a_seed():
    def shuffled(seed):
        return make_dataset(DOCUMENTS, shuffle=True, seed=seed, seq_len=32, batch_size=8)

    dataset = shuffled(3)
    first, second = windows_of(dataset), windows_of(dataset)  # two epochs
    again = shuffled(3)
    assert [windows_of(again), windows_of(again)] == [first, second]
    assert windows_of(shuffled(4)) != first
    # A new order each epoch, drawn from the windows cut without shuffling (each epoch drops
    # a different remainder short of a batch).
    assert second != first
    every_window = Counter(
        map(tuple, windows_of(make_dataset(DOCUMENTS, seq_len=32, batch_size=1)))
    )
    for epoch in (first, second):
        assert not Counter(map(tuple, epoch)) - every_window


def test_repeat_continues_past_one_epoch():
    dataset = make_dataset(DOCUMENTS, repeat=True, cache=False)
    batches = list(dataset.take(2 * len(make_dataset(DOCUMENTS)) + 1).as_numpy_iterator())
    assert len(batches) == 2 * len(make_dataset(DOCUMENTS)) + 1


def test_train_and_validation_windows_do_not_overlap(tmp_path):
    rng = random.Random(0)
    paragraphs = [
        " ".join("".join(rng.choices("abcdefgh", k=5)) for _ in range(8)) for _ in range(200)
    ]
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(paragraphs), encoding="utf-8")
    corpus = load_corpus(data_path=str(path))

    train = windows_of(make_dataset(corpus.train, seq_len=16, batch_size=2))
    validation = windows_of(make_dataset(corpus.validation, seq_len=16, batch_size=2))

    assert train and validation
    assert not {tuple(w) for w in train} & {tuple(w) for w in validation}


def test_too_short_corpus_names_it_and_its_tokens():
    with pytest.raises(CorpusError) as raised:
        make_dataset(["abc"], seq_len=8, name="tiny.txt")  # 5 tokens, a window needs 9
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("tiny.txt: too small: 5 tokens") and "9 tokens" in message


def test_fewer_windows_than_a_batch_is_an_error():
    with pytest.raises(
        CorpusError, match=r"small.txt: too small: 20 tokens give 2 windows .*needs 36 tokens"
    ):
        make_dataset(["a" * 18], seq_len=8, batch_size=4, name="small.txt")
    assert check_enough_tokens(36, seq_len=8, batch_size=4, name="small.txt") == 1


def test_no_documents_is_an_error():
    with pytest.raises(CorpusError, match="0 tokens"):
        make_dataset([])
