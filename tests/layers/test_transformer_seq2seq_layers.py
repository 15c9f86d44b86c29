"""The encoder-decoder Transformer's layers: sinusoidal positions, CrossAttention against a NumPy
reference, the encoder block's padding and bidirectionality, the decoder block's cached step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.layers import (
    CrossAttention,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    cache_write_indices,
    sinusoidal_position_encoding,
)


def _normal(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape), tf.float32)


def test_sinusoidal_position_encoding_values():
    encoding = sinusoidal_position_encoding(tf.range(3), 4).numpy()  # frequencies 1 and 1/100
    expected = [[np.sin(p), np.sin(p / 100), np.cos(p), np.cos(p / 100)] for p in range(3)]
    np.testing.assert_allclose(encoding, expected, rtol=1e-6, atol=1e-7)
    scalar = sinusoidal_position_encoding(tf.constant(2), 4, "bfloat16")
    assert scalar.shape == (4,) and scalar.dtype == tf.bfloat16
    with pytest.raises(ValueError, match="even width, got 5"):
        sinusoidal_position_encoding(tf.range(3), 5)


def _reference_attention(layer, x, memory, mask):
    """Multi-head attention in NumPy from the layer's own weights."""
    q_kernel, q_bias = (w.numpy() for w in layer.query.weights)
    kv_kernel, kv_bias = (w.numpy() for w in layer.key_value.weights)
    out_kernel, out_bias = (w.numpy() for w in layer.output_projection.weights)
    width, heads = layer.width, layer.num_heads
    q = x @ q_kernel + q_bias  # [batch, time, width]
    kv = memory @ kv_kernel + kv_bias
    k, v = kv[..., :width], kv[..., width:]
    split = lambda t: t.reshape(*t.shape[:2], heads, width // heads).transpose(0, 2, 1, 3)  # noqa: E731
    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / np.sqrt(width // heads)
    scores = np.where(mask[:, None, None, :], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)  # [batch, heads, time, memory]
    out = (weights @ split(v)).transpose(0, 2, 1, 3).reshape(*x.shape[:2], width)
    return out @ out_kernel + out_bias, weights.mean(axis=1)


def test_cross_attention_matches_a_numpy_reference_and_ignores_padded_memory():
    keras.utils.set_random_seed(0)
    layer = CrossAttention(8, 2)
    layer.build((None, None, 8))
    x, memory = _normal([2, 3, 8]), _normal([2, 5, 8], seed=1)
    mask = tf.constant([[True] * 5, [True, True, False, False, False]])
    keys, values = layer.memory_keys_values(memory)
    assert keys.shape == (2, 2, 5, 4) and values.shape == (2, 2, 5, 4)
    out, weights = layer(x, keys, values, mask)
    expected_out, expected_weights = _reference_attention(layer, x.numpy(), memory.numpy(),
                                                          mask.numpy())  # fmt: skip
    np.testing.assert_allclose(out.numpy(), expected_out, atol=1e-5)
    np.testing.assert_allclose(weights.numpy(), expected_weights, atol=1e-6)
    assert weights.dtype == tf.float32 and np.all(weights.numpy()[1, :, 2:] == 0.0)
    # Whatever the padded memory holds, the output is the same.
    noisy = tf.where(mask[:, :, None], memory, 100.0 * _normal([2, 5, 8], seed=2))
    noisy_out, _ = layer(x, *layer.memory_keys_values(noisy), mask)
    np.testing.assert_allclose(noisy_out.numpy(), out.numpy(), atol=1e-5)


def test_encoder_block_is_bidirectional_over_the_real_tokens_only():
    keras.utils.set_random_seed(0)
    block = TransformerEncoderBlock(8, 2, 16)
    block.build((None, None, 8))
    x = _normal([1, 5, 8])
    mask = tf.constant([[True, True, True, False, False]])
    out = block(x, mask).numpy()
    padded_changed = tf.concat([x[:, :3], _normal([1, 2, 8], seed=3)], axis=1)
    np.testing.assert_allclose(block(padded_changed, mask).numpy()[:, :3], out[:, :3], atol=1e-5)
    # A later real token changes an earlier position's output: not causal.
    later_changed = tf.concat([x[:, :2], _normal([1, 1, 8], seed=4), x[:, 3:]], axis=1)
    assert not np.allclose(block(later_changed, mask).numpy()[:, 0], out[:, 0], atol=1e-3)


def test_decoder_block_step_equals_the_whole_sequence_and_config_round_trips(round_trip):
    keras.utils.set_random_seed(0)
    block = TransformerDecoderBlock(8, 2, 16)
    block.build((None, None, 8))
    round_trip.config(block)
    x, memory = _normal([2, 4, 8]), _normal([2, 3, 8], seed=1)
    mask = tf.constant([[True, True, True], [True, False, False]])
    keys, values = block.memory_keys_values(memory)
    full, full_weights = block(x, keys, values, mask)
    key_cache = value_cache = tf.zeros([2, 2, 6, 4])  # room for more positions than used
    for index in range(4):
        out, weights, key_cache, value_cache = block.step(
            x[:, index], key_cache, value_cache, index, cache_write_indices(2, 2, index),
            keys, values, mask,
        )  # fmt: skip
        np.testing.assert_allclose(out.numpy(), full.numpy()[:, index], atol=1e-5)
        np.testing.assert_allclose(weights.numpy(), full_weights.numpy()[:, index], atol=1e-6)
    # Causal: the first position does not see the later ones.
    changed = tf.concat([x[:, :1], _normal([2, 3, 8], seed=5)], axis=1)
    np.testing.assert_allclose(
        block(changed, keys, values, mask)[0].numpy()[:, 0], full.numpy()[:, 0], atol=1e-6
    )


@pytest.mark.parametrize("block_class", [TransformerEncoderBlock, TransformerDecoderBlock])
def test_blocks_keep_their_weight_layout_and_config(block_class, round_trip):
    # Exports and `.keras` files hold the weights by these paths, in this order (attention
    # first, the MLP last): what every earlier file of these blocks has.
    block = block_class(8, 2, 16, dropout=0.1, output_initializer="zeros", name="b")
    block.build((None, None, 8))
    attention = {
        TransformerEncoderBlock: [
            "attention_norm/gamma",
            "attention_norm/beta",
            *(
                f"attention/{p}/{w}"
                for p in ("query", "key_value", "output_projection")
                for w in ("kernel", "bias")
            ),
        ],
        TransformerDecoderBlock: [
            "self_attention_norm/gamma",
            "self_attention_norm/beta",
            *(
                f"self_attention/{p}/{w}"
                for p in ("qkv", "output_projection")
                for w in ("kernel", "bias")
            ),
            "cross_attention_norm/gamma",
            "cross_attention_norm/beta",
            *(
                f"cross_attention/{p}/{w}"
                for p in ("query", "key_value", "output_projection")
                for w in ("kernel", "bias")
            ),
        ],
    }[block_class]
    mlp = ["mlp_norm/gamma", "mlp_norm/beta", "mlp_hidden/kernel", "mlp_hidden/bias"]
    mlp += ["mlp_output/kernel", "mlp_output/bias"]
    assert [w.path for w in block.weights] == [f"b/{path}" for path in attention + mlp]
    assert block.get_config()["dropout"] == 0.1
    assert block.get_config()["output_initializer"]["class_name"] == "Zeros"
    round_trip.config(block)
