"""Generation controls of the sampling and beam strategies against scripted logits: stop
sequences, repetition penalty, no-repeat n-grams, minimum length, several samples, per-token
log-probabilities; exact expected ids."""

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.decoding import (
    BeamSearchStrategy,
    RepetitionPenalty,
    SamplingStrategy,
    decode,
    generated_tokens,
    generated_values,
    group_samples,
    prepare_prompts,
    repeat_rows,
    sample_seeds,
)


@pytest.fixture
def cycle(scripted):
    """Greedy cycles A B C A B C ... from the start; B always goes to C under greedy."""
    s = scripted
    return {
        s.START: {s.A: 0.7, s.B: 0.3},
        s.A: {s.B: 0.8, s.END: 0.2},
        s.B: {s.C: 0.6, s.A: 0.4},
        s.C: {s.A: 0.9, s.END: 0.1},
    }


@pytest.fixture
def branching(scripted):
    """Greedy repeats the bigram (A, B); every token has second choices."""
    s = scripted
    return {
        s.START: {s.A: 0.6, s.B: 0.4},
        s.A: {s.B: 0.5, s.C: 0.3, s.END: 0.2},
        s.B: {s.C: 0.6, s.A: 0.3, s.END: 0.1},
        s.C: {s.A: 0.5, s.B: 0.3, s.C: 0.15, s.END: 0.05},
    }


def stops(rows, width=3):
    """Python lists of stop sequences per row → (int32 `[batch, K, width]`, lengths `[batch, K]`)."""
    k = max(1, max(len(r) for r in rows))
    ids = np.zeros([len(rows), k, width], np.int32)
    lengths = np.zeros([len(rows), k], np.int32)
    for b, row in enumerate(rows):
        for j, sequence in enumerate(row):
            ids[b, j, : len(sequence)] = sequence
            lengths[b, j] = len(sequence)
    return tf.constant(ids), tf.constant(lengths)


def test_a_stop_sequence_of_several_tokens_stops_there_and_is_excluded(
    decode_sampling, scripted, cycle
):
    A, B, C = scripted.A, scripted.B, scripted.C
    stop_ids, stop_lengths = stops([[[C, C], [B, C]], [], [[C, A, B]]])
    out = decode_sampling(
        [[], [], []],
        transitions=cycle,
        max_new=7,
        stop_sequences=stop_ids,
        stop_sequence_lengths=stop_lengths,
    )
    # Greedy: A B C A B C A. Row 0 stops at "B C" (its second sequence), row 2 at "C A B".
    assert out["ids"] == [[A], [A, B, C, A, B, C, A], [A, B]]
    np.testing.assert_array_equal(out["num_tokens"], [1, 7, 2])
    np.testing.assert_array_equal(out["stop_sequence_index"], [1, -1, 0])
    np.testing.assert_allclose(
        np.exp(out["log_prob"]),
        [0.7, 0.7 * 0.8 * 0.6 * 0.9 * 0.8 * 0.6 * 0.9, 0.7 * 0.8],
        rtol=1e-5,
    )
    # The buffer holds padding where the stop sequence was.
    np.testing.assert_array_equal(out["tokens"][0, :5], [scripted.START, A, 0, 0, 0])


def test_a_stop_sequence_split_across_prompt_and_continuation_does_not_count(
    decode_sampling, scripted, cycle
):
    A, B, C = scripted.A, scripted.B, scripted.C
    # The prompt ends with B and the continuation starts with C: "B C" is only matched once
    # both of its tokens are generated.
    stop_ids, stop_lengths = stops([[[B, C]]])
    out = decode_sampling(
        [[A, B]],
        transitions=cycle,
        max_new=8,
        stop_sequences=stop_ids,
        stop_sequence_lengths=stop_lengths,
    )
    assert out["ids"] == [[C, A]]  # C A B C: stopped at the generated "B C"
    np.testing.assert_allclose(np.exp(out["log_prob"]), [0.6 * 0.9], rtol=1e-5)


