"""`decode_with_prefill`: the prompts in one pass give token for token what `decode` gives
(GPT and TextGenerator; greedy, sampling, beam search, controls; mixed prompt lengths, an empty
prompt, prompts that fill or pass the window; graph mode and XLA)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.decoding import BeamSearchStrategy, SamplingStrategy, decode, prepare_prompts
from kerasgen.decoding.engine import decode_with_prefill
from kerasgen.decoding.length_buckets import bucket_of, length_buckets
from kerasgen.models import GPT, TextGenerator

START, END, PAD = 1, 2, 0
CONTEXT = 6


def _gpt():
    keras.utils.set_random_seed(0)  # the weights, whatever ran before
    return GPT(13, context_length=CONTEXT, width=16, num_layers=2, num_heads=4, mlp_width=32)


def _gru():
    keras.utils.set_random_seed(0)  # the weights, whatever ran before
    model = TextGenerator(13, embedding_dim=8, rnn_type="gru", rnn_units=16, num_layers=2)
    model(tf.zeros([1, 2], tf.int32))
    return model


def _lstm():
    keras.utils.set_random_seed(0)  # the weights, whatever ran before
    model = TextGenerator(13, embedding_dim=8, rnn_type="lstm", rnn_units=16)
    model(tf.zeros([1, 2], tf.int32))
    return model


def _prompts(rows, max_prompt_tokens, max_length):
    return prepare_prompts(
        tf.ragged.constant(rows, dtype=tf.int32),
        start_id=START,
        pad_id=PAD,
        max_prompt_tokens=max_prompt_tokens,
        max_length=max_length,
    )


def _sampling(batch, temperature=0.0, **controls):
    return SamplingStrategy(
        end_id=END,
        pad_id=PAD,
        max_new_tokens=tf.fill([batch], 9),
        temperature=tf.fill([batch], temperature),
        top_k=tf.zeros([batch], tf.int32),
        top_p=tf.ones([batch]),
        seeds=tf.range(batch) + 7,
        **controls,
    )


def _both(model, strategy_fn, prompt_ids, lengths, jit_compile=False):
    """(decode's result, decode_with_prefill's result) as numpy dicts."""
    batch = prompt_ids.shape[0]

    def step_by_step(prompt_ids, lengths):
        state = model.initial_decoding_state(batch)
        return decode(model.decoding_step, strategy_fn(batch), state, prompt_ids, lengths)

    def prefilled(prompt_ids, lengths):
        return decode_with_prefill(
            model.prefill_decoding_state,
            model.decoding_step,
            strategy_fn(batch),
            prompt_ids,
            lengths,
        )

    run = [tf.function(f, jit_compile=jit_compile) for f in (step_by_step, prefilled)]
    return [{k: v.numpy() for k, v in f(prompt_ids, lengths).items()} for f in run]


def _assert_same(expected, actual):
    assert sorted(expected) == sorted(actual)
    for key in expected:
        if expected[key].dtype.kind == "f":
            np.testing.assert_allclose(actual[key], expected[key], atol=1e-5, err_msg=key)
        else:
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


# Mixed lengths: an empty prompt (start token only), a prompt that fills the window (start +
# 5 tokens = context 6), one that passes it (start + 7 tokens), and two short ones.
MIXED = [[], [3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 3, 4], [5], [6, 7]]


@pytest.mark.parametrize("make_model", [_gpt, _gru, _lstm], ids=["gpt", "gru", "lstm"])
def test_greedy_mixed_prompt_lengths_match_step_by_step_decoding(make_model):
    model = make_model()
    prompt_ids, lengths = _prompts(MIXED, max_prompt_tokens=8, max_length=20)
    expected, actual = _both(model, _sampling, prompt_ids, lengths)
    _assert_same(expected, actual)
    # Every row generated, and starts with its own prompt, as decode's rows do.
    assert expected["num_tokens"].min() >= 1
    for row, length in enumerate(lengths.numpy()):
        np.testing.assert_array_equal(actual["tokens"][row, :length], prompt_ids[row, :length])


@pytest.mark.parametrize("make_model", [_gpt, _gru], ids=["gpt", "gru"])
def test_xla_prefill_matches_graph_mode_step_by_step(make_model):
    model = make_model()
    prompt_ids, lengths = _prompts(MIXED, max_prompt_tokens=8, max_length=20)
    expected, _ = _both(model, _sampling, prompt_ids, lengths)
    _, xla = _both(model, _sampling, prompt_ids, lengths, jit_compile=True)
    _assert_same(expected, xla)


def test_xla_prefill_picks_among_several_length_buckets():
    # Context 40: the buckets 16, 32, 40, so prompts of 3 and 20 tokens take different branches.
    tf.random.set_seed(1)
    model = GPT(13, context_length=40, width=16, num_layers=1, num_heads=2, mlp_width=32)
    assert length_buckets(40) == [16, 32, 40]
    for rows in ([[3, 4]], [[5] * 20, [6]], [[7] * 35]):
        prompt_ids, lengths = _prompts(rows, max_prompt_tokens=38, max_length=48)
        expected, _ = _both(model, _sampling, prompt_ids, lengths)
        _, xla = _both(model, _sampling, prompt_ids, lengths, jit_compile=True)
        _assert_same(expected, xla)


def test_every_prompt_empty():
    model = _gpt()
    prompt_ids, lengths = _prompts([[], []], max_prompt_tokens=4, max_length=10)
    expected, actual = _both(model, _sampling, prompt_ids, lengths)
    _assert_same(expected, actual)


@pytest.mark.parametrize("make_model", [_gpt, _gru], ids=["gpt", "gru"])
def test_beam_search_matches_step_by_step_decoding(make_model):
    model = make_model()
    prompt_ids, lengths = _prompts(MIXED, max_prompt_tokens=8, max_length=16)

    def beams(batch):
        return BeamSearchStrategy(
            num_beams=3,
            end_id=END,
            pad_id=PAD,
            max_new_tokens=tf.fill([batch], 6),
            alpha=tf.fill([batch], 0.6),
        )

    expected, actual = _both(model, beams, prompt_ids, lengths)
    _assert_same(expected, actual)


def test_sampling_with_controls_matches_and_does_not_depend_on_the_batch():
    model = _gpt()
    prompt_ids, lengths = _prompts(MIXED, max_prompt_tokens=8, max_length=20)

    def controlled(batch):
        return _sampling(
            batch,
            temperature=1.0,
            repetition_penalty=tf.fill([batch], 1.3),
            no_repeat_ngram_size=tf.fill([batch], 2),
            token_log_probs=True,
            top_logprobs=2,
        )

    expected, actual = _both(model, controlled, prompt_ids, lengths)
    _assert_same(expected, actual)
    # Row 3 alone, with its own seed, samples what it sampled among the others.
    alone_ids, alone_lengths = _prompts([MIXED[3]], max_prompt_tokens=8, max_length=20)

    def alone(batch):
        strategy = controlled(batch)
        strategy.seeds = tf.constant([3 + 7])
        return strategy

    _, single = _both(model, alone, alone_ids, alone_lengths)
    np.testing.assert_array_equal(single["tokens"][0], actual["tokens"][3])


def test_a_graph_step_reads_a_length_bucket():
    """`bucket_of`: the smallest power of two that holds the length, at least 16, capped at
    the cache's size, for every length up to the cap."""
    lengths = tf.range(1, 301)
    buckets = bucket_of(lengths, 300).numpy()
    expected = [min(max(16, 2 ** int(np.ceil(np.log2(n)))), 300) for n in range(1, 301)]
    assert buckets.tolist() == expected
