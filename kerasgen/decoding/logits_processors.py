"""Logits processors: per-row changes to the next-token logits before a strategy chooses.

Each processor is called as `processor(logits, tokens, index, prompt_lengths)`:

- `logits`: float32 `[rows, vocab]`, the model's distribution of the token at `index + 1`.
- `tokens`: int32 `[rows, max_length]`, the token buffer; positions `<= index` hold the
  sequence so far (the start token, the prompt, then what was generated).
- `index`: scalar int32, the position the model just read.
- `prompt_lengths`: int32 `[rows]`, start token included.

and returns the changed logits `[rows, vocab]`. Every parameter is a `[rows]` tensor with an
"off" value, so one batch mixes requests with and without a control; a batch in which no row
uses a processor skips it (`tf.cond`). Shapes are fixed and no processor keeps state between
steps: each recomputes what it needs from the buffer, so beam search, which reorders the
buffer, needs nothing more, and everything compiles with `jit_compile=True`.

Banned tokens get a large finite negative logit (`BANNED_LOGIT`), as the sampling filters do,
so a row never turns into NaNs.
"""

import tensorflow as tf

BANNED_LOGIT = -1e9


def _seen_tokens(tokens, index, vocab_size):
    """How often each token occurs at positions `<= index`: int32 `[rows, vocab]`."""
    rows, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
    in_sequence = tf.range(length)[tf.newaxis, :] <= index  # [1, max_length]
    row_ids = tf.broadcast_to(tf.range(rows)[:, tf.newaxis], [rows, length])
    indices = tf.stack([row_ids, tokens], axis=-1)  # [rows, max_length, 2]
    updates = tf.cast(tf.broadcast_to(in_sequence, [rows, length]), tf.int32)
    return tf.tensor_scatter_nd_add(tf.zeros([rows, vocab_size], tf.int32), indices, updates)


class LogitsProcessor:
    """Base: `__call__` runs `process` only when some row has the control on."""

    def is_active(self):
        """Scalar bool tensor: does any row use this processor?"""
        raise NotImplementedError

    def process(self, logits, tokens, index, prompt_lengths):
        raise NotImplementedError

    def __call__(self, logits, tokens, index, prompt_lengths):
        return tf.cond(
            self.is_active(),
            lambda: self.process(logits, tokens, index, prompt_lengths),
            lambda: logits,
        )


class RepetitionPenalty(LogitsProcessor):
    """The CTRL repetition penalty (Keskar et al., 2019), per row.

    Every token already in the sequence (prompt or continuation, the start token included) has
    its logit divided by the penalty if positive and multiplied by it if negative, so a penalty
    above 1 always makes it less likely. 1 is off.

    Args:
        penalty: float32 `[rows]`, positive.
    """

    def __init__(self, penalty):
        self.penalty = tf.cast(penalty, tf.float32)

    def is_active(self):
        return tf.reduce_any(self.penalty != 1.0)

    def process(self, logits, tokens, index, prompt_lengths):
        del prompt_lengths
        seen = _seen_tokens(tokens, index, tf.shape(logits)[-1]) > 0  # [rows, vocab]
        penalty = self.penalty[:, tf.newaxis]
        penalized = tf.where(logits > 0, logits / penalty, logits * penalty)
        return tf.where(seen, penalized, logits)