def test_no_repeat_ngram_size_two_never_repeats_a_bigram_where_greedy_would(
    decode_sampling, scripted, branching
):
    A, B, C = scripted.A, scripted.B, scripted.C
    rows = [[], [B, C], []]
    greedy = decode_sampling(rows, transitions=branching, max_new=10)["ids"]
    assert greedy[0] == [A, B, C, A, B, C, A, B, C, A]
    out = decode_sampling(
        rows, transitions=branching, max_new=10, no_repeat_ngram_size=tf.constant([2, 2, 0])
    )
    # After S A B C A, B would repeat (A, B): the next best, C; and so on, until after the
    # last A every continuation is taken and the end token remains.
    assert out["ids"][0] == [A, B, C, A, C, B, A]
    # The prompt's bigrams count too: (B, C) is banned from the start.
    assert out["ids"][1] == [A, B, A, C, B]
    assert out["ids"][2] == greedy[2]  # size 0 is off, in the same batch
    for prompt, continuation in zip(rows[:2], out["ids"][:2], strict=True):
        sequence = [scripted.START, *prompt, *continuation, scripted.END]
        bigrams = list(zip(sequence, sequence[1:], strict=False))
        assert len(bigrams) == len(set(bigrams))


def test_no_repeat_ngram_sizes_three_and_one(decode_sampling, scripted, branching):
    A, B, C = scripted.A, scripted.B, scripted.C
    out = decode_sampling(
        [[], [B, C]], transitions=branching, max_new=10, no_repeat_ngram_size=tf.constant([3, 1])
    )
    # Size 3: S A B C A B, then C would repeat (A, B, C); size 1: no token seen may come again.
    assert out["ids"] == [[A, B, C, A, B, A, B], [A]]


def test_repetition_penalty_changes_the_argmax_exactly_as_the_formula_says(
    decode_sampling, scripted
):
    A, B = scripted.A, scripted.B
    # After A, greedy picks A again: log 0.5 > log 0.4. The penalty multiplies the (negative)
    # logit of the token already seen, so B wins exactly when penalty > log 0.4 / log 0.5.
    transitions = {scripted.START: {A: 1.0}, A: {A: 0.5, B: 0.4, scripted.END: 0.1}}
    threshold = np.log(0.4) / np.log(0.5)  # 1.3219
    penalties = [1.0, threshold - 0.01, threshold + 0.01]
    out = decode_sampling(
        [[A]] * 3, transitions=transitions, max_new=1, repetition_penalty=tf.constant(penalties)
    )
    assert out["ids"] == [[A], [A], [B]]
    # log_prob stays the model's own.
    np.testing.assert_allclose(np.exp(out["log_prob"]), [0.5, 0.5, 0.4], rtol=1e-5)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = tf.constant([[3.0, 2.0, -1.0, -1.5, 0.5]])
    # Positions 0-3 hold tokens 0, 2 and 4; tokens 1 and 3 come after `index`, not seen yet.
    tokens = tf.constant([[0, 2, 4, 4, 1, 3]])
    penalized = RepetitionPenalty(tf.constant([2.0]))(logits, tokens, 3, tf.constant([2]))
    np.testing.assert_allclose(penalized.numpy(), [[1.5, 2.0, -2.0, -1.5, 0.25]])
    assert int(tf.argmax(penalized[0])) == 1  # was 0


def test_min_new_tokens_delays_an_end_token_the_model_wants_at_step_one(decode_sampling, scripted):
    A, B, C, END = scripted.A, scripted.B, scripted.C, scripted.END
    transitions = {
        scripted.START: {END: 0.7, A: 0.3},
        A: {END: 0.6, B: 0.4},
        B: {END: 0.5, C: 0.5},
    }
    out = decode_sampling(
        [[], [], []], transitions=transitions, min_new_tokens=tf.constant([0, 1, 2])
    )
    assert out["ids"] == [[], [A], [A, B]]
    np.testing.assert_array_equal(out["num_tokens"], [1, 2, 3])  # the end token counted
    np.testing.assert_allclose(
        np.exp(out["log_prob"]), [0.7, 0.3 * 0.6, 0.3 * 0.4 * 0.5], rtol=1e-5
    )


def test_min_new_tokens_also_holds_back_stop_sequences(decode_sampling, scripted, cycle):
    A, B, C = scripted.A, scripted.B, scripted.C
    stop_ids, stop_lengths = stops([[[B]], [[B]]])
    out = decode_sampling(
        [[], []],
        transitions=cycle,
        max_new=8,
        min_new_tokens=tf.constant([0, 2]),
        stop_sequences=stop_ids,
        stop_sequence_lengths=stop_lengths,
    )
    # Row 1: "A B" leaves one token before the stop sequence, too few; "A B C A B" four.
    assert out["ids"] == [[A], [A, B, C, A]]


