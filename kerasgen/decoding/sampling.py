"""Token choice for greedy decoding, temperature sampling, top-k and top-p, per row.

Every parameter is a `[rows]` tensor, so one batch can mix greedy and sampled requests:
temperature 0 means greedy, top_k 0 means off, top_p 1 means off. Randomness comes from a
counter-based hash of (row seed, position, token id), so a row's sample depends only on its own
seed: the same request gives the same text whatever else is in the batch, and the ops are plain
integer arithmetic that XLA compiles everywhere.
"""

import tensorflow as tf

from kerasgen.decoding.logits_processors import apply_logits_processors, make_logits_processors
from kerasgen.decoding.stop_sequences import StopSequenceMatcher

_NEG_INF = -1e9  # finite, so masked rows never make NaNs in softmax or argmax


def _mix32(x):
    """The 32-bit finaliser of MurmurHash3: good avalanche from cheap integer ops."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x85EBCA6B, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 13))
    x = x * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def gumbel_noise(seeds, index, vocab_size):
    """Gumbel(0, 1) noise `[rows, vocab]` that depends only on (seed, index, token id).

    Args:
        seeds: int32 `[rows]`.
        index: int32 position, scalar or `[rows]`.
        vocab_size: scalar int.
    """
    row_key = _mix32(
        tf.bitcast(tf.cast(seeds, tf.int32), tf.uint32) ^ tf.constant(0x9E3779B9, tf.uint32)
    )
    step_key = _mix32(row_key ^ (tf.cast(index, tf.uint32) * tf.constant(0x27D4EB2F, tf.uint32)))
    token = tf.cast(tf.range(vocab_size), tf.uint32)[tf.newaxis, :]
    bits = _mix32(step_key[:, tf.newaxis] ^ (token * tf.constant(0x165667B1, tf.uint32)))
    # 24 high bits → uniform in (0, 1), never exactly 0 or 1.
    uniform = (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) / 16777216.0
    return -tf.math.log(-tf.math.log(uniform))


def filter_logits(logits, top_k, top_p):
    """Masks out (to a large negative value) every token outside the top-k and the nucleus.

    Top-k keeps the `k` most likely tokens (0 = off). Top-p keeps the smallest set of most
    likely tokens whose probability mass reaches `p` (1 = off), computed after top-k as in the
    usual order of these filters.

    Args:
        logits: float `[rows, vocab]` (already divided by the temperature).
        top_k: int32 `[rows]`.
        top_p: float32 `[rows]`.

    Returns:
        float `[rows, vocab]`.
    """
    vocab_size = tf.shape(logits)[-1]
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")  # [rows, vocab]
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab_size), vocab_size)
    kth_logit = tf.gather(sorted_logits, k - 1, batch_dims=1)  # [rows]
    in_top_k = tf.range(vocab_size)[tf.newaxis, :] < k[:, tf.newaxis]
    sorted_probs = tf.nn.softmax(tf.where(in_top_k, sorted_logits, _NEG_INF), axis=-1)
    mass_before = tf.math.cumsum(sorted_probs, axis=-1, exclusive=True)
    in_nucleus = (mass_before < top_p[:, tf.newaxis]) | (top_p[:, tf.newaxis] >= 1.0)
    nucleus_size = tf.reduce_sum(tf.cast(in_nucleus & in_top_k, tf.int32), axis=-1)
    threshold = tf.gather(sorted_logits, tf.maximum(nucleus_size, 1) - 1, batch_dims=1)
    threshold = tf.maximum(threshold, kth_logit)
    return tf.where(logits < threshold[:, tf.newaxis], _NEG_INF, logits)


def choose_tokens(logits, index, *, temperature, top_k, top_p, seeds):
    """Picks one token per row: greedy where temperature <= 0, else a filtered sample.

    Args:
        logits: float `[rows, vocab]`.
        index: int32 position, scalar or `[rows]` (varies the noise from step to step).
        temperature, top_p: float32 `[rows]`; top_k, seeds: int32 `[rows]`.

    Returns:
        int32 `[rows]`.
    """
    logits = tf.cast(logits, tf.float32)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    sampling = temperature > 0.0

    def sample():
        scaled = logits / tf.where(sampling, temperature, 1.0)[:, tf.newaxis]
        needs_filter = tf.reduce_any(sampling & ((top_k > 0) | (top_p < 1.0)))
        scaled = tf.cond(needs_filter, lambda: filter_logits(scaled, top_k, top_p), lambda: scaled)
        noise = gumbel_noise(seeds, index, tf.shape(logits)[-1])
        return tf.argmax(scaled + noise, axis=-1, output_type=tf.int32)

    # Greedy-only batches skip the sort and the noise entirely.
    sampled = tf.cond(tf.reduce_any(sampling), sample, lambda: greedy)
    return tf.where(sampling, sampled, greedy)


class SamplingStrategy:
    """Greedy, temperature, top-k and top-p decoding, one token per row per step.

    Args:
        end_id: the end token; a row that writes it is finished.
        pad_id: written after a row's end.
        max_new_tokens: int32 `[batch]`, the most tokens each row may generate (end included).
        temperature: float32 `[batch]`, 0 for greedy.
        top_k: int32 `[batch]`, 0 for off.
        top_p: float32 `[batch]`, 1 for off.
        seeds: int32 `[batch]`; the same seed gives the same sample.

    Generation controls, each off when left out (None adds no op to the loop) and, given as a
    tensor, off for the rows that hold its "off" value:
        repetition_penalty: float32 `[batch]`, positive; 1 is off (`RepetitionPenalty`).
        no_repeat_ngram_size: int32 `[batch]`; 0 is off (`NoRepeatNGram`).
        min_new_tokens: int32 `[batch]`; 0 is off. The end token is banned, and stop sequences
            are not matched, until the continuation they would end is this long.
        stop_sequences: int32 `[batch, K, L]`, up to `K` token sequences per row, each up to
            `L` tokens, left-aligned; with `stop_sequence_lengths`, int32 `[batch, K]` (0 for
            an unused slot). A row stops as soon as its continuation ends with one of them
            (the longest, if several end there). Only generated tokens are matched: a stop
            sequence that begins in the prompt does not count. The stop sequence is not
            returned: `num_tokens` and `log_prob` cover the continuation before it, and the
            buffer holds padding in its place.
        token_log_probs: Python bool, also return each generated token's log-probability.
        top_logprobs: Python int, also return the `top_logprobs` most likely tokens of every
            step with their log-probabilities (0 is off).

    The processors (repetition penalty, then the n-gram and minimum-length bans) change the
    logits the token is chosen from, before temperature and filtering. Every log-probability
    returned is the model's own, at temperature 1 before any processor or filter, so
    `log_prob` stays the model's log-probability of the text returned.

    `finalize` returns dense tensors only (so it compiles under XLA; cut the continuations out
    with `generated_tokens`, per-token values with `generated_values`): `tokens` (int32
    `[batch, max_length]`, prompt then continuation), `prompt_lengths` (int32 `[batch]`),
    `num_tokens` (int32 `[batch]`, generated tokens including the end token) and `log_prob`
    (float32 `[batch]`, the model's log-probability of those tokens at temperature 1, before
    any processor or filter). With the controls:
        stop_sequence_index: int32 `[batch]`, the stop sequence that ended the row, or -1
            (with `stop_sequences`).
        token_log_probs: float32 `[batch, max_length]`, aligned with `tokens`: each generated
            token's log-probability, 0 elsewhere; a row's values sum to its `log_prob`.
        top_token_ids: int32 `[batch, max_length, top_logprobs]` and top_log_probs: float32
            `[batch, max_length, top_logprobs]`, aligned with `tokens`, most likely first, at
            every generated position (`pad_id` and 0 elsewhere).
    """

    def __init__(
        self,
        *,
        end_id,
        pad_id,
        max_new_tokens,
        temperature,
        top_k,
        top_p,
        seeds,
        repetition_penalty=None,
        no_repeat_ngram_size=None,
        min_new_tokens=None,
        stop_sequences=None,
        stop_sequence_lengths=None,
        token_log_probs=False,
        top_logprobs=0,
    ):
        if (stop_sequences is None) != (stop_sequence_lengths is None):
            raise ValueError("stop_sequences and stop_sequence_lengths go together.")
        if not isinstance(top_logprobs, int) or top_logprobs < 0:
            raise ValueError(f"top_logprobs must be a Python int >= 0, got {top_logprobs!r}.")
        self.end_id = end_id
        self.pad_id = pad_id
        self.max_new_tokens = tf.cast(max_new_tokens, tf.int32)
        self.temperature = tf.cast(temperature, tf.float32)
        self.top_k = tf.cast(top_k, tf.int32)
        self.top_p = tf.cast(top_p, tf.float32)
        self.seeds = tf.cast(seeds, tf.int32)
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.min_new_tokens = None if min_new_tokens is None else tf.cast(min_new_tokens, tf.int32)
        self.stop_sequences = stop_sequences
        self.stop_sequence_lengths = stop_sequence_lengths
        self.token_log_probs = token_log_probs
        self.top_logprobs = top_logprobs
        self.logits_processors = make_logits_processors(
            end_id=end_id,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            min_new_tokens=min_new_tokens,
        )
        if stop_sequences is not None:
            self._stop_matcher = StopSequenceMatcher(stop_sequences, stop_sequence_lengths)

    def initialize(self, prompt_ids, prompt_lengths, model_state):
        batch = tf.shape(prompt_ids)[0]
        max_length = tf.shape(prompt_ids)[1]
        loop_state = {
            "tokens": tf.transpose(prompt_ids),  # [max_length, batch]: time-major for cheap rows
            "prompt_lengths": prompt_lengths,
            "finished": self.max_new_tokens <= 0,
            "num_generated": tf.zeros([batch], tf.int32),
            "log_prob": tf.zeros([batch], tf.float32),
            # Each row's position is `index - row_offsets`: 0 unless the prompts are
            # right-aligned (`decode_with_prefill` sets them), so the noise, which follows the
            # row's positions, does not depend on the other prompts of the batch.
            "row_offsets": tf.zeros([batch], tf.int32),
        }
        if self.stop_sequences is not None:
            loop_state.update(self._stop_matcher.initial_state(batch))
            loop_state["stop_sequence_index"] = tf.fill([batch], -1)
        if self.token_log_probs:
            loop_state["token_log_probs"] = tf.zeros([max_length, batch], tf.float32)
        if self.top_logprobs:
            top_shape = [max_length, batch, self.top_logprobs]
            loop_state["top_token_ids"] = tf.fill(top_shape, tf.constant(self.pad_id, tf.int32))
            loop_state["top_log_probs"] = tf.zeros(top_shape, tf.float32)
        return loop_state, model_state

    def input_ids(self, loop_state, index):
        return loop_state["tokens"][index]

    def is_done(self, loop_state, index):
        del index
        return tf.reduce_all(loop_state["finished"])

    def step(self, index, logits, loop_state, model_state):
        next_index = index + 1
        logits = tf.cast(logits, tf.float32)
        log_probs = tf.nn.log_softmax(logits)  # the model's own, whatever the processors do
        choice_logits = logits
        if self.logits_processors:
            choice_logits = apply_logits_processors(
                self.logits_processors,
                logits,
                tf.transpose(loop_state["tokens"]),
                index,
                loop_state["prompt_lengths"],
            )
        chosen = choose_tokens(
            choice_logits,
            index - loop_state["row_offsets"],
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            seeds=self.seeds,
        )
        existing = loop_state["tokens"][next_index]  # the prompt token, or padding
        generating = (next_index >= loop_state["prompt_lengths"]) & ~loop_state["finished"]
        next_ids = tf.where(generating, chosen, existing)
        token_log_prob = tf.where(generating, tf.gather(log_probs, chosen, batch_dims=1), 0.0)
        num_generated = loop_state["num_generated"] + tf.cast(generating, tf.int32)
        finished = loop_state["finished"] | (
            generating & ((chosen == self.end_id) | (num_generated >= self.max_new_tokens))
        )
        new_state = dict(loop_state)  # keys of other controls pass through
        new_state.update(
            tokens=tf.tensor_scatter_nd_update(
                loop_state["tokens"], [[next_index]], next_ids[tf.newaxis]
            ),
            finished=finished,
            num_generated=num_generated,
            log_prob=loop_state["log_prob"] + token_log_prob,
        )
        if self.stop_sequences is not None:
            new_state = self._match_stop_sequences(new_state, generating, chosen, token_log_prob)
        if self.token_log_probs:
            new_state["token_log_probs"] = tf.tensor_scatter_nd_update(
                loop_state["token_log_probs"], [[next_index]], token_log_prob[tf.newaxis]
            )
        if self.top_logprobs:
            top_log_probs, top_ids = tf.math.top_k(log_probs, k=self.top_logprobs)
            writing = generating[:, tf.newaxis]
            new_state["top_token_ids"] = tf.tensor_scatter_nd_update(
                loop_state["top_token_ids"],
                [[next_index]],
                tf.where(writing, top_ids, self.pad_id)[tf.newaxis],
            )
            new_state["top_log_probs"] = tf.tensor_scatter_nd_update(
                loop_state["top_log_probs"],
                [[next_index]],
                tf.where(writing, top_log_probs, 0.0)[tf.newaxis],
            )
        return new_state, model_state

    def _match_stop_sequences(self, loop_state, generating, chosen, token_log_prob):
        """Ends the rows whose continuation now ends with a stop sequence, and takes the stop
        sequence back out of `num_generated` and `log_prob`."""
        window = self._stop_matcher.push(loop_state, generating, chosen, token_log_prob)
        min_length = 0 if self.min_new_tokens is None else self.min_new_tokens
        stop_length, which, removed_log_prob = self._stop_matcher.match(
            window, loop_state["num_generated"], min_length
        )
        stopped = generating & (stop_length > 0)
        stop_length = tf.where(stopped, stop_length, 0)
        loop_state = dict(loop_state, **window)
        loop_state.update(
            finished=loop_state["finished"] | stopped,
            num_generated=loop_state["num_generated"] - stop_length,
            log_prob=loop_state["log_prob"] - tf.where(stopped, removed_log_prob, 0.0),
            stop_sequence_index=tf.where(stopped, which, loop_state["stop_sequence_index"]),
        )
        return loop_state

    def finalize(self, loop_state):
        tokens = tf.transpose(loop_state["tokens"])  # [batch, max_length]
        prompt_lengths = loop_state["prompt_lengths"]
        num_tokens = loop_state["num_generated"]
        result = {"prompt_lengths": prompt_lengths, "num_tokens": num_tokens}
        per_position = {"tokens": (tokens, self.pad_id)}
        if self.token_log_probs:
            per_position["token_log_probs"] = (tf.transpose(loop_state["token_log_probs"]), 0.0)
        if self.top_logprobs:
            for key, fill in (("top_token_ids", self.pad_id), ("top_log_probs", 0.0)):
                per_position[key] = (tf.transpose(loop_state[key], [1, 0, 2]), fill)
        for key, (values, fill) in per_position.items():
            if self.stop_sequences is not None:
                # A matched stop sequence stays in the buffer beyond `num_tokens`: clear it.
                values = _clear_after_continuation(values, prompt_lengths, num_tokens, fill)
            result[key] = values
        result["log_prob"] = loop_state["log_prob"]
        if self.stop_sequences is not None:
            result["stop_sequence_index"] = loop_state["stop_sequence_index"]
        return result


def _clear_after_continuation(values, prompt_lengths, num_tokens, fill):
    """`values` `[rows, max_length, ...]` with `fill` at positions after each continuation."""
    positions = tf.range(tf.shape(values)[1])[tf.newaxis, :]
    keep = positions < (prompt_lengths + num_tokens)[:, tf.newaxis]  # [rows, max_length]
    for _ in range(values.shape.rank - 2):
        keep = keep[..., tf.newaxis]
    return tf.where(keep, values, tf.cast(fill, values.dtype))
