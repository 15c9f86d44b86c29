"""Greedy, temperature, top-k and top-p against scripted logits, with exact expected ids."""

import numpy as np
import pytest
import tensorflow as tf
from scripted import END, PAD, START, A, B, C, markov_step_fn

from kerasgen.decoding import (
    SamplingStrategy,
    choose_tokens,
    decode,
    filter_logits,
    generated_tokens,
    prepare_prompts,
)

TRANSITIONS = {
    START: {A: 0.6, B: 0.4},
    A: {END: 0.35, A: 0.33, B: 0.32},
    B: {END: 0.9, A: 0.05, C: 0.05},
    C: {C: 1.0},
}


def run_sampling(
    prompt_rows,
    *,
    max_new=5,
    temperature=0.0,
    top_k=0,
    top_p=1.0,
    seeds=None,
    max_length=12,
    jit=False,
    transitions=TRANSITIONS,
):
    n = len(prompt_rows)
    prompt_ids, prompt_lengths = (
        prepare_prompts(
            tf.ragged.constant(prompt_rows, dtype=tf.int32, ragged_rank=1)
            if n
            else tf.zeros([0, 0], tf.int32),
            start_id=START,
            pad_id=PAD,
            max_prompt_tokens=6,
            max_length=max_length,
        )
        if n
        else (tf.zeros([0, max_length], tf.int32), tf.zeros([0], tf.int32))
    )
    strategy = SamplingStrategy(
        end_id=END,
        pad_id=PAD,
        max_new_tokens=tf.fill([n], max_new) if np.isscalar(max_new) else tf.constant(max_new),
        temperature=tf.fill([n], float(temperature))
        if np.isscalar(temperature)
        else tf.constant(temperature, tf.float32),
        top_k=tf.fill([n], top_k),
        top_p=tf.fill([n], float(top_p)),
        seeds=tf.constant(seeds if seeds is not None else [0] * n, tf.int32),
    )

    def run():
        out = decode(
            markov_step_fn(transitions),
            strategy,
            tf.zeros([n], tf.int32),
            prompt_ids,
            prompt_lengths,
        )
        return out

    out = tf.function(run, jit_compile=jit)() if jit else run()
    ids = generated_tokens(out["tokens"], out["prompt_lengths"], out["num_tokens"], END)
    return ids.to_list(), out["num_tokens"].numpy(), out["log_prob"].numpy()


def test_greedy_follows_the_most_likely_path_from_each_rows_own_prompt():
    ids, num_tokens, log_prob = run_sampling([[], [B], [C, C, A]])
    assert ids == [[A], [], []]
    np.testing.assert_array_equal(num_tokens, [2, 1, 1])  # end token counted
    np.testing.assert_allclose(np.exp(log_prob), [0.6 * 0.35, 0.9, 0.35], rtol=1e-5)


def test_prompt_padding_does_not_leak_between_rows():
    alone = run_sampling([[C, C, A]])[0]
    batched = run_sampling([[], [C, C, A], [B, B, B, B]])[0]
    assert batched[1] == alone[0]


def test_max_new_tokens_per_row_and_finished_rows_stay_frozen():
    ids, num_tokens, _ = run_sampling([[C], [C], [C]], max_new=[0, 1, 3])
    assert ids == [[], [C], [C, C, C]]
    np.testing.assert_array_equal(num_tokens, [0, 1, 3])


def test_top_k_one_equals_greedy_whatever_the_seed():
    greedy = run_sampling([[], [A], [B]])[0]
    for seed in range(5):
        assert run_sampling([[], [A], [B]], temperature=1.0, top_k=1, seeds=[seed] * 3)[0] == greedy


def test_temperature_near_zero_equals_greedy():
    greedy = run_sampling([[], [A]])[0]
    assert run_sampling([[], [A]], temperature=1e-6, seeds=[3, 4])[0] == greedy


def test_same_seed_same_sample_and_seeds_vary_samples():
    rows = [[A]] * 8
    first = run_sampling(rows, temperature=1.0, seeds=list(range(8)), max_new=8)[0]
    second = run_sampling(rows, temperature=1.0, seeds=list(range(8)), max_new=8)[0]
    assert first == second
    assert len({tuple(r) for r in first}) > 1  # eight seeds do not all give the same text


