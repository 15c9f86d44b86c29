"""BahdanauAttention and LuongAttention against their formulas, with source padding masked."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.layers import BahdanauAttention, LuongAttention

BATCH, SOURCE_LEN, QUERY_DIM, MEMORY_DIM = 2, 5, 6, 6


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    query = tf.constant(rng.normal(size=[BATCH, QUERY_DIM]), tf.float32)
    memory = tf.constant(rng.normal(size=[BATCH, SOURCE_LEN, MEMORY_DIM]), tf.float32)
    mask = tf.constant([[True] * 5, [True, True, True, False, False]])
    return query, memory, mask


def _softmax(scores, mask):
    scores = np.where(mask, scores, -np.inf)
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def _run(layer, query, memory, mask):
    layer.build(query.shape, memory.shape)
    keys = layer.prepare_keys(memory)
    return layer(query, memory, keys, mask)


def test_bahdanau_matches_the_additive_formula_and_masks_padding():
    query, memory, mask = _inputs()
    layer = BahdanauAttention(4)
    context, weights = _run(layer, query, memory, mask)
    w_q = layer.query_projection.kernel.numpy()
    w_k = layer.key_projection.kernel.numpy()
    v = layer.additive_attention.scale.numpy()
    scores = np.tanh((query.numpy() @ w_q)[:, None, :] + memory.numpy() @ w_k) @ v
    expected = _softmax(scores, mask.numpy())
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        context.numpy(), np.einsum("bs,bsd->bd", expected, memory.numpy()), rtol=1e-5, atol=1e-6
    )
    assert np.all(weights.numpy()[1, 3:] == 0.0)


@pytest.mark.parametrize("score", ["dot", "general"])
def test_luong_matches_the_multiplicative_formula_and_masks_padding(score):
    query, memory, mask = _inputs(1)
    layer = LuongAttention(score)
    context, weights = _run(layer, query, memory, mask)
    keys = memory.numpy()
    if score == "general":
        keys = keys @ layer.key_projection.kernel.numpy()
    expected = _softmax(np.einsum("bd,bsd->bs", query.numpy(), keys), mask.numpy())
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        context.numpy(), np.einsum("bs,bsd->bd", expected, memory.numpy()), rtol=1e-5, atol=1e-6
    )
    assert np.all(weights.numpy()[1, 3:] == 0.0)


def test_a_source_of_only_padding_gives_finite_weights():
    query, memory, _ = _inputs()
    mask = tf.zeros([BATCH, SOURCE_LEN], tf.bool)
    for layer in (BahdanauAttention(4), LuongAttention("dot")):
        context, weights = _run(layer, query, memory, mask)
        assert np.all(np.isfinite(context.numpy())) and np.all(np.isfinite(weights.numpy()))


def test_luong_dot_refuses_unequal_widths_and_unknown_scores():
    with pytest.raises(ValueError, match="general"):
        LuongAttention("dot").build((None, 4), (None, None, 6))
    with pytest.raises(ValueError, match="valid"):
        LuongAttention("concat")


@pytest.mark.parametrize(
    "layer", [BahdanauAttention(4, name="b"), LuongAttention("general", name="l")], ids=str
)
def test_get_config_rebuilds_the_layer(layer, round_trip):
    round_trip.config(layer)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
