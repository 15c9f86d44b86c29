"""Greedy, temperature, top-k and top-p against scripted logits, with exact expected ids."""

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.decoding import choose_tokens, filter_logits, prepare_prompts


def test_greedy_follows_the_most_likely_path_from_each_rows_own_prompt(run_sampling, scripted):
    A, B, C = scripted.A, scripted.B, scripted.C
    ids, num_tokens, log_prob = run_sampling([[], [B], [C, C, A]])
    assert ids == [[A], [], []]
    np.testing.assert_array_equal(num_tokens, [2, 1, 1])  # end token counted
    np.testing.assert_allclose(np.exp(log_prob), [0.6 * 0.35, 0.9, 0.35], rtol=1e-5)


def test_prompt_padding_does_not_leak_between_rows(run_sampling, scripted):
    A, B, C = scripted.A, scripted.B, scripted.C
    alone = run_sampling([[C, C, A]])[0]
    batched = run_sampling([[], [C, C, A], [B, B, B, B]])[0]
    assert batched[1] == alone[0]


def test_max_new_tokens_per_row_and_finished_rows_stay_frozen(run_sampling, scripted):
    C = scripted.C
    ids, num_tokens, _ = run_sampling([[C], [C], [C]], max_new=[0, 1, 3])
    assert ids == [[], [C], [C, C, C]]
    np.testing.assert_array_equal(num_tokens, [0, 1, 3])


def test_top_k_one_equals_greedy_whatever_the_seed(run_sampling, scripted):
    A, B = scripted.A, scripted.B
    greedy = run_sampling([[], [A], [B]])[0]
    for seed in range(5):
        assert run_sampling([[], [A], [B]], temperature=1.0, top_k=1, seeds=[seed] * 3)[0] == greedy


def test_temperature_near_zero_equals_greedy(run_sampling, scripted):
    A = scripted.A
    greedy = run_sampling([[], [A]])[0]
    assert run_sampling([[], [A]], temperature=1e-6, seeds=[3, 4])[0] == greedy


def test_same_seed_same_sample_and_seeds_vary_samples(run_sampling, scripted):
    A = scripted.A
    rows = [[A]] * 8
    first = run_sampling(rows, temperature=1.0, seeds=list(range(8)), max_new=8)[0]
    second = run_sampling(rows, temperature=1.0, seeds=list(range(8)), max_new=8)[0]
    assert first == second
    assert len({tuple(r) for r in first}) > 1  # eight seeds do not all give the same text


def test_a_rows_sample_depends_on_its_seed_not_on_the_batch(run_sampling, scripted):
    A, B = scripted.A, scripted.B
    alone = run_sampling([[A]], temperature=1.0, seeds=[42], max_new=8)[0][0]
    batched = run_sampling([[B], [A], []], temperature=1.0, seeds=[7, 42, 9], max_new=8)[0][1]
    assert alone == batched


def test_sampling_frequencies_match_the_distribution(run_sampling, scripted):
    A = scripted.A
    # From START: A with 0.6, B with 0.4; 2000 seeds, one token each.
    ids = run_sampling([[]] * 2000, temperature=1.0, seeds=list(range(2000)), max_new=1)[0]
    share_a = np.mean([row == [A] for row in ids])
    assert abs(share_a - 0.6) < 0.04


def test_mixed_greedy_and_sampled_rows_in_one_batch(run_sampling, scripted):
    A = scripted.A
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


def test_xla_compiled_loop_gives_the_same_tokens(run_sampling, scripted):
    A, B, C = scripted.A, scripted.B, scripted.C
    args = dict(temperature=1.0, seeds=[1, 2, 3], max_new=6)
    assert (
        run_sampling([[], [A], [C, B]], jit=True, **args)[0]
        == run_sampling([[], [A], [C, B]], **args)[0]
    )


def test_empty_batch_returns_empty_outputs(run_sampling):
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
def test_bad_beam_width(bad, scripted):
    PAD, END = scripted.PAD, scripted.END
    from kerasgen.decoding import BeamSearchStrategy

    with pytest.raises(ValueError, match="num_beams"):
        BeamSearchStrategy(num_beams=bad, end_id=END, pad_id=PAD, max_new_tokens=[1], alpha=[0.0])