def test_beam_width_one_with_the_processors_equals_greedy_with_them(
    decode_sampling, scripted, branching
):
    rows = [[], [scripted.B, scripted.C], [scripted.A]]
    controls = dict(
        no_repeat_ngram_size=tf.constant([2, 3, 0]),
        repetition_penalty=tf.constant([1.0, 1.0, 3.0]),
        min_new_tokens=tf.constant([0, 6, 5]),
    )
    greedy = decode_sampling(rows, transitions=branching, max_new=10, **controls)["ids"]
    prompt_ids, prompt_lengths = prepare_prompts(
        scripted.prompts(rows),
        start_id=scripted.START,
        pad_id=scripted.PAD,
        max_prompt_tokens=6,
        max_length=12,
    )
    strategy = BeamSearchStrategy(
        num_beams=1,
        end_id=scripted.END,
        pad_id=scripted.PAD,
        max_new_tokens=tf.fill([3], 10),
        alpha=tf.zeros([3]),
        **controls,
    )
    out = decode(
        scripted.markov_step_fn(branching),
        strategy,
        tf.zeros([3], tf.int32),
        prompt_ids,
        prompt_lengths,
    )
    beams = generated_tokens(out["tokens"], out["prompt_lengths"], out["num_tokens"], scripted.END)
    assert beams.to_list() == greedy
    A, B, C = scripted.A, scripted.B, scripted.C
    assert greedy == [
        [A, B, C, A, C, B, A],  # as in the bigram test above
        [A, B, C, B, C, C, A, C, A],  # no trigram twice, from the prompt B C on
        # After S A B C A, B (seen) falls to 3 log 0.5 below the end token's log 0.2, but
        # only 4 tokens are out; after the second A, the end token comes.
        [B, C, A, B, C, A],
    ]


def _decode_samples(scripted, transitions, prompt_rows, seeds, num_samples, max_new=6):
    """Several samples per prompt: rows repeated, seeds derived, outputs regrouped."""
    n = len(prompt_rows)
    prompt_ids, prompt_lengths = prepare_prompts(
        scripted.prompts(prompt_rows),
        start_id=scripted.START,
        pad_id=scripted.PAD,
        max_prompt_tokens=6,
        max_length=12,
    )
    temperature = tf.ones([n])
    prompt_ids, prompt_lengths, temperature = repeat_rows(
        (prompt_ids, prompt_lengths, temperature), num_samples
    )
    rows = n * num_samples
    strategy = SamplingStrategy(
        end_id=scripted.END,
        pad_id=scripted.PAD,
        max_new_tokens=tf.fill([rows], max_new),
        temperature=temperature,
        top_k=tf.zeros([rows], tf.int32),
        top_p=tf.ones([rows]),
        seeds=sample_seeds(tf.constant(seeds), num_samples),
    )
    out = decode(
        scripted.markov_step_fn(transitions),
        strategy,
        tf.zeros([rows], tf.int32),
        prompt_ids,
        prompt_lengths,
    )
    ids = generated_tokens(out["tokens"], out["prompt_lengths"], out["num_tokens"], scripted.END)
    grouped = group_samples(out, num_samples)
    assert grouped["tokens"].shape == (n, num_samples, 12)
    assert grouped["log_prob"].shape == (n, num_samples)
    samples = ids.to_list()
    return [samples[b * num_samples : (b + 1) * num_samples] for b in range(n)], grouped


def test_four_samples_from_one_seed_are_distinct_and_each_reproducible_alone(scripted):
    s = scripted
    uniform = {t: {s.A: 0.34, s.B: 0.33, s.C: 0.33} for t in (s.START, s.A, s.B, s.C)}
    samples, grouped = _decode_samples(scripted, uniform, [[s.A], [s.B]], [7, 8], 4)
    assert len({tuple(sample) for sample in samples[0]}) == 4
    assert samples == _decode_samples(scripted, uniform, [[s.A], [s.B]], [7, 8], 4)[0]
    derived = sample_seeds(tf.constant([7]), 4).numpy()
    assert derived[0] == 7 and (derived >= 0).all()
    for i, seed in enumerate(derived):
        alone, alone_out = _decode_samples(scripted, uniform, [[s.A]], [int(seed)], 1)
        assert alone[0][0] == samples[0][i]
        np.testing.assert_allclose(
            alone_out["log_prob"][0, 0], grouped["log_prob"][0, i], rtol=1e-6
        )


