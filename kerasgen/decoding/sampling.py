"""Token choice for greedy decoding, temperature sampling, top-k and top-p, per row.

Every parameter is a `[rows]` tensor, so one batch can mix greedy and sampled requests:
temperature 0 means greedy, top_k 0 means off, top_p 1 means off. Randomness comes from a
counter-based hash of (row seed, position, token id), so a row's sample depends only on its own
seed: the same request gives the same text whatever else is in the batch, and the ops are plain
integer arithmetic that XLA compiles everywhere.
"""

import tensorflow as tf

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
        index: scalar int32 position.
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
        index: scalar int32 position (varies the noise from step to step).
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

    `finalize` returns dense tensors only (so it compiles under XLA; cut the continuations out
    with `generated_tokens`): `tokens` (int32 `[batch, max_length]`, prompt then continuation),
    `prompt_lengths` (int32 `[batch]`), `num_tokens` (int32 `[batch]`, generated tokens
    including the end token) and `log_prob` (float32 `[batch]`, the model's log-probability of
    those tokens at temperature 1, before any filtering).
    """

    def __init__(self, *, end_id, pad_id, max_new_tokens, temperature, top_k, top_p, seeds):
        self.end_id = end_id
        self.pad_id = pad_id
        self.max_new_tokens = tf.cast(max_new_tokens, tf.int32)
        self.temperature = tf.cast(temperature, tf.float32)
        self.top_k = tf.cast(top_k, tf.int32)
        self.top_p = tf.cast(top_p, tf.float32)
        self.seeds = tf.cast(seeds, tf.int32)

    def initialize(self, prompt_ids, prompt_lengths, model_state):
        batch = tf.shape(prompt_ids)[0]
        loop_state = {
            "tokens": tf.transpose(prompt_ids),  # [max_length, batch]: time-major for cheap rows
            "prompt_lengths": prompt_lengths,
            "finished": self.max_new_tokens <= 0,
            "num_generated": tf.zeros([batch], tf.int32),
            "log_prob": tf.zeros([batch], tf.float32),
        }
        return loop_state, model_state

    def input_ids(self, loop_state, index):
        return loop_state["tokens"][index]

    def is_done(self, loop_state, index):
        del index
        return tf.reduce_all(loop_state["finished"])

    def step(self, index, logits, loop_state, model_state):
        next_index = index + 1
        chosen = choose_tokens(
            logits,
            index,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            seeds=self.seeds,
        )
        existing = loop_state["tokens"][next_index]  # the prompt token, or padding
        generating = (next_index >= loop_state["prompt_lengths"]) & ~loop_state["finished"]
        next_ids = tf.where(generating, chosen, existing)
        token_log_prob = tf.gather(
            tf.nn.log_softmax(tf.cast(logits, tf.float32)), chosen, batch_dims=1
        )
        num_generated = loop_state["num_generated"] + tf.cast(generating, tf.int32)
        finished = loop_state["finished"] | (
            generating & ((chosen == self.end_id) | (num_generated >= self.max_new_tokens))
        )
        loop_state = {
            "tokens": tf.tensor_scatter_nd_update(
                loop_state["tokens"], [[next_index]], next_ids[tf.newaxis]
            ),
            "prompt_lengths": loop_state["prompt_lengths"],
            "finished": finished,
            "num_generated": num_generated,
            "log_prob": loop_state["log_prob"] + tf.where(generating, token_log_prob, 0.0),
        }
        return loop_state, model_state

    def finalize(self, loop_state):
        return {
            "tokens": tf.transpose(loop_state["tokens"]),  # [batch, max_length]
            "prompt_lengths": loop_state["prompt_lengths"],
            "num_tokens": loop_state["num_generated"],
            "log_prob": loop_state["log_prob"],
        }
