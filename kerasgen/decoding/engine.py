"""The decode driver: one `tf.while_loop` over a fixed-size token buffer, for every strategy.

The step contract
-----------------
Every model decodes through a *step function*::

    step_fn(token_ids, state, index) -> (logits, state)

- `token_ids`: int32 `[rows]`, the token at position `index` of every row (a row is a request,
  or a request's beam under beam search).
- `state`: any nest of tensors whose leading dimension is `rows` (LSTM `h, c`; encoder outputs
  plus decoder state; a Transformer key/value cache). Beam search reorders it with `tf.gather` on
  axis 0, so every leaf must have the rows first.
- `index`: scalar int32 position in the sequence.
- returns `logits`, float `[rows, vocab]`, the distribution of the token at `index + 1`, and the
  new state with the same structure and shapes.

Prompts are fed through the same loop: while `index + 1` is inside a row's prompt, the strategy
writes the prompt token instead of choosing one, so every row continues from its own last prompt
token whatever the prompt lengths in the batch. A model that can read a whole prompt at once
(`prefill_decoding_state`) decodes through `decode_with_prefill` instead: the prompts in one
pass, then the same loop from the first generated token on. Strategies (`SamplingStrategy`,
`BeamSearchStrategy`) own the buffer and decide the tokens; this module owns the loop.

All shapes inside the loop are fixed (`max_length` is a Python int), so the loop compiles with
`jit_compile=True`.
"""

import tensorflow as tf