def test_per_token_log_probs_sum_to_log_prob_and_top_logprobs_rank_the_model(
    decode_sampling, scripted, branching
):
    A, B, C, END = scripted.A, scripted.B, scripted.C, scripted.END
    stop_ids, stop_lengths = stops([[[C, A]], [], [], []])
    out = decode_sampling(
        [[], [], [B], [A]],
        transitions=branching,
        max_new=6,
        temperature=[0.0, 1.0, 1.0, 0.0],
        seeds=[0, 5, 6, 0],
        min_new_tokens=tf.constant([0, 0, 1, 0]),
        stop_sequences=stop_ids,
        stop_sequence_lengths=stop_lengths,
        token_log_probs=True,
        top_logprobs=2,
    )
    np.testing.assert_allclose(out["token_log_probs"].sum(axis=1), out["log_prob"], rtol=1e-5)
    per_token = generated_values(
        tf.constant(out["token_log_probs"]), out["prompt_lengths"], out["num_tokens"], 6
    ).numpy()
    top_ids = generated_values(
        tf.constant(out["top_token_ids"]),
        out["prompt_lengths"],
        out["num_tokens"],
        6,
        scripted.PAD,
    ).numpy()
    top_log_probs = generated_values(
        tf.constant(out["top_log_probs"]), out["prompt_lengths"], out["num_tokens"], 6
    ).numpy()
    assert per_token.shape == (4, 6) and top_ids.shape == top_log_probs.shape == (4, 6, 2)
    # Row 0, greedy A B C A B C with "C A" stopping it: A B returned (0.6 then 0.5).
    assert out["ids"][0] == [A, B]
    np.testing.assert_allclose(np.exp(per_token[0]), [0.6, 0.5, 1, 1, 1, 1], rtol=1e-5)
    np.testing.assert_array_equal(top_ids[0, :2], [[A, B], [B, C]])
    np.testing.assert_allclose(np.exp(top_log_probs[0, :2]), [[0.6, 0.4], [0.5, 0.3]], rtol=1e-5)
    np.testing.assert_array_equal(top_ids[0, 2:], 0)
    # Row 3 from A: B C A B C A, every token the model's first choice.
    np.testing.assert_array_equal(top_ids[3, :, 0], [B, C, A, B, C, A])
    np.testing.assert_allclose(per_token[3], top_log_probs[3, :, 0], rtol=1e-6)
    # Every generated token's value is the model's probability of it given the one before.
    for row, prompt in enumerate([[], [], [B], [A]]):
        ended = int(out["num_tokens"][row] > len(out["ids"][row]))
        sequence = [scripted.START, *prompt][-1:] + out["ids"][row] + [END] * ended
        expected = [branching[a][b] for a, b in zip(sequence, sequence[1:], strict=False)]
        np.testing.assert_allclose(np.exp(per_token[row, : len(expected)]), expected, rtol=1e-5)


def test_every_control_off_gives_todays_outputs(decode_sampling, scripted):
    A, B, C, END = scripted.A, scripted.B, scripted.C, scripted.END
    transitions = {
        scripted.START: {A: 0.5, B: 0.3, C: 0.2},
        A: {END: 0.2, A: 0.3, B: 0.3, C: 0.2},
        B: {END: 0.3, A: 0.3, C: 0.4},
        C: {C: 0.5, A: 0.3, END: 0.2},
    }
    args = dict(
        transitions=transitions,
        max_new=[9, 10, 6, 10, 8],
        temperature=[0.0, 1.0, 0.7, 1.3, 1.0],
        top_k=[0, 0, 2, 3, 0],
        top_p=[1.0, 1.0, 0.9, 1.0, 0.6],
        seeds=[3, 10, 17, 24, 31],
        max_length=16,
    )
    rows = [[], [A], [C, B], [B, B, A], []]
    plain = decode_sampling(rows, **args)
    # Recorded with the decoder as it was before the controls existed.
    assert plain["ids"] == [[A] * 9, [C, C, A, B], [C] * 6, [C, A, C], [B]]
    np.testing.assert_allclose(
        plain["log_prob"], [-10.324929, -5.9145036, -4.3820267, -6.0322866, -2.4079456], rtol=1e-6
    )
    stop_ids, stop_lengths = stops([[]] * 5)
    off = decode_sampling(
        rows,
        **args,
        repetition_penalty=tf.ones([5]),
        no_repeat_ngram_size=tf.zeros([5], tf.int32),
        min_new_tokens=tf.zeros([5], tf.int32),
        stop_sequences=stop_ids,
        stop_sequence_lengths=stop_lengths,
        token_log_probs=True,
        top_logprobs=3,
    )
    for key in ("tokens", "prompt_lengths", "num_tokens", "log_prob"):
        np.testing.assert_array_equal(off[key], plain[key], err_msg=key)
    np.testing.assert_array_equal(off["stop_sequence_index"], -1)


