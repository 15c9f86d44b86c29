"""The encoder-decoder input pipeline: sentence pairs in, padded length-bucketed batches out.

Everything from raw strings to batches runs inside tf.data:

    (source, target) pairs           [num_pairs] tf.string each
    -> tokenize in batches           [batch, (tokens)] int32, ragged
    -> source + [end]                the encoder sees where the source stops (and an empty
                                     source is still one token long)
    -> [start] + target, target + [end]    decoder inputs and labels
    -> cache -> shuffle -> bucket_by_sequence_length (padding with 0 = pad_id)
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

    def to_keras(source, target_in, target_out):
        weights = tf.cast(target_out != 0, tf.float32)
        return (source, target_in), target_out, weights

    return prefetched(data.map(to_keras))
