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
token whatever the prompt lengths in the batch. Strategies (`SamplingStrategy`,
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
        start_index: first position fed to `step_fn` (0 feeds the start token; a model that
            pre-fills its state with the prompt's common prefix passes where it stopped).
        return_state: also return the model state after the last step (for example attention
            weights a model records in a fixed-size buffer of its state). Under beam search it
            follows the alive beams, not the finished hypotheses.

    Returns:
        The strategy's `finalize` output, a dict of tensors; with `return_state`, the pair
        (that dict, the final model state).
    """
    max_length = prompt_ids.shape[1]
    if max_length is None:
        raise ValueError("prompt_ids must have a static length; use prepare_prompts.")
    loop_state, model_state = strategy.initialize(prompt_ids, prompt_lengths, initial_state)

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
        (tf.constant(start_index, tf.int32), loop_state, model_state),
        maximum_iterations=max_length - 1 - start_index,
    )
    result = strategy.finalize(loop_state)
    return (result, model_state) if return_state else result


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