def test_the_controls_under_xla_give_the_graphs_outputs(decode_sampling, scripted, branching):
    A, B, C = scripted.A, scripted.B, scripted.C
    stop_ids, stop_lengths = stops([[[C, A]], [[B, B, C], [A]], [], []])
    args = dict(
        transitions=branching,
        max_new=9,
        temperature=[0.0, 1.0, 0.8, 1.0],
        top_k=[0, 0, 2, 0],
        seeds=[0, 5, 6, 7],
        repetition_penalty=tf.constant([1.0, 1.3, 1.0, 2.0]),
        no_repeat_ngram_size=tf.constant([2, 0, 3, 1]),
        min_new_tokens=tf.constant([0, 3, 1, 0]),
        stop_sequences=stop_ids,
        stop_sequence_lengths=stop_lengths,
        token_log_probs=True,
        top_logprobs=2,
    )
    rows = [[], [A, B], [B], [C]]
    graph = decode_sampling(rows, **args)
    xla = decode_sampling(rows, jit=True, **args)
    assert xla["ids"] == graph["ids"]
    for key, value in graph.items():
        if key == "ids":
            continue
        if value.dtype.kind == "f":  # XLA may fuse the log-softmax differently
            np.testing.assert_allclose(xla[key], value, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(xla[key], value, err_msg=key)


def test_beam_search_processors_under_xla_agree(scripted, branching):
    prompt_ids, prompt_lengths = prepare_prompts(
        scripted.prompts([[], [scripted.B]]),
        start_id=scripted.START,
        pad_id=scripted.PAD,
        max_prompt_tokens=6,
        max_length=12,
    )

    def loop():
        strategy = BeamSearchStrategy(
            num_beams=3,
            end_id=scripted.END,
            pad_id=scripted.PAD,
            max_new_tokens=tf.fill([2], 8),
            alpha=tf.fill([2], 0.6),
            repetition_penalty=tf.constant([1.2, 1.0]),
            no_repeat_ngram_size=tf.constant([2, 1]),
            min_new_tokens=tf.constant([3, 0]),
        )
        step_fn = scripted.markov_step_fn(branching)
        return decode(step_fn, strategy, tf.zeros([2], tf.int32), prompt_ids, prompt_lengths)

    graph, xla = loop(), tf.function(loop, jit_compile=True)()
    np.testing.assert_array_equal(xla["tokens"].numpy(), graph["tokens"].numpy())
    np.testing.assert_allclose(xla["scores"].numpy(), graph["scores"].numpy(), atol=1e-6)
    hypotheses = generated_tokens(
        graph["tokens"], graph["prompt_lengths"], graph["num_tokens"], scripted.END
    ).to_list()
    for hypothesis in hypotheses[:3]:  # request 0: no bigram twice, at least 3 tokens
        sequence = [scripted.START, *hypothesis]
        bigrams = list(zip(sequence, sequence[1:], strict=False))
        assert len(bigrams) == len(set(bigrams)) and len(hypothesis) >= 3
    for hypothesis in hypotheses[3:]:  # request 1: no token twice
        assert len(set([scripted.B, *hypothesis])) == len(hypothesis) + 1


def test_bad_control_arguments_name_the_problem(scripted):
    common = dict(
        end_id=scripted.END,
        pad_id=scripted.PAD,
        max_new_tokens=[1],
        temperature=[0.0],
        top_k=[0],
        top_p=[1.0],
        seeds=[0],
    )
    with pytest.raises(ValueError, match="stop_sequence_lengths"):
        SamplingStrategy(**common, stop_sequences=tf.zeros([1, 1, 2], tf.int32))
    with pytest.raises(ValueError, match="top_logprobs"):
        SamplingStrategy(**common, top_logprobs=-1)
    with pytest.raises(ValueError, match="stop_sequences must be"):
        SamplingStrategy(
            **common,
            stop_sequences=tf.zeros([1, 2], tf.int32),
            stop_sequence_lengths=tf.zeros([1, 1], tf.int32),
        )
