"""Beam search against scripted logits: exact hypotheses, scores, length penalty, early stop."""

import numpy as np
import tensorflow as tf
from scripted import END, PAD, START, A, B, C, markov_step_fn
from test_sampling import run_sampling

from kerasgen.decoding import (
    BeamSearchStrategy,
    decode,
    generated_tokens,
    length_penalty,
    prepare_prompts,
)

# Greedy takes A (0.6) and then ends with 0.35: 0.21. Beam search finds B then end: 0.36.
TRANSITIONS = {
    START: {A: 0.6, B: 0.4},
    A: {END: 0.35, A: 0.33, B: 0.32},
    B: {END: 0.9, A: 0.05, C: 0.05},
    C: {C: 0.6, END: 0.4},
}


def run_beam(
    prompt_rows,
    *,
    num_beams=2,
    alpha=0.0,
    max_new=5,
    transitions=TRANSITIONS,
    jit=False,
    steps=None,
):
    n = len(prompt_rows)
    prompt_ids, prompt_lengths = prepare_prompts(
        tf.ragged.constant(prompt_rows, dtype=tf.int32, ragged_rank=1),
        start_id=START,
        pad_id=PAD,
        max_prompt_tokens=6,
        max_length=12,
    )
    strategy = BeamSearchStrategy(
        num_beams=num_beams,
        end_id=END,
        pad_id=PAD,
        max_new_tokens=tf.fill([n], max_new),
        alpha=tf.fill([n], float(alpha)),
    )
    step_fn = markov_step_fn(transitions)
    calls = []

    def counting_step(ids, state, index):
        calls.append(1)
        return step_fn(ids, state, index)

    def run():
        return decode(counting_step, strategy, tf.zeros([n], tf.int32), prompt_ids, prompt_lengths)

    out = tf.function(run, jit_compile=jit)() if jit else run()
    ids = generated_tokens(out["tokens"], out["prompt_lengths"], out["num_tokens"], END).to_list()
    return (
        [ids[i * num_beams : (i + 1) * num_beams] for i in range(n)],
        out["scores"].numpy(),
        out["num_tokens"].numpy(),
    )


def test_beam_search_finds_the_sequence_greedy_misses():
    greedy = run_sampling([[]], transitions=TRANSITIONS)[0][0]
    assert greedy == [A]
    hypotheses, scores, _ = run_beam([[]])
    assert hypotheses[0] == [[B], [A]]
    np.testing.assert_allclose(np.exp(scores[0]), [0.4 * 0.9, 0.6 * 0.35], rtol=1e-5)


def test_beam_width_one_equals_greedy():
    rows = [[], [A], [C], [B, A]]
    greedy = run_sampling(rows, transitions=TRANSITIONS)[0]
    hypotheses, _, _ = run_beam(rows, num_beams=1)
    assert [h[0] for h in hypotheses] == greedy


def _expected_ranking(p_continue, max_new, alpha, k):
    """Every hypothesis of the chain C→C (p_continue) / C→end, scored by the GNMT formula."""
    candidates = []
    for n in range(1, max_new + 1):  # n - 1 C tokens then end: n tokens generated
        log_prob = (n - 1) * np.log(p_continue) + np.log(1 - p_continue)
        candidates.append((log_prob / length_penalty(n, alpha).numpy(), [C] * (n - 1)))
    # max_new C tokens: finished by length, no end token.
    candidates.append(
        (max_new * np.log(p_continue) / length_penalty(max_new, alpha).numpy(), [C] * max_new)
    )
    return sorted(candidates, key=lambda c: -c[0])[:k]


def test_length_penalty_changes_the_ranking_as_the_formula_says():
    transitions = {START: {C: 1.0}, C: {C: 0.7, END: 0.3}}
    rankings = {}
    for alpha in (0.0, 2.0):
        expected = _expected_ranking(0.7, 5, alpha, 3)
        hypotheses, scores, _ = run_beam(
            [[C]], num_beams=3, alpha=alpha, max_new=5, transitions=transitions
        )
        assert hypotheses[0] == [tokens for _, tokens in expected], alpha
        np.testing.assert_allclose(scores[0], [score for score, _ in expected], rtol=1e-5)
        rankings[alpha] = hypotheses[0]
    assert rankings[0.0][0] == []  # without penalty the shortest wins
    assert rankings[0.0] != rankings[2.0]  # the penalty favours longer hypotheses


def test_end_token_freezes_finished_hypotheses_and_early_stop_saves_steps():
    transitions = {START: {B: 1.0}, B: {END: 0.9, A: 0.05, C: 0.05}, A: {A: 1.0}, C: {C: 1.0}}
    hypotheses, scores, _ = run_beam([[]], num_beams=2, max_new=8, transitions=transitions)
    assert hypotheses[0][0] == [B]
    # The loop ran far fewer than max_new steps: once both pool entries beat every alive beam,
    # it stops (eager run, so the Python step function counts real calls).
    prompt_ids, prompt_lengths = prepare_prompts(
        tf.ragged.constant([[]], dtype=tf.int32, ragged_rank=1),
        start_id=START,
        pad_id=PAD,
        max_prompt_tokens=2,
        max_length=12,
    )
    strategy = BeamSearchStrategy(
        num_beams=1, end_id=END, pad_id=PAD, max_new_tokens=[8], alpha=[0.0]
    )
    calls = []
    step_fn = markov_step_fn(transitions)
    decode(
        lambda i, s, x: (calls.append(1), step_fn(i, s, x))[1],
        strategy,
        tf.zeros([1], tf.int32),
        prompt_ids,
        prompt_lengths,
    )
    assert len(calls) == 2  # START→B, B→END; then no alive beam can beat log(0.9)


def test_beam_search_reorders_the_model_state():
    # The scripted state counts steps per row; after reordering every row's count is the same.
    prompt_ids, prompt_lengths = prepare_prompts(
        tf.ragged.constant([[], [A]], dtype=tf.int32, ragged_rank=1),
        start_id=START,
        pad_id=PAD,
        max_prompt_tokens=4,
        max_length=8,
    )
    strategy = BeamSearchStrategy(
        num_beams=3, end_id=END, pad_id=PAD, max_new_tokens=[3, 3], alpha=[0.0, 0.0]
    )
    seen = []
    step_fn = markov_step_fn(TRANSITIONS)

    def step(ids, state, index):
        seen.append(state.numpy().copy())
        np.testing.assert_array_equal(state.numpy(), np.full([6], int(index)))
        return step_fn(ids, state, index)

    decode(step, strategy, tf.zeros([2], tf.int32), prompt_ids, prompt_lengths)
    assert len(seen) >= 2


def test_beam_search_compiles_with_xla_and_agrees():
    rows = [[], [A], [C, B]]
    assert run_beam(rows, jit=True)[0] == run_beam(rows)[0]
