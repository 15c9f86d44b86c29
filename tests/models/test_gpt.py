"""GPT: config round trip, save/reload, the cached decoding step against the full forward pass,
the sliding window, mixed precision, XLA and bad arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.decoding import SamplingStrategy, decode, prepare_prompts
from kerasgen.models import GPT, build_model

TINY = dict(vocab_size=13, context_length=6, width=16, num_layers=2, num_heads=4, mlp_width=32)


def _tokens(batch, time, seed=0, vocab=13):
    return tf.constant(np.random.default_rng(seed).integers(0, vocab, [batch, time]), tf.int32)


def _step_through(model, tokens):
    """Logits of every position from `decoding_step`, one token at a time: `[batch, time, vocab]`."""
    state = model.initial_decoding_state(tokens.shape[0])
    steps = []
    for index in range(tokens.shape[1]):
        logits, state = model.decoding_step(tokens[:, index], state, index)
        steps.append(logits.numpy())
    return np.stack(steps, axis=1), state


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_config_round_trip_and_keras_save_reload_give_identical_outputs(
    tie_embeddings, round_trip, tmp_path
):
    model = GPT(**TINY, tie_embeddings=tie_embeddings)
    tokens = _tokens(3, 5)
    logits = model(tokens)
    assert logits.shape == (3, 5, 13) and logits.dtype == tf.float32
    round_trip.config(model)
    round_trip.keras_file(model, tokens, tmp_path)
    names = [w.path for w in model.weights]
    assert any("output_projection/kernel" in n and "attention" not in n for n in names) == (
        not tie_embeddings
    )


def test_cached_steps_equal_the_full_forward_pass_at_every_position():
    model = GPT(**TINY)
    tokens = _tokens(2, TINY["context_length"], seed=1)
    stepped, state = _step_through(model, tokens)
    np.testing.assert_allclose(stepped, model(tokens).numpy(), atol=1e-5)
    # The caches are fixed-size and rows first: [batch, heads, context, head_dim].
    assert [k.shape for k in state["keys"]] == [(2, 4, 6, 4)] * 2
    np.testing.assert_array_equal(state["window"].numpy(), tokens.numpy())


def test_positions_past_the_window_slide_it_on_both_paths():
    model = GPT(**TINY)
    context = TINY["context_length"]
    tokens = _tokens(2, 3 * context, seed=2)
    full = model(tokens).numpy()  # sliding windows past `context`
    stepped, _ = _step_through(model, tokens)
    np.testing.assert_allclose(stepped, full, atol=1e-5)
    # Position t past the window sees exactly the last `context` tokens, re-encoded from 0.
    for t in (context, 2 * context + 1, 3 * context - 1):
        window = tokens[:, t - context + 1 : t + 1]
        np.testing.assert_allclose(full[:, t], model(window)[:, -1].numpy(), atol=1e-5)
    # A graph with an unknown length takes the same branch at run time.
    traced = tf.function(model.call, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    np.testing.assert_allclose(traced(tokens).numpy(), full, atol=1e-5)
    np.testing.assert_allclose(traced(tokens[:, :4]).numpy(), full[:, :4], atol=1e-5)


def test_the_decode_loop_compiles_with_xla_and_matches_graph_mode():
    model = GPT(**TINY)
    prompts = tf.ragged.constant([[5, 6, 7], [8]], dtype=tf.int32)
    prompt_ids, lengths = prepare_prompts(
        prompts, start_id=1, pad_id=0, max_prompt_tokens=4, max_length=14
    )  # 14 > context: generation slides the window

    def greedy(prompt_ids, lengths):
        strategy = SamplingStrategy(
            end_id=2,
            pad_id=0,
            max_new_tokens=tf.constant([10, 10]),
            temperature=tf.zeros([2]),
            top_k=tf.zeros([2], tf.int32),
            top_p=tf.ones([2]),
            seeds=tf.constant([1, 2]),
        )
        state = model.initial_decoding_state(2)
        return decode(model.decoding_step, strategy, state, prompt_ids, lengths)["tokens"]

    graph = tf.function(greedy)(prompt_ids, lengths).numpy()
    xla = tf.function(greedy, jit_compile=True)(prompt_ids, lengths).numpy()
    np.testing.assert_array_equal(xla, graph)
    # Greedy decoding equals the argmax of the full forward pass of what it generated.
    row = graph[0][graph[0] != 0]
    stop = np.argmax(row == 2) if 2 in row else len(row)
    row = row[:stop]
    expected = np.argmax(model(row[None, :-1]).numpy()[0], axis=-1)
    np.testing.assert_array_equal(row[4:], expected[3:])


def test_mixed_bfloat16_computes_in_bfloat16_and_returns_float32_logits():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = GPT(**TINY)
    finally:
        keras.config.set_dtype_policy(previous)
    tokens = _tokens(2, 5, seed=3)
    full = model(tokens)
    assert full.dtype == tf.float32 and model.token_embedding.embeddings.dtype == "float32"
    assert model.initial_decoding_state(2)["keys"][0].dtype == tf.bfloat16
    stepped, _ = _step_through(model, tokens)
    np.testing.assert_allclose(stepped, full.numpy(), atol=0.1)


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(context_length=0), "context_length must be at least 1"),
        (
            dict(width=30, num_heads=4),
            r"num_heads \(4\) must be a positive divisor of the width \(30\)",
        ),
        (dict(num_layers=0), "num_layers must be at least 1"),
    ],
)
def test_bad_sizes_are_clear_errors_at_construction(arguments, message):
    with pytest.raises(ValueError, match=message):
        GPT(**{**TINY, **arguments})


@pytest.mark.parametrize("name", ["gpt_tiny", "gpt_baby", "gpt_fast", "gpt", "gpt_base"])
def test_every_gpt_preset_builds(name):
    model = build_model(name, 9)
    assert model(tf.zeros([1, 3], tf.int32)).shape == (1, 3, 9)