def prepare_prompts(token_ids, *, start_id, pad_id, max_prompt_tokens, max_length):
    """Turns tokenized prompts into the fixed-size buffer the decode loop starts from.

    Every row gets `start_id` first, then its prompt tokens; prompts longer than
    `max_prompt_tokens - 1` keep their last tokens (left truncation, so generation continues
    from the end of the prompt).

    Args:
        token_ids: int32 RaggedTensor `[batch, (tokens)]`, without start token.
        start_id, pad_id: reserved ids of the tokenizer.
        max_prompt_tokens: Python int, room for the start token plus the prompt.
        max_length: Python int, buffer length (prompt room plus the most new tokens).

    Returns:
        (prompt_ids int32 `[batch, max_length]` right-padded with `pad_id`,
         prompt_lengths int32 `[batch]`, each at least 1 for the start token).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    truncated = (
        token_ids[:, -(max_prompt_tokens - 1) :] if max_prompt_tokens > 1 else token_ids[:, :0]
    )
    batch = truncated.nrows()
    starts = tf.fill([batch, 1], tf.constant(start_id, tf.int32))
    with_start = tf.concat([tf.RaggedTensor.from_tensor(starts), truncated], axis=1)
    prompt_ids = with_start.to_tensor(default_value=pad_id, shape=[None, max_length])
    prompt_lengths = tf.cast(with_start.row_lengths(), tf.int32)
    return prompt_ids, prompt_lengths


def decode(
    step_fn,
    strategy,
    initial_state,
    prompt_ids,
    prompt_lengths,
    *,
    start_index=0,
    return_state=False,
):
    """Runs the decode loop until every row is finished or the buffer is full.

    Args:
        step_fn: the model's step function (see the module docstring).
        strategy: a `SamplingStrategy` or `BeamSearchStrategy`: `initialize`, `input_ids`,
            `step`, `is_done` and `finalize`.
        initial_state: the model's state for the `batch` requests (rows first); the strategy
            expands it (one copy per beam for beam search).
        prompt_ids: int32 `[batch, max_length]` from `prepare_prompts`; `max_length` must be
            static.
        prompt_lengths: int32 `[batch]`.
        start_index: first position fed to `step_fn`, a Python int or scalar int32 tensor (0
            feeds the start token; a model that pre-fills its state with the prompt's common
            prefix passes where it stopped).
        return_state: also return the model state after the last step (for example attention
            weights a model records in a fixed-size buffer of its state). Under beam search it
            follows the alive beams, not the finished hypotheses.

    Returns:
        The strategy's `finalize` output, a dict of tensors; with `return_state`, the pair
        (that dict, the final model state).
    """
    max_length = _static_length(prompt_ids)
    loop_state, model_state = strategy.initialize(prompt_ids, prompt_lengths, initial_state)
    loop_state, model_state = _run_loop(
        step_fn, strategy, loop_state, model_state, tf.cast(start_index, tf.int32), max_length
    )
    result = strategy.finalize(loop_state)
    return (result, model_state) if return_state else result


def decode_with_prefill(
    prefill_fn, step_fn, strategy, prompt_ids, prompt_lengths, *, return_state=False
):
    """`decode` with every row's prompt read by the model in one pass before the loop.

    `decode` feeds the prompts through the loop one token per step, so a batch's latency grows
    with its longest prompt. Here `prefill_fn` reads every row's prompt at once (a Transformer
    in one forward pass, a recurrent model in its whole-sequence call) and the loop starts
    generating at its first step, in every row, whatever the prompt lengths.

    Layout: the model reads the prompts left-aligned, as `prepare_prompts` gives them (every
    row from position 0), and carries each row's own position in its state. The loop's buffer
    holds them right-aligned: every prompt ends at the slot of the longest one's last token, and
    the slots before a shorter prompt repeat its start token (already in the row, so a
    repetition penalty sees nothing new). Each row's sampling noise follows the row's own
    positions (the strategy's `row_offsets`), so a request samples the same text whatever
    else shares its batch, as with `decode`. The result is moved back to `decode`'s layout,
    token for token what `decode` returns from the same model.

    Args:
        prefill_fn: `prefill_fn(prompt_ids, prompt_lengths)` → the model state after each
            row's prompt but its last token (positions `0 .. prompt_length - 2`, which the
            loop's first step continues with the last prompt token); rows first.
        step_fn: the model's step function, which must take each row's position from the state
            (the `index` it gets is the slot of the right-aligned buffer).
        strategy, prompt_ids, prompt_lengths, return_state: as for `decode`.

    Returns:
        As `decode`.
    """
    max_length = _static_length(prompt_ids)
    prompt_lengths = tf.cast(prompt_lengths, tf.int32)
    longest = tf.reduce_max(tf.concat([prompt_lengths, [1]], axis=0))  # 1 for an empty batch
    offsets = longest - prompt_lengths  # [batch]: where each row's prompt starts when aligned
    model_state = prefill_fn(prompt_ids, prompt_lengths)
    slots = tf.range(max_length)[tf.newaxis, :] - offsets[:, tf.newaxis]  # [batch, max_length]
    aligned = tf.where(
        slots >= 0, tf.gather(prompt_ids, tf.maximum(slots, 0), batch_dims=1), prompt_ids[:, :1]
    )
    batch = tf.shape(prompt_ids)[0]
    loop_state, model_state = strategy.initialize(aligned, tf.fill([batch], longest), model_state)
    if "row_offsets" in loop_state:  # a strategy whose choices follow the row's positions
        loop_state["row_offsets"] = offsets
    loop_state, model_state = _run_loop(
        step_fn, strategy, loop_state, model_state, longest - 1, max_length
    )
    result = _left_align(strategy.finalize(loop_state), prompt_lengths, offsets, strategy.pad_id)
    return (result, model_state) if return_state else result


# The outputs of a strategy's `finalize` that are aligned with the token buffer
# (`[rows, max_length, ...]`), which `decode_with_prefill` moves back to `decode`'s layout.
_BUFFER_ALIGNED_OUTPUTS = ("tokens", "token_log_probs", "top_token_ids", "top_log_probs")


def _left_align(result, prompt_lengths, offsets, pad_id):
    """A right-aligned loop's result in `decode`'s layout: every row's values moved left by its
    offset, and each row's own prompt length (rows repeat requests under beam search)."""
    rows = tf.shape(result["prompt_lengths"])[0]
    per_request = rows // tf.maximum(tf.shape(offsets)[0], 1)  # beams or samples per request
    offsets = tf.repeat(offsets, per_request)
    result = dict(result)
    for key in _BUFFER_ALIGNED_OUTPUTS:
        if key not in result:
            continue
        values = result[key]
        max_length = tf.shape(values)[1]
        slots = tf.range(max_length)[tf.newaxis, :] + offsets[:, tf.newaxis]  # [rows, length]
        # The slots shifted in at the end held the start-token padding (zeros elsewhere: a
        # strategy writes nothing where it does not generate).
        values = tf.gather(values, slots % max_length, batch_dims=1)
        if key == "tokens":
            values = tf.where(slots < max_length, values, pad_id)
        result[key] = values
    result["prompt_lengths"] = tf.repeat(prompt_lengths, per_request)
    return result


def _static_length(prompt_ids):
    max_length = prompt_ids.shape[1]
    if max_length is None:
        raise ValueError("prompt_ids must have a static length; use prepare_prompts.")
    return max_length


def _run_loop(step_fn, strategy, loop_state, model_state, start_index, max_length):
    """The `tf.while_loop` from position `start_index` (scalar int32) to the end of the buffer
    or until the strategy is done; returns the final (loop state, model state)."""

    def not_done(index, loop_state, model_state):
        del model_state
        return tf.logical_not(strategy.is_done(loop_state, index))

    def body(index, loop_state, model_state):
        logits, model_state = step_fn(strategy.input_ids(loop_state, index), model_state, index)
        loop_state, model_state = strategy.step(index, logits, loop_state, model_state)
        return index + 1, loop_state, model_state

    _, loop_state, model_state = tf.while_loop(
        not_done,
        body,
        (start_index, loop_state, model_state),
        maximum_iterations=max_length - 1 - start_index,
    )
    return loop_state, model_state


def generated_tokens(tokens, prompt_lengths, num_generated, end_id):
    """Cuts each row's generated tokens out of a token buffer.

    Args:
        tokens: int32 `[rows, max_length]`.
        prompt_lengths: int32 `[rows]`.
        num_generated: int32 `[rows]`, tokens generated after the prompt (an end token included).
        end_id: the end token, dropped from the result.

    Returns:
        int32 RaggedTensor `[rows, (generated)]`.
    """
    positions = tf.range(tf.shape(tokens)[1])[tf.newaxis, :]
    in_generation = (positions >= prompt_lengths[:, tf.newaxis]) & (
        positions < (prompt_lengths + num_generated)[:, tf.newaxis]
    )
    keep = in_generation & (tokens != end_id)
    return tf.ragged.boolean_mask(tokens, keep)


def generated_values(values, prompt_lengths, num_tokens, max_new_tokens, fill_value=0):
    """Cuts each row's per-token values out of a buffer aligned with the tokens, left-aligned.

    The dense counterpart of `generated_tokens` for the per-token outputs of a strategy
    (`token_log_probs`, `top_token_ids`, `top_log_probs`, or `tokens` itself), for outputs that
    must keep a fixed shape, such as a serving signature's. The end token keeps its place, so a
    row's log-probabilities sum to its `log_prob`.

    Args:
        values: `[rows, max_length, ...]`, aligned with the token buffer.
        prompt_lengths: int32 `[rows]`.
        num_tokens: int32 `[rows]`, generated tokens (an end token included).
        max_new_tokens: Python int, the width of the result (the most tokens a row can
            generate, such as `DecodingConfig.max_new_tokens_cap`).
        fill_value: written after each row's `num_tokens` values.

    Returns:
        `[rows, max_new_tokens, ...]`: entry `[r, j]` belongs to row `r`'s generated token `j`.
    """
    max_length = tf.shape(values)[1]
    steps = tf.range(max_new_tokens)[tf.newaxis, :]  # [1, max_new_tokens]
    positions = tf.minimum(prompt_lengths[:, tf.newaxis] + steps, max_length - 1)
    gathered = tf.gather(values, positions, batch_dims=1)  # [rows, max_new_tokens, ...]
    valid = steps < num_tokens[:, tf.newaxis]
    for _ in range(values.shape.rank - 2):
        valid = valid[..., tf.newaxis]
    return tf.where(valid, gathered, tf.cast(fill_value, values.dtype))
