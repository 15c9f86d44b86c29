"""CausalSelfAttention and TransformerBlock: causality, the cached step, config round trips."""

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.layers import CausalSelfAttention, TransformerBlock, cache_write_indices


def _inputs(batch=2, time=5, width=8, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=[batch, time, width]), tf.float32)


@pytest.mark.parametrize("layer_class", [CausalSelfAttention, TransformerBlock])
def test_a_position_never_sees_the_future(layer_class):
    arguments = dict(mlp_width=16) if layer_class is TransformerBlock else {}
    layer = layer_class(8, 2, **arguments)
    x = _inputs()
    changed = tf.concat([x[:, :3], x[:, 3:] + 10.0], axis=1)  # only positions 3 and 4 change
    before, after = layer(x).numpy(), layer(changed).numpy()
    np.testing.assert_allclose(before[:, :3], after[:, :3], atol=1e-6)
    assert not np.allclose(before[:, 3:], after[:, 3:])


@pytest.mark.parametrize("layer_class", [CausalSelfAttention, TransformerBlock])
def test_cached_steps_equal_the_whole_sequence(layer_class):
    arguments = dict(mlp_width=16) if layer_class is TransformerBlock else {}
    layer = layer_class(8, 2, **arguments)
    x = _inputs(time=4)
    full = layer(x).numpy()
    keys = values = tf.fill([2, 2, 6, 4], 7.0)  # garbage past the written slots is ignored
    outputs = []
    for index in range(4):
        out, keys, values = layer.step(
            x[:, index], keys, values, index, cache_write_indices(2, 2, index)
        )
        outputs.append(out.numpy())
    np.testing.assert_allclose(np.stack(outputs, axis=1), full, atol=1e-5)
    assert keys.shape == (2, 2, 6, 4)
    np.testing.assert_array_equal(keys[:, :, 4:].numpy(), 7.0)  # slots past index untouched


@pytest.mark.parametrize("layer_class", [CausalSelfAttention, TransformerBlock])
def test_config_round_trip(layer_class, round_trip):
    arguments = dict(mlp_width=16) if layer_class is TransformerBlock else {}
    round_trip.config(layer_class(8, 2, dropout=0.1, output_initializer="zeros", **arguments))


def test_heads_that_do_not_divide_the_width_are_refused():
    with pytest.raises(ValueError, match=r"num_heads \(3\) must be a positive divisor"):
        CausalSelfAttention(8, 3)


def test_sublayers_get_independent_initial_weights():
    block = TransformerBlock(
        8,
        2,
        mlp_width=8,
        kernel_initializer={"class_name": "RandomNormal", "config": {"stddev": 0.02}},
    )
    block.build((None, None, 8))
    hidden = block.mlp_hidden.kernel.numpy()
    output = block.mlp_output.kernel.numpy()
    assert not np.allclose(hidden, output)


def test_one_query_attention_equals_the_batched_matmuls():
    """A decoding step's attention (broadcast sums, outside XLA) against the matmul path, with
    some keys masked in every row and one row that sees a single key."""
    layer = CausalSelfAttention(width=16, num_heads=4)
    rng = np.random.default_rng(0)
    q = tf.constant(rng.normal(size=[3, 4, 1, 4]), tf.float32)
    k, v = (tf.constant(rng.normal(size=[3, 4, 7, 4]), tf.float32) for _ in range(2))
    visible = tf.range(7)[tf.newaxis, :] <= tf.constant([6, 3, 0])[:, tf.newaxis]
    mask = visible[:, tf.newaxis, tf.newaxis, :]
    out, weights = layer._attend_one_query(q, k, v, mask)
    scores = tf.matmul(q, k, transpose_b=True) * 0.5
    expected_weights = tf.nn.softmax(tf.where(mask, scores, -1e4), axis=-1)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    np.testing.assert_allclose(out, tf.matmul(expected_weights, v), atol=1e-5)
    assert np.all(weights.numpy()[2, :, 0, 1:] == 0.0)
