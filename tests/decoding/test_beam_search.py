"""Beam search against scripted logits: exact hypotheses, scores, length penalty, early stop."""

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.decoding import (
    BeamSearchStrategy,
    decode,
    generated_tokens,
    length_penalty,
    prepare_prompts,
)


@pytest.fixture
def transitions(scripted):
    """Greedy takes A (0.6) and then ends with 0.35: 0.21. Beam search finds B then end: 0.36."""
    s = scripted
    return {
        s.START: {s.A: 0.6, s.B: 0.4},
        s.A: {s.END: 0.35, s.A: 0.33, s.B: 0.32},
        s.B: {s.END: 0.9, s.A: 0.05, s.C: 0.05},
        s.C: {s.C: 0.6, s.END: 0.4},
    }


@pytest.fixture
def run_beam(scripted, transitions):
    """Runs `BeamSearchStrategy` over the scripted model: `run(prompt_rows, *, num_beams,
    alpha, max_new, transitions, jit, **controls)` returns (the hypotheses of each request,
    best first, as Python lists; scores `[batch, num_beams]`; num_tokens)."""
    default_transitions = transitions

    def run(
        prompt_rows, *, num_beams=2, alpha=0.0, max_new=5, transitions=None, jit=False, **controls
    ):
        n = len(prompt_rows)
        prompt_ids, prompt_lengths = prepare_prompts(
            scripted.prompts(prompt_rows),
            start_id=scripted.START,
            pad_id=scripted.PAD,
            max_prompt_tokens=6,
            max_length=12,
        )
        step_fn = scripted.markov_step_fn(transitions or default_transitions)

        def loop():
            strategy = BeamSearchStrategy(
                num_beams=num_beams,
                end_id=scripted.END,
                pad_id=scripted.PAD,
                max_new_tokens=tf.fill([n], max_new),
                alpha=tf.fill([n], float(alpha)),
                **controls,
            )
            return decode(step_fn, strategy, tf.zeros([n], tf.int32), prompt_ids, prompt_lengths)

        out = tf.function(loop, jit_compile=True)() if jit else loop()
        ids = generated_tokens(
            out["tokens"], out["prompt_lengths"], out["num_tokens"], scripted.END
        ).to_list()
        return (
            [ids[i * num_beams : (i + 1) * num_beams] for i in range(n)],
            out["scores"].numpy(),
            out["num_tokens"].numpy(),
        )

    return run


def test_beam_search_finds_the_sequence_greedy_misses(
    run_beam, run_sampling, scripted, transitions
):
    A, B = scripted.A, scripted.B
    greedy = run_sampling([[]], transitions=transitions)[0][0]
    assert greedy == [A]
    hypotheses, scores, _ = run_beam([[]])
    assert hypotheses[0] == [[B], [A]]
    np.testing.assert_allclose(np.exp(scores[0]), [0.4 * 0.9, 0.6 * 0.35], rtol=1e-5)


def test_beam_width_one_equals_greedy(run_beam, run_sampling, scripted, transitions):
    A, B, C = scripted.A, scripted.B, scripted.C
    rows = [[], [A], [C], [B, A]]
    greedy = run_sampling(rows, transitions=transitions)[0]
    hypotheses, _, _ = run_beam(rows, num_beams=1)
    assert [h[0] for h in hypotheses] == greedy


def _expected_ranking(C, p_continue, max_new, alpha, k):
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


def test_length_penalty_changes_the_ranking_as_the_formula_says(run_beam, scripted):
    START, END, C = scripted.START, scripted.END, scripted.C
    transitions = {START: {C: 1.0}, C: {C: 0.7, END: 0.3}}
    rankings = {}
    for alpha in (0.0, 2.0):
        expected = _expected_ranking(C, 0.7, 5, alpha, 3)
        hypotheses, scores, _ = run_beam(
            [[C]], num_beams=3, alpha=alpha, max_new=5, transitions=transitions
        )
        assert hypotheses[0] == [tokens for _, tokens in expected], alpha
        np.testing.assert_allclose(scores[0], [score for score, _ in expected], rtol=1e-5)
        rankings[alpha] = hypotheses[0]
    assert rankings[0.0][0] == []  # without penalty the shortest wins
    assert rankings[0.0] != rankings[2.0]  # the penalty favours longer hypotheses


def test_end_token_freezes_finished_hypotheses_and_early_stop_saves_steps(run_beam, scripted):
    PAD, START, END = scripted.PAD, scripted.START, scripted.END
    A, B, C = scripted.A, scripted.B, scripted.C
    transitions = {START: {B: 1.0}, B: {END: 0.9, A: 0.05, C: 0.05}, A: {A: 1.0}, C: {C: 1.0}}
    hypotheses, scores, _ = run_beam([[]], num_beams=2, max_new=8, transitions=transitions)
    assert hypotheses[0][0] == [B]
    # The loop ran far fewer than max_new steps: once both pool entries beat every alive beam,
    # it stops (eager run, so the Python step function counts real calls).
    prompt_ids, prompt_lengths = prepare_prompts(
        scripted.prompts([[]]),
        start_id=START,
        pad_id=PAD,
        max_prompt_tokens=2,
        max_length=12,
    )
    strategy = BeamSearchStrategy(
        num_beams=1, end_id=END, pad_id=PAD, max_new_tokens=[8], alpha=[0.0]
    )
    calls = []
    step_fn = scripted.markov_step_fn(transitions)
    decode(
        lambda i, s, x: (calls.append(1), step_fn(i, s, x))[1],
        strategy,
        tf.zeros([1], tf.int32),
        prompt_ids,
        prompt_lengths,
    )
    assert len(calls) == 2  # START→B, B→END; then no alive beam can beat log(0.9)


def test_beam_search_reorders_the_model_state(scripted, transitions):
    # The scripted state counts steps per row; after reordering every row's count is the same.
    PAD, START, END, A = scripted.PAD, scripted.START, scripted.END, scripted.A
    prompt_ids, prompt_lengths = prepare_prompts(
        scripted.prompts([[], [A]]),
        start_id=START,
        pad_id=PAD,
        max_prompt_tokens=4,
        max_length=8,
    )
    strategy = BeamSearchStrategy(
        num_beams=3, end_id=END, pad_id=PAD, max_new_tokens=[3, 3], alpha=[0.0, 0.0]
    )
    seen = []
    step_fn = scripted.markov_step_fn(transitions)

    def step(ids, state, index):
        seen.append(state.numpy().copy())
        np.testing.assert_array_equal(state.numpy(), np.full([6], int(index)))
        return step_fn(ids, state, index)

    decode(step, strategy, tf.zeros([2], tf.int32), prompt_ids, prompt_lengths)
    assert len(seen) >= 2


def test_beam_search_compiles_with_xla_and_agrees(run_beam, scripted):
    A, B, C = scripted.A, scripted.B, scripted.C
    rows = [[], [A], [C, B]]
    assert run_beam(rows, jit=True)[0] == run_beam(rows)[0]
