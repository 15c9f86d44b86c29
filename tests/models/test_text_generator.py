"""TextGenerator: config round trip, save/reload equality, and the decoding step contract."""

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.models import TextGenerator, build_model, preset_names
from kerasgen.models.presets import is_translation_model


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "simple_rnn"])
def test_config_round_trip_and_keras_save_reload_give_identical_outputs(
    rnn_type, round_trip, tmp_path
):
    model = TextGenerator(
        vocab_size=11, embedding_dim=4, rnn_type=rnn_type, rnn_units=8, num_layers=2
    )
    # The config round trip before the first call: a TextGenerator built by
    # `build_from_config` (no `build` of its own) names its weights without the model's prefix.
    round_trip.config(model)
    tokens = tf.constant(np.random.default_rng(0).integers(0, 11, [3, 7]), tf.int32)
    logits = model(tokens)
    assert logits.shape == (3, 7, 11)
    round_trip.keras_file(model, tokens, tmp_path)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "simple_rnn"])
def test_decoding_step_equals_the_full_sequence(rnn_type):
    model = TextGenerator(
        vocab_size=13, embedding_dim=4, rnn_type=rnn_type, rnn_units=6, num_layers=2
    )
    tokens = tf.constant(np.random.default_rng(1).integers(0, 13, [2, 5]), tf.int32)
    full, final_state = model(tokens, return_state=True)
    state = model.initial_decoding_state(2)
    steps = []
    for index in range(5):
        logits, state = model.decoding_step(tokens[:, index], state, index)
        steps.append(logits)
    np.testing.assert_allclose(np.stack(steps, axis=1), full.numpy(), atol=1e-5)
    for stepped, whole in zip(state, final_state, strict=True):
        np.testing.assert_allclose(stepped.numpy(), whole.numpy(), atol=1e-5)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="valid types: gru, lstm, simple_rnn"):
        TextGenerator(vocab_size=5, rnn_type="transformer")
    with pytest.raises(ValueError, match="num_layers"):
        TextGenerator(vocab_size=5, num_layers=0)
    with pytest.raises(ValueError, match="valid models: .*text_generator_gru"):
        build_model("nope", 5)


def test_every_preset_builds():
    for name in preset_names():
        if is_translation_model(name):  # encoder-decoders: tests/models/test_seq2seq.py
            continue
        model = build_model(name, 9)
        assert model(tf.zeros([1, 3], tf.int32)).shape == (1, 3, 9)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "simple_rnn"])
def test_decoding_step_fn_with_the_input_table_equals_decoding_step(rnn_type):
    model = TextGenerator(
        vocab_size=13, embedding_dim=4, rnn_type=rnn_type, rnn_units=6, num_layers=2
    )
    model(tf.zeros([1, 1], tf.int32))
    fast_step = model.decoding_step_fn()
    assert fast_step != model.decoding_step
    tokens = tf.constant(np.random.default_rng(2).integers(0, 13, [3, 6]), tf.int32)
    state = fast_state = model.initial_decoding_state(3)
    for index in range(6):
        logits, state = model.decoding_step(tokens[:, index], state, index)
        fast_logits, fast_state = fast_step(tokens[:, index], fast_state, index)
        np.testing.assert_allclose(fast_logits.numpy(), logits.numpy(), atol=1e-5)
    for fast, slow in zip(fast_state, state, strict=True):
        np.testing.assert_allclose(fast.numpy(), slow.numpy(), atol=1e-5)
