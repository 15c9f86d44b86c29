"""The projected recurrent layers equal Keras's (outputs, states, gradients; masks, reversed
runs, mixed precision), keep Keras's weight layout, and load `.keras` files of the Keras layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.layers import projected_rnn
from kerasgen.models import TextGenerator, seq2seq, text_generator
from kerasgen.models.seq2seq import Seq2Seq

INPUTS = tf.constant(np.random.default_rng(0).normal(size=[3, 7, 5]), tf.float32)
# Row 0 whole, rows 1 and 2 right-padded (as a padded source is).
MASK = tf.constant([[True] * 7, [True] * 4 + [False] * 3, [True] * 2 + [False] * 5])
KERAS_NAMES = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}
LAYERS = [
    ("LSTM", {}),
    ("GRU", {}),
    ("GRU", {"reset_after": False}),
    ("SimpleRNN", {}),
]


def _pair(name, options, **layer_options):
    """(Keras layer, projected layer) with the same weights, built for INPUTS."""
    keras.utils.set_random_seed(0)
    reference, projected = (
        getattr(module, name)(
            6, return_sequences=True, return_state=True, name="rnn", **options, **layer_options
        )
        for module in (keras.layers, projected_rnn)
    )
    reference(INPUTS)
    projected(INPUTS)
    projected.set_weights(reference.get_weights())
    return reference, projected


@pytest.mark.parametrize(("name", "options"), LAYERS, ids=str)
@pytest.mark.parametrize("go_backwards", [False, True])
# Unmasked; masked steps repeating the previous output (Keras's default); masked steps giving
# zeros (what Bidirectional sets, as in Seq2Seq's encoder).
@pytest.mark.parametrize("masking", [None, "repeat", "zeros"])
def test_outputs_states_and_gradients_equal_the_keras_layer(name, options, go_backwards, masking):
    reference, projected = _pair(
        name, options, go_backwards=go_backwards, zero_output_for_mask=masking == "zeros"
    )
    assert [w.path for w in projected.weights] == [w.path for w in reference.weights]
    mask = None if masking is None else MASK
    rng = np.random.default_rng(1)
    initial = [
        tf.constant(rng.normal(size=[3, 6]), tf.float32) for _ in range(2 if name == "LSTM" else 1)
    ]
    for expected, actual in zip(
        reference(INPUTS, initial_state=initial, mask=mask),
        projected(INPUTS, initial_state=initial, mask=mask),
        strict=True,
    ):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-5)

    def gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch([INPUTS, *initial])
            outputs, *states = layer(INPUTS, initial_state=initial, mask=mask, training=True)
            loss = tf.reduce_sum(outputs**2) + tf.reduce_sum(states[-1])
        return tape.gradient(loss, [INPUTS, *initial, *layer.trainable_weights])

    for expected, actual in zip(gradients(reference), gradients(projected), strict=True):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize(("name", "options"), LAYERS[:2], ids=str)
@pytest.mark.parametrize("mask", [None, MASK], ids=["unmasked", "masked"])
def test_in_a_tf_function_gradients_equal_the_keras_layer(name, options, mask):
    # Training runs traced: the loops and their gradients as graphs, not eagerly.
    reference, projected = _pair(name, options, go_backwards=True, zero_output_for_mask=True)

    def gradients(layer):
        @tf.function
        def run(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs, *states = layer(inputs, mask=mask, training=True)
                loss = tf.reduce_sum(outputs**3) + tf.reduce_sum(states[-1] ** 2)
            return tape.gradient(loss, [inputs, *layer.trainable_weights])

        return run(INPUTS)

    for expected, actual in zip(gradients(reference), gradients(projected), strict=True):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize(("name", "options"), LAYERS[:2], ids=str)
def test_without_return_sequences_the_last_output_and_states_equal_keras(name, options):
    reference, projected = _pair(name, options)
    reference.return_sequences = projected.return_sequences = False
    for expected, actual in zip(reference(INPUTS), projected(INPUTS), strict=True):
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-5)


def test_input_dropout_equals_keras_given_the_same_seed():
    # Both draw one mask per call from the cell's seed generator and apply it at every step.
    reference, projected = _pair("GRU", {}, dropout=0.5, seed=7)
    np.testing.assert_allclose(
        projected(INPUTS)[0].numpy(), reference(INPUTS)[0].numpy(), atol=1e-5
    )
    dropped = projected(INPUTS, training=True)[0].numpy()
    np.testing.assert_allclose(dropped, reference(INPUTS, training=True)[0].numpy(), atol=1e-5)
    assert not np.allclose(dropped, projected(INPUTS)[0].numpy())


def test_under_a_mixed_policy_the_layer_computes_in_bfloat16_like_keras():
    reference, projected = _pair("LSTM", {}, dtype="mixed_bfloat16")
    outputs, h, c = projected(INPUTS)
    assert outputs.dtype == h.dtype == c.dtype == tf.bfloat16
    assert all(w.dtype == "float32" for w in projected.weights)
    np.testing.assert_allclose(
        tf.cast(outputs, tf.float32).numpy(),
        tf.cast(reference(INPUTS)[0], tf.float32).numpy(),
        atol=0.05,  # bfloat16 keeps ~3 significant digits
    )


def test_a_cell_without_a_projection_is_refused():
    with pytest.raises(TypeError, match="No projected recurrence for StackedRNNCells"):
        projected_rnn.recurrence_for(keras.layers.StackedRNNCells([keras.layers.GRUCell(2)]))


@pytest.fixture
def keras_layers(monkeypatch):
    """Models built while this is active use Keras's own recurrent layers: the layout every
    `.keras` file and export written before the projected layers has."""
    monkeypatch.setitem(text_generator.RNN_TYPES, "lstm", keras.layers.LSTM)
    monkeypatch.setitem(text_generator.RNN_TYPES, "gru", keras.layers.GRU)
    monkeypatch.setitem(text_generator.RNN_TYPES, "simple_rnn", keras.layers.SimpleRNN)
    monkeypatch.setitem(seq2seq.ENCODER_TYPES, "lstm", keras.layers.LSTM)
    monkeypatch.setitem(seq2seq.ENCODER_TYPES, "gru", keras.layers.GRU)
    return monkeypatch


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "simple_rnn"])
def test_a_text_generator_saved_with_keras_layers_loads_into_the_projected_layers(
    rnn_type, keras_layers, round_trip, tmp_path
):
    keras.utils.set_random_seed(0)
    old = TextGenerator(
        vocab_size=11, embedding_dim=4, rnn_type=rnn_type, rnn_units=8, num_layers=2
    )
    tokens = tf.constant(np.random.default_rng(3).integers(0, 11, [3, 7]), tf.int32)
    expected = old(tokens).numpy()
    assert type(old.rnn_layers[0]).__module__.startswith("keras.")
    old.save(str(tmp_path / "old.keras"))
    keras_layers.undo()

    new = keras.models.load_model(str(tmp_path / "old.keras"))
    assert isinstance(new.rnn_layers[0], getattr(projected_rnn, KERAS_NAMES[rnn_type]))
    round_trip.weights(new, old)
    np.testing.assert_allclose(new(tokens).numpy(), expected, atol=1e-6)
    # And the other way: a file of the projected layers has the Keras layout.
    new.save(str(tmp_path / "new.keras"))
    keras_layers.setitem(
        text_generator.RNN_TYPES, rnn_type, getattr(keras.layers, KERAS_NAMES[rnn_type])
    )
    back = keras.models.load_model(str(tmp_path / "new.keras"))
    assert type(back.rnn_layers[0]).__module__.startswith("keras.")
    np.testing.assert_allclose(back(tokens).numpy(), expected, atol=1e-6)


def test_a_seq2seq_saved_with_keras_layers_loads_into_the_projected_layers(
    keras_layers, round_trip, tmp_path
):
    keras.utils.set_random_seed(0)
    old = Seq2Seq(12, 10, embedding_dim=8, rnn_units=12, attention="bahdanau")
    old.build()
    pair = (
        tf.constant([[5, 6, 7, 8, 2, 0, 0], [9, 4, 2, 0, 0, 0, 0]]),
        tf.constant([[1, 5], [1, 8]]),
    )
    expected = old(pair).numpy()
    old.save(str(tmp_path / "old.keras"))
    keras_layers.undo()
    new = keras.models.load_model(str(tmp_path / "old.keras"))
    assert isinstance(new.encoder.forward_layer, projected_rnn.LSTM)
    assert isinstance(new.encoder.backward_layer, projected_rnn.LSTM)
    round_trip.weights(new, old)
    np.testing.assert_allclose(new(pair).numpy(), expected, atol=1e-6)