class NoRepeatNGram(LogitsProcessor):
    """Bans every token that would complete an n-gram already in the sequence, per row.

    With size `n`, no n-gram occurs twice in the start token, prompt and continuation: the
    token at position `q` (`n - 1 <= q <= index`) is banned when the `n - 1` tokens before it
    equal the last `n - 1` tokens of the sequence. Every earlier position is compared at once
    (`[rows, max_length]` per compared offset, `n - 1` offsets), so the cost does not depend on
    how many n-grams were seen. 0 is off; 1 bans every token seen.

    Args:
        ngram_size: int32 `[rows]`, at least 0.
    """

    def __init__(self, ngram_size):
        self.ngram_size = tf.cast(ngram_size, tf.int32)

    def is_active(self):
        return tf.reduce_any(self.ngram_size > 0)

    def process(self, logits, tokens, index, prompt_lengths):
        del prompt_lengths
        rows, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
        prefix = self.ngram_size - 1  # [rows], the tokens an n-gram shares before its last
        positions = tf.range(length)  # q, the position of an earlier n-gram's last token
        completes = (
            (positions[tf.newaxis, :] >= prefix[:, tf.newaxis])
            & (positions[tf.newaxis, :] <= index)
            & (self.ngram_size > 0)[:, tf.newaxis]
        )  # [rows, max_length]

        def compare_offset(offset, completes):
            # Token `offset + 1` places before q against the one `offset` places before `index`.
            earlier = tf.gather(tokens, tf.maximum(positions - 1 - offset, 0), axis=1)
            latest = tokens[:, tf.maximum(index - offset, 0)]  # [rows]
            compared = offset < prefix  # [rows]: this row's n-gram reaches this far
            same = earlier == latest[:, tf.newaxis]
            return offset + 1, completes & (~compared[:, tf.newaxis] | same)

        _, completes = tf.while_loop(
            lambda offset, _: offset < tf.reduce_max(prefix),
            compare_offset,
            (tf.constant(0), completes),
            maximum_iterations=length,
        )
        row_ids = tf.broadcast_to(tf.range(rows)[:, tf.newaxis], [rows, length])
        banned = tf.tensor_scatter_nd_add(
            tf.zeros(tf.shape(logits), tf.int32),
            tf.stack([row_ids, tokens], axis=-1),
            tf.cast(completes, tf.int32),
        )
        return tf.where(banned > 0, BANNED_LOGIT, logits)


class MinNewTokens(LogitsProcessor):
    """Bans the end token until a row has generated `min_new_tokens` tokens, per row.

    The returned continuation (end token excluded) is then at least `min_new_tokens` long,
    unless `max_new_tokens` is smaller. 0 is off.

    Args:
        min_new_tokens: int32 `[rows]`.
        end_id: the end token.
    """

    def __init__(self, min_new_tokens, *, end_id):
        self.min_new_tokens = tf.cast(min_new_tokens, tf.int32)
        self.end_id = end_id

    def is_active(self):
        return tf.reduce_any(self.min_new_tokens > 0)

    def process(self, logits, tokens, index, prompt_lengths):
        del tokens
        generated = index + 1 - prompt_lengths  # [rows], before the token chosen now
        too_early = generated < self.min_new_tokens
        is_end = tf.range(tf.shape(logits)[-1]) == self.end_id  # [vocab]
        return tf.where(too_early[:, tf.newaxis] & is_end[tf.newaxis, :], BANNED_LOGIT, logits)


def make_logits_processors(
    *, end_id, repetition_penalty=None, no_repeat_ngram_size=None, min_new_tokens=None
):
    """The processors for the controls given (None leaves one out, adding no op at all), in the
    order they apply: the repetition penalty rescales logits before the two bans.

    Args:
        end_id: the end token.
        repetition_penalty: float32 `[rows]` or None.
        no_repeat_ngram_size: int32 `[rows]` or None.
        min_new_tokens: int32 `[rows]` or None.

    Returns:
        A list of `LogitsProcessor`, applied with `apply_logits_processors`.
    """
    processors = []
    if repetition_penalty is not None:
        processors.append(RepetitionPenalty(repetition_penalty))
    if no_repeat_ngram_size is not None:
        processors.append(NoRepeatNGram(no_repeat_ngram_size))
    if min_new_tokens is not None:
        processors.append(MinNewTokens(min_new_tokens, end_id=end_id))
    return processors


def apply_logits_processors(processors, logits, tokens, index, prompt_lengths):
    """Applies `processors` in order (see the module docstring for the arguments)."""
    for processor in processors:
        logits = processor(logits, tokens, index, prompt_lengths)
    return logits
