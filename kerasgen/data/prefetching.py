"""The last stage of every kerasgen input pipeline."""

import tensorflow as tf


def prefetched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with batches prefetched in the background, and tf.data's autotuning thread off.

    Why off: in TensorFlow 2.21, destroying an iterator can wait for its autotuning thread to
    wake from `Model::OptimizeLoop`, whose sleep grows to 60 s over a long run. `fit` destroys
    its training iterator when it returns, and stalls of 10 to 40 s were seen there (a native
    stack dump showed the main thread in the iterator's destructor and that thread asleep).
    The pipelines read in-memory strings, so the defaults autotuning starts from are enough:
    `AUTOTUNE` parallel maps run as many calls as there are cores, and prefetching sizes its
    buffer by itself without the autotuning thread.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
