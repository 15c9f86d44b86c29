"""`kerasgen.losses.SparseCrossentropy`: Keras's sparse cross-entropy, plus label smoothing
equal to `CategoricalCrossentropy(label_smoothing=...)` on one-hot targets."""

import keras
import numpy as np
import pytest

from kerasgen.errors import UserInputError
from kerasgen.losses import SparseCrossentropy
from kerasgen.training import TrainConfig

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=[2, 3, 7]).astype("float32") * 3
TARGETS = np.array([[1, 6, 0], [3, 3, 2]])
WEIGHTS = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], "float32")  # padding weighs 0


def test_without_smoothing_it_is_keras_sparse_cross_entropy():
    ours = SparseCrossentropy(reduction="mean_with_sample_weight")
    keras_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )
    np.testing.assert_allclose(
        ours(TARGETS, LOGITS, WEIGHTS), keras_loss(TARGETS, LOGITS, WEIGHTS), rtol=1e-6
    )


def test_smoothing_equals_categorical_cross_entropy_on_one_hot_targets():
    one_hot = keras.ops.one_hot(TARGETS, 7)
    for smoothing in (0.1, 0.5):
        ours = SparseCrossentropy(smoothing, reduction="mean_with_sample_weight")
        keras_loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=smoothing, reduction="mean_with_sample_weight"
        )
        expected = keras_loss(one_hot, LOGITS, WEIGHTS)
        np.testing.assert_allclose(ours(TARGETS, LOGITS, WEIGHTS), expected, rtol=1e-5)
    # Smoothing changes the loss: the test above compares two different numbers each time.
    plain = SparseCrossentropy(reduction="mean_with_sample_weight")(TARGETS, LOGITS, WEIGHTS)
    assert abs(float(plain) - float(expected)) > 0.1


def test_the_loss_reloads_from_its_config_and_rejects_bad_values():
    loss = SparseCrossentropy(0.2)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, SparseCrossentropy) and again.label_smoothing == 0.2
    with pytest.raises(ValueError, match="label_smoothing"):
        SparseCrossentropy(1.0)
    with pytest.raises(UserInputError, match="label_smoothing must be below 1"):
        TrainConfig(label_smoothing=1.0)
