"""Seq2Seq: teacher forcing and step-by-step decoding agree, padding is ignored, saving works."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.models.presets import build_translation_model, is_translation_model, preset_names
from kerasgen.models.seq2seq import Seq2Seq

SOURCE = tf.constant([[5, 6, 7, 8, 2, 0, 0], [9, 4, 2, 0, 0, 0, 0]])
TARGET = tf.constant([[1, 5, 6, 7], [1, 8, 0, 0]])
VARIANTS = [
    dict(attention=None),
    dict(attention="bahdanau"),
    dict(attention="luong_dot"),
    dict(attention="luong_general"),
    dict(attention="bahdanau", rnn_type="gru"),
    dict(attention=None, rnn_type="gru", bidirectional=False),
]


def _model(**options):
    keras.utils.set_random_seed(0)
    model = Seq2Seq(12, 10, embedding_dim=8, rnn_units=12, **options)
    model.build()
    return model


@pytest.mark.parametrize("options", VARIANTS, ids=str)
def test_decoding_steps_reproduce_teacher_forced_logits(options):
    model = _model(**options)
    logits = model((SOURCE, TARGET)).numpy()  # [batch, target_len, vocab]
    state = model.encode(SOURCE)
    for index in range(TARGET.shape[1]):
        step_logits, state = model.decoding_step(TARGET[:, index], state, index)
        np.testing.assert_allclose(step_logits.numpy(), logits[:, index], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", VARIANTS, ids=str)
def test_extra_source_padding_changes_nothing(options):
    model = _model(**options)
    padded = tf.pad(SOURCE, [[0, 0], [0, 4]])
    np.testing.assert_allclose(
        model((padded, TARGET)).numpy(), model((SOURCE, TARGET)).numpy(), rtol=1e-5, atol=1e-6
    )


def test_bidirectional_states_are_both_directions_concatenated():
    model = _model(attention=None)
    state = model.encode(SOURCE)
    h, c = state["rnn"]
    assert h.shape == (2, 12) and c.shape == (2, 12)
    x = model.source_embedding(SOURCE)
    _, fh, fc, bh, bc = model.encoder(x, mask=SOURCE != 0)
    np.testing.assert_allclose(h.numpy(), tf.concat([fh, bh], -1).numpy(), rtol=1e-6)


def test_attention_weights_cover_the_real_source_only():
    model = _model(attention="luong_general")
    _, weights = model((SOURCE, TARGET), return_attention=True)
    assert weights.shape == (2, 4, 7)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)
    assert np.all(weights.numpy()[1, :, 3:] == 0.0)  # row 1 has 3 real tokens


def test_attention_buffer_records_every_step():
    model = _model(attention="bahdanau")
    state = model.with_attention_buffer(model.encode(SOURCE), max_length=6)
    _, expected = model((SOURCE, TARGET), return_attention=True)
    for index in range(TARGET.shape[1]):
        _, state = model.decoding_step(TARGET[:, index], state, index)
    np.testing.assert_allclose(state["attention"][:, :4].numpy(), expected.numpy(), atol=1e-5)
    assert np.all(state["attention"][:, 4:].numpy() == 0.0)


@pytest.mark.parametrize("options", [VARIANTS[1], VARIANTS[5]], ids=str)
def test_config_round_trip_and_keras_save_reload_give_identical_outputs(
    options, round_trip, tmp_path
):
    model = _model(**options)
    round_trip.config(model)
    round_trip.keras_file(
        model, (SOURCE, TARGET), tmp_path, return_attention=bool(options["attention"])
    )


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="attention"):
        Seq2Seq(5, 5, attention="multihead")
    with pytest.raises(ValueError, match="rnn_type"):
        Seq2Seq(5, 5, rnn_type="simple_rnn")
    with pytest.raises(ValueError, match="even"):
        Seq2Seq(5, 5, rnn_units=7, bidirectional=True)


def test_every_translation_preset_builds():
    for name in preset_names():
        if is_translation_model(name):
            model = build_translation_model(name, 12, 10)
            model.build()
            assert model((SOURCE, TARGET)).shape == (2, 4, 10)
