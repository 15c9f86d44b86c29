"""The encoder-decoder input pipeline: sentence pairs in, padded length-bucketed batches out.

Everything from raw strings to batches runs inside tf.data:

    (source, target) pairs           [num_pairs] tf.string each
    -> tokenize in batches           [batch, (tokens)] int32, ragged
    -> source + [end]                the encoder sees where the source stops (and an empty
                                     source is still one token long)
    -> [start] + target, target + [end]    decoder inputs and labels
    -> cache -> shuffle -> bucket_by_sequence_length (padding with 0 = pad_id)
    -> optionally, pad every batch to its bucket's edge (a fixed set of shapes, for XLA)
    -> ((source [B, S], target_in [B, T]), target_out [B, T], weights [B, T])

`weights` is 1 on real target tokens and 0 on padding, so the loss and the accuracy (as
weighted metrics) ignore padding.
"""

from __future__ import annotations

import tensorflow as tf

from kerasgen.data.corpus import CorpusError
from kerasgen.data.prefetching import prefetched

_TOKENIZE_BATCH = 512
# Bucket edges in tokens (the longer of source and target): pairs of similar length share a
# batch, so little of a batch is padding.
DEFAULT_BUCKET_BOUNDARIES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
# Past the last bucket edge, batches padded to edges are padded to a multiple of this.
_LONG_PAIR_PADDING = 64


def add_source_end(token_ids, end_id):
    """Appends `end_id` to every row of a ragged `[batch, (tokens)]` int32 tensor."""
    ends = tf.fill([token_ids.nrows(), 1], tf.constant(end_id, token_ids.dtype))
    return tf.concat([token_ids, tf.RaggedTensor.from_tensor(ends)], axis=1)


def translation_dataset(
    pairs,
    source_tokenize_fn,
    target_tokenize_fn,
    *,
    batch_size,
    start_id,
    end_id,
    shuffle,
    seed=0,
    repeat=False,
    max_source_tokens=None,
    bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES,
    pad_to_bucket_edges=False,
    name="pairs",
):
    """A `tf.data.Dataset` of padded, length-bucketed training batches.

    Args:
        pairs: list of (source, target) Python strings.
        source_tokenize_fn, target_tokenize_fn: `[batch]` tf.string → int `[batch, (tokens)]`.
        batch_size: pairs per batch.
        start_id, end_id: reserved ids of the tokenizers (the same in every kerasgen tokenizer).
        shuffle: reshuffle every epoch (seeded).
        seed: the shuffle's seed.
        repeat: repeat forever (for `steps_per_epoch`).
        max_source_tokens: cut sources to this many tokens (the end token included); None keeps
            them whole.
        bucket_boundaries: ascending lengths of the bucket edges.
        pad_to_bucket_edges: pad the source and target of every batch to its bucket's longest
            length (one boundary minus 1; past the last, a multiple of 64) rather than to the
            batch's longest pair. An XLA-compiled train step compiles once per input shape:
            padded to the batch, nearly every batch is a new shape; padded to the edges, a
            corpus has a few, at the cost of the padding.
        name: names the data in errors.

    Returns:
        Batches `((source, target_in), target_out, weights)`, int32 / float32.

    Raises:
        CorpusError: no pairs.
    """
    if not pairs:
        raise CorpusError(f"{name}: no sentence pairs")
    sources = tf.constant([source for source, _ in pairs])
    targets = tf.constant([target for _, target in pairs])

    def tokenize(source, target):
        source_ids = add_source_end(tf.cast(source_tokenize_fn(source), tf.int32), end_id)
        if max_source_tokens is not None:
            source_ids = source_ids[:, :max_source_tokens]
        target_ids = tf.cast(target_tokenize_fn(target), tf.int32)
        starts = tf.fill([target_ids.nrows(), 1], start_id)
        ends = tf.fill([target_ids.nrows(), 1], end_id)
        target_in = tf.concat([tf.RaggedTensor.from_tensor(starts), target_ids], axis=1)
        target_out = tf.concat([target_ids, tf.RaggedTensor.from_tensor(ends)], axis=1)
        return source_ids, target_in, target_out

    data = (
        tf.data.Dataset.from_tensor_slices((sources, targets))
        .batch(_TOKENIZE_BATCH)
        .map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        # Unbatched ragged rows are rank-0-ragged specs; padded batching wants plain tensors.
        .map(lambda *row: tuple(tf.identity(ids) for ids in row))
        .cache()
    )
    if shuffle:
        data = data.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    boundaries = list(bucket_boundaries)
    data = data.bucket_by_sequence_length(
        element_length_func=lambda source, target_in, target_out: tf.maximum(
            tf.shape(source)[0], tf.shape(target_in)[0]
        ),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=(0, 0, 0),
    )
    if pad_to_bucket_edges:
        data = data.map(_padder_to_bucket_edges(boundaries))

    def to_keras(source, target_in, target_out):
        weights = tf.cast(target_out != 0, tf.float32)
        return (source, target_in), target_out, weights

    return prefetched(data.map(to_keras))


def _padder_to_bucket_edges(boundaries):
    """`(source, target_in, target_out) -> the same`, each `[batch, length]` padded with 0 to
    the same length: the bucket's longest (`bucket_by_sequence_length` buckets a pair by the
    longer of its source and target), or past the last edge a multiple of
    `_LONG_PAIR_PADDING` (`bucket_by_sequence_length(pad_to_bucket_boundary=True)` would
    refuse such a pair instead)."""
    edges = tf.constant(boundaries, tf.int32) - 1

    def pad(source, target_in, target_out):
        longest = tf.maximum(tf.shape(source)[1], tf.shape(target_in)[1])
        bucket = tf.searchsorted(edges, longest[tf.newaxis], side="left")[0]
        long_length = -(-longest // _LONG_PAIR_PADDING) * _LONG_PAIR_PADDING
        length = tf.where(
            bucket < len(boundaries),
            tf.gather(edges, tf.minimum(bucket, len(boundaries) - 1)),
            long_length,
        )
        return tuple(
            tf.pad(ids, [[0, 0], [0, length - tf.shape(ids)[1]]])
            for ids in (source, target_in, target_out)
        )

    return pad