def test_a_rows_sample_depends_on_its_seed_not_on_the_batch():
    alone = run_sampling([[A]], temperature=1.0, seeds=[42], max_new=8)[0][0]
    batched = run_sampling([[B], [A], []], temperature=1.0, seeds=[7, 42, 9], max_new=8)[0][1]
    assert alone == batched


def test_sampling_frequencies_match_the_distribution():
    # From START: A with 0.6, B with 0.4; 2000 seeds, one token each.
    ids = run_sampling([[]] * 2000, temperature=1.0, seeds=list(range(2000)), max_new=1)[0]
    share_a = np.mean([row == [A] for row in ids])
    assert abs(share_a - 0.6) < 0.04


def test_mixed_greedy_and_sampled_rows_in_one_batch():
    ids = run_sampling([[], []], temperature=[0.0, 1.0], seeds=[0, 1])[0]
    assert ids[0] == [A]


def test_filter_logits_keeps_exactly_the_nucleus():
    probs = np.array([[0.5, 0.25, 0.15, 0.1]], np.float32)
    logits = tf.math.log(probs)
    for top_p, kept in [(0.5, 1), (0.6, 2), (0.75, 2), (0.76, 3), (0.9, 3), (0.95, 4), (1.0, 4)]:
        filtered = filter_logits(logits, tf.constant([0]), tf.constant([top_p]))
        assert int(np.sum(filtered.numpy() > -1e8)) == kept, top_p


def test_filter_logits_top_k_then_top_p():
    logits = tf.math.log(tf.constant([[0.1, 0.4, 0.3, 0.2]]))
    filtered = filter_logits(logits, tf.constant([2]), tf.constant([1.0])).numpy()
    np.testing.assert_array_equal(filtered[0] > -1e8, [False, True, True, False])
    # Within the top-2 (renormalised 4/7, 3/7), p=0.5 keeps only the first.
    filtered = filter_logits(logits, tf.constant([2]), tf.constant([0.5])).numpy()
    np.testing.assert_array_equal(filtered[0] > -1e8, [False, True, False, False])


def test_choose_tokens_never_picks_outside_top_k():
    logits = tf.tile(tf.math.log(tf.constant([[0.1, 0.4, 0.3, 0.2]])), [500, 1])
    chosen = choose_tokens(
        logits,
        tf.constant(3),
        temperature=tf.fill([500], 5.0),
        top_k=tf.fill([500], 2),
        top_p=tf.ones([500]),
        seeds=tf.range(500),
    ).numpy()
    assert set(chosen) == {1, 2}


def test_xla_compiled_loop_gives_the_same_tokens():
    args = dict(temperature=1.0, seeds=[1, 2, 3], max_new=6)
    assert (
        run_sampling([[], [A], [C, B]], jit=True, **args)[0]
        == run_sampling([[], [A], [C, B]], **args)[0]
    )


def test_empty_batch_returns_empty_outputs():
    ids, num_tokens, log_prob = run_sampling([])
    assert ids == [] and num_tokens.shape == (0,) and log_prob.shape == (0,)


def test_prepare_prompts_left_truncates_and_keeps_the_start_token():
    ids, lengths = prepare_prompts(
        tf.ragged.constant([[3, 4, 5, 6, 7], []], dtype=tf.int32),
        start_id=1,
        pad_id=0,
        max_prompt_tokens=3,
        max_length=5,
    )
    np.testing.assert_array_equal(ids.numpy(), [[1, 6, 7, 0, 0], [1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(lengths.numpy(), [3, 1])


@pytest.mark.parametrize("bad", [-1])
def test_bad_beam_width(bad):
    from kerasgen.decoding import BeamSearchStrategy

    with pytest.raises(ValueError, match="num_beams"):
        BeamSearchStrategy(num_beams=bad, end_id=END, pad_id=PAD, max_new_tokens=[1], alpha=[0.0])
