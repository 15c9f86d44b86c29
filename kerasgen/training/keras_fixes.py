"""Workarounds of Keras bugs, in one place, installed explicitly by the training run.

`install()` applies them all (idempotent); `kerasgen.training.run.train_and_evaluate` calls it
before it makes a strategy. Each records the Keras version it was checked against
(`CHECKED_WITH`), and `tests/training/test_keras_fixes.py` holds, for each, a test that shows
the bug on Keras's own code: when that test fails, Keras has fixed the bug and the workaround
can go.

- `install_trainer_fixes`: under a `tf.distribute` strategy, `fit` peeks at one batch before
  the first step (so a reshuffling dataset trains on its second order), and under
  `MultiWorkerMirroredStrategy` it cannot reduce scalar logs (keras-team/keras#20585,
  tensorflow/tensorflow#72388).
- `install_clipping_fix`: `clipnorm` clips each replica's share of the gradient, not the
  global batch's.
"""

import tensorflow as tf

# The Keras release each workaround was last checked against.
CHECKED_WITH = {"install_trainer_fixes": "3.15.1", "install_clipping_fix": "3.15.1"}


def install():
    """Installs every workaround below (idempotent)."""
    install_trainer_fixes()
    install_clipping_fix()


def install_trainer_fixes():
    """Works around two Keras 3 (3.15) problems of `fit` and `evaluate` under a strategy.

    (1) Before the first step, Keras's TensorFlow trainer takes one batch from the
    distributed dataset only to learn its shapes (`_maybe_symbolic_build`), then starts the
    epoch on a new iterator. A dataset that reshuffles each iteration (the training data)
    therefore trains on its second shuffle order, not the order one device sees. Under
    MultiWorkerMirroredStrategy that peek fails outright: Keras reduces the batch with
    `strategy.reduce`, which the multi-worker strategy cannot do for it ("Attempt to convert a
    value (PerReplica ...)", keras-team/keras#20585, tensorflow/tensorflow#72388). The fix
    builds from the dataset's `element_spec`, which holds the shapes without reading data.
    (2) Multi-worker only: each step's scalar logs are reduced with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars ("Invalid reduction dimension
    0 for input with 0 dimensions"); the fix takes the mean across replicas with `axis=None`.
    Without a strategy, Keras's own code runs. Idempotent.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    if getattr(tensorflow_trainer, "_kerasgen_trainer_fixes", False):
        return
    original_reduce = tensorflow_trainer.reduce_per_replica
    trainer_class = tensorflow_trainer.TensorFlowTrainer
    original_build = trainer_class._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        multi_worker = tensorflow_trainer._collective_all_reduce_multi_worker(strategy)
        if multi_worker and reduction in ("auto", "mean"):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        # [batch, ...] shapes and dtypes of (inputs, targets[, weights]), as TensorSpecs.
        specs = iterator.data_adapter.get_tf_dataset().element_spec
        with strategy.scope():
            self._symbolic_build(data_batch=specs)

    tensorflow_trainer.reduce_per_replica = reduce_per_replica
    trainer_class._maybe_symbolic_build = maybe_symbolic_build
    tensorflow_trainer._kerasgen_trainer_fixes = True


def install_clipping_fix():
    """Makes Keras 3 (3.15) clip the gradient of the global batch, not each replica's share.

    Keras's TensorFlow optimizer clips (`clipnorm`, `global_clipnorm`) in `apply`, before
    `_backend_update_step` sums the replicas' gradients. A replica's gradient is its share of
    the global batch's (Keras divides the loss by the replica count), so clipping it there
    clips at a threshold that grows with the replica count, and a strategy no longer trains
    like one device on the same global batch. The fix sums the gradients across replicas
    (one more all-reduce per step), computes the clipping factors from the sums as Keras
    would, and scales each replica's own gradient by them; Keras's all-reduce then adds up
    exactly the clipped global gradient. Scaling the replica's own gradient (rather than
    handing back a share of the sum) keeps the embedding's sparse gradients as Keras would
    build them on one device, which Adam's sparse update is sensitive to. `clipvalue`
    (element-wise, which kerasgen does not use) is left to Keras. Only steps inside a
    strategy of more than one replica with norm clipping change. Idempotent.
    """
    from keras.src.backend.tensorflow import optimizer as tensorflow_optimizer

    optimizer_class = tensorflow_optimizer.TFOptimizer
    if getattr(optimizer_class, "_kerasgen_clipping_fix", False):
        return
    original_clip = optimizer_class._clip_gradients

    def values(gradient):
        return gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient

    def clip_by_norm(gradient, factor):  # tf.clip_by_norm keeps sparse gradients sparse
        factor = tf.cast(factor, gradient.dtype)
        if isinstance(gradient, tf.IndexedSlices):
            return tf.IndexedSlices(
                gradient.values * factor, gradient.indices, gradient.dense_shape
            )
        return gradient * factor

    def clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        norm_clipping = (self.clipnorm or 0) > 0 or (self.global_clipnorm or 0) > 0
        if not norm_clipping or context is None or context.num_replicas_in_sync == 1:
            return original_clip(self, grads)
        present = [g for g in grads if g is not None]
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, present)  # the global gradient
        squares = [tf.reduce_sum(tf.square(tf.cast(values(g), tf.float32))) for g in summed]
        if (self.clipnorm or 0) > 0:  # each variable's gradient, as tf.clip_by_norm does
            clipped = [
                clip_by_norm(g, self.clipnorm / tf.maximum(tf.sqrt(s), self.clipnorm))
                for g, s in zip(present, squares, strict=True)
            ]
        else:  # all together, as keras's clip_by_global_norm does (sparse gradients turn dense)
            norm = tf.sqrt(tf.add_n(squares))
            clip = self.global_clipnorm
            factor = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)  # NaN stays NaN
            clipped = [g * tf.cast(factor, g.dtype) for g in present]
        clipped = iter(clipped)
        return [None if g is None else next(clipped) for g in grads]

    optimizer_class._clip_gradients = clip_gradients
    optimizer_class._kerasgen_clipping_fix = True
