"""The language-model input pipeline: documents in, `(inputs, targets)` token windows out.

Everything from raw strings to batches runs inside tf.data, so tokenization is part of the
graph:

    documents                        [num_documents] tf.string
    -> batches of documents          [tokenize_batch] tf.string
    -> tokenize_fn                   [tokenize_batch, (tokens)] int32, ragged
    -> [start_id] + tokens + [end_id], flattened: one token stream, cut across document
       boundaries into non-overlapping windows (the tail shorter than a window is dropped)
                                     [seq_len + 1] int32
    -> cache -> shuffle -> batch     [batch_size, seq_len + 1]
    -> (window[:, :-1], window[:, 1:])   inputs and targets, each [batch_size, seq_len]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from kerasgen.data.corpus import CorpusError
from kerasgen.data.prefetching import prefetched

TokenizeFn = Callable[[tf.Tensor], tf.RaggedTensor]

# Documents per tokenize_fn call: large enough that per-call overhead vanishes, small enough
# that one call's ragged tensor stays a few megabytes for any realistic document length.
_TOKENIZE_BATCH = 256

# The shuffle buffer holds every window of a corpus up to this many, for a full shuffle of the
# small corpora kerasgen trains on; past it, windows mix only with their neighbours.
_MAX_SHUFFLE_WINDOWS = 1 << 17


def count_tokens(documents: Sequence[str], tokenize_fn: TokenizeFn) -> int:
    """The length of the token stream `language_model_dataset` cuts into windows.

    Args:
        documents: the documents, as Python strings.
        tokenize_fn: maps a `[batch]` tf.string tensor to an int `[batch, (tokens)]` ragged
            tensor; runs inside tf.data, so it must be traceable.

    Returns:
        The number of tokens of all documents plus the start and end markers around each
        (two per document).
    """
    lengths = _document_batches(documents).map(
        lambda texts: tf.size(_tokenize(tokenize_fn, texts).flat_values, out_type=tf.int64),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    total = lengths.reduce(tf.constant(0, tf.int64), lambda total, length: total + length)
    return int(total) + 2 * len(documents)


def check_enough_tokens(num_tokens: int, *, seq_len: int, batch_size: int, name: str) -> int:
    """Checks that a token stream gives at least one batch of windows.

    Args:
        num_tokens: the stream's length, from `count_tokens`.
        seq_len: tokens per input (a window is `seq_len + 1` tokens).
        batch_size: windows per batch.
        name: the corpus, for the error message (a file path, a dataset and split).

    Returns:
        The number of batches the stream gives (the remainder is dropped).

    Raises:
        CorpusError: the stream is shorter than one window, or than one batch of windows.
    """
    window = seq_len + 1
    if num_tokens < window:
        raise CorpusError(
            f"{name}: too small: {num_tokens} tokens, fewer than one training window of "
            f"seq_len + 1 = {window} tokens"
        )
    num_windows = num_tokens // window
    if num_windows < batch_size:
        raise CorpusError(
            f"{name}: too small: {num_tokens} tokens give {num_windows} windows of {window} "
            f"tokens, fewer than one batch of {batch_size} (needs {batch_size * window} "
            "tokens); lower batch_size or seq_len"
        )
    return num_windows // batch_size


def language_model_dataset(
    documents: Sequence[str],
    tokenize_fn: TokenizeFn,
    *,
    seq_len: int,
    batch_size: int,
    start_id: int,
    end_id: int,
    shuffle: bool,
    seed: int | None,
    repeat: bool = False,
    cache: bool = True,
    name: str = "corpus",
) -> tf.data.Dataset:
    """Batches of next-token prediction examples from documents.

    Each document becomes `[start_id] + tokens + [end_id]`; the documents are concatenated in
    order into one stream, which is cut into non-overlapping windows of `seq_len + 1` tokens
    (a window may span a document boundary; the tail shorter than a window is dropped). A
    window gives `inputs = window[:-1]` and `targets = window[1:]`.

    Args:
        documents: the documents, as Python strings (e.g. `Corpus.train`).
        tokenize_fn: maps a `[batch]` tf.string tensor to an int `[batch, (tokens)]` ragged
            tensor (a kerasgen tokenizer's `tokenize`); it runs inside tf.data.
        seq_len: tokens per example.
        batch_size: examples per batch; the last partial batch is dropped, so every batch
            has exactly this many.
        start_id: token id written before each document.
        end_id: token id written after each document.
        shuffle: shuffle the windows (afresh each epoch), e.g. for training but not for
            evaluation.
        seed: the shuffle seed; the same seed gives the same batches in the same order.
        repeat: repeat forever (the cardinality then becomes infinite).
        cache: keep the windows in memory after the first pass, so later epochs skip
            tokenization.
        name: names the corpus in errors.

    Returns:
        A dataset of `(inputs, targets)`, both int32 `[batch_size, seq_len]`. Unless it
        repeats, its cardinality is the number of batches, so `len(dataset)` works.

    Raises:
        CorpusError: the documents give fewer tokens than one batch of windows.
    """
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"seq_len and batch_size must be positive, got {seq_len}, {batch_size}")
    num_tokens = count_tokens(documents, tokenize_fn)
    check_enough_tokens(num_tokens, seq_len=seq_len, batch_size=batch_size, name=name)
    window = seq_len + 1

    def wrap(texts: tf.Tensor) -> tf.Tensor:
        tokens = _tokenize(tokenize_fn, texts)  # [batch, (tokens)]
        markers = tf.ones([tokens.nrows(), 1], tf.int32)
        wrapped = tf.concat([markers * start_id, tokens, markers * end_id], axis=1)
        return wrapped.flat_values  # [tokens in batch + 2 * batch]

    def cut(leftover: tf.Tensor, chunk: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # `leftover` carries the stream's tail (< window tokens) into the next chunk, so
        # windows run on across tokenizer batches just as across documents.
        stream = tf.concat([leftover, chunk], axis=0)
        num_full = tf.shape(stream)[0] // window
        windows = tf.reshape(stream[: num_full * window], [num_full, window])
        return stream[num_full * window :], windows

    windows = (
        _document_batches(documents)
        .map(wrap, num_parallel_calls=tf.data.AUTOTUNE)
        .scan(tf.zeros([0], tf.int32), cut)
        .unbatch()  # [window]
        # Known from the count above; passing it on lets `len()` and Keras progress bars
        # see the number of batches.
        .apply(tf.data.experimental.assert_cardinality(num_tokens // window))
    )
    if cache:
        windows = windows.cache()
    if shuffle:
        windows = windows.shuffle(
            min(num_tokens // window, _MAX_SHUFFLE_WINDOWS),
            seed=seed,
            reshuffle_each_iteration=True,
        )
    batches = windows.batch(batch_size, drop_remainder=True).map(
        lambda batch: (batch[:, :-1], batch[:, 1:]),  # [batch_size, seq_len] each
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if repeat:
        batches = batches.repeat()
    return prefetched(batches)


def _document_batches(documents: Sequence[str]) -> tf.data.Dataset:
    """`[<= _TOKENIZE_BATCH]` tf.string batches of the documents, in order."""
    texts = tf.constant(list(documents), dtype=tf.string, shape=[len(documents)])
    return tf.data.Dataset.from_tensor_slices(texts).batch(_TOKENIZE_BATCH)


def _tokenize(tokenize_fn: TokenizeFn, texts: tf.Tensor) -> tf.RaggedTensor:
    """`tokenize_fn(texts)` as int32 `[batch, (tokens)]`, whatever its int type and nesting."""
    tokens = tokenize_fn(texts)
    if tokens.ragged_rank > 1:  # e.g. [batch, (words), (pieces)] from a subword tokenizer
        tokens = tokens.merge_dims(1, -1)
    return tf.cast(tokens, tf.int32)
