"""The training loss of token targets: sparse cross-entropy, optionally label-smoothed.

Keras's `SparseCategoricalCrossentropy` has no label smoothing and its `CategoricalCrossentropy`
needs one-hot targets (`[batch, length, vocab]` floats built in the input pipeline: 61 MB a
batch of 64 x 30 tokens over an 8,000-id vocabulary). This loss computes the smoothed
cross-entropy from the integer targets directly:

    loss = -(1 - smoothing) * log p(target) - smoothing * mean_v log p(v)

which equals `CategoricalCrossentropy(label_smoothing=smoothing)` on one-hot targets (the
smoothing mass spread evenly over the whole vocabulary, the target included: Szegedy et al.,
2016; Vaswani et al., 2017 use 0.1).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasgen")
class SparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer targets over logits, with optional label smoothing.

    Args:
        label_smoothing: the probability mass taken from the target and spread evenly over
            the vocabulary, in [0, 1); 0 is Keras's `SparseCategoricalCrossentropy(
            from_logits=True)`.
        reduction, name: as every Keras loss (`mean_with_sample_weight`: the mean over the
            tokens whose sample weight is not 0, the padding having weight 0).

    Call: `loss(targets int [batch, length], logits float [batch, length, vocab],
    sample_weight [batch, length])`, computed in float32 whatever the logits' dtype.
    """

    def __init__(
        self, label_smoothing=0.0, reduction="mean_with_sample_weight", name="cross_entropy"
    ):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        super().__init__(reduction=reduction, name=name)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        targets = ops.expand_dims(ops.cast(y_true, "int32"), axis=-1)
        target_log_probs = ops.squeeze(ops.take_along_axis(log_probs, targets, axis=-1), -1)
        if not self.label_smoothing:
            return -target_log_probs
        mean_log_probs = ops.mean(log_probs, axis=-1)
        smoothing = self.label_smoothing
        return -(1.0 - smoothing) * target_log_probs - smoothing * mean_log_probs

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
