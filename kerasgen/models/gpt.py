"""`GPT`: a decoder-only Transformer language model (GPT-2's architecture, at zoo sizes)."""

import keras
import tensorflow as tf

from kerasgen.decoding.length_buckets import run_at_length
from kerasgen.layers import TransformerBlock, cache_write_indices
from kerasgen.models.transformer_config import check_transformer_sizes, transformer_config

# Tokens one pass of the sliding window encodes per row, in windows of `context_length` tokens
# (512 windows of gpt_tiny, 32 of gpt_base): what bounds the memory of scoring a long text.
_SLIDING_WINDOW_TOKENS_PER_PASS = 8192


@keras.saving.register_keras_serializable(package="kerasgen")
class GPT(keras.Model):
    """A GPT-style decoder-only Transformer over token ids.

    Token embedding plus a learned position embedding, `num_layers` pre-LayerNorm blocks of
    causal multi-head self-attention and a GELU MLP (residual connections, dropout), a final
    LayerNorm, and an output projection that is the token embedding transposed when
    `tie_embeddings` (GPT-2's choice: fewer weights, and the rare tokens' rows learn from both
    ends).

    Two paths share the weights:

    - `call(token_ids)`: the whole sequence at once (training, scoring).
    - `decoding_step(token_ids, state, index)`: one token of every row, the step function of the
      decoding engine (`kerasgen.decoding`), with a key/value cache of fixed size
      `[batch, heads, context_length, head_dim]` per layer, allocated once by
      `initial_decoding_state` and written in place.

    Sequences longer than the context window slide it, on both paths: the logits at position
    `t >= context_length` are those of the last `context_length` tokens `t - context_length + 1
    .. t`, re-encoded at positions `0 .. context_length - 1` (what nanoGPT's `generate` does by
    cropping). Learned absolute positions make cached keys and values stale once the window
    moves, so past the window each decoding step re-encodes the window (a full forward pass of
    `context_length` tokens) instead of reading the cache: exact, but slower per token than the
    cached steps.

    Args:
        vocab_size: number of token ids, including the tokenizer's reserved ids.
        context_length: positions the model attends over (the position embedding's size).
        width: model width (embedding and residual stream).
        num_layers: Transformer blocks.
        num_heads: attention heads per block; must divide `width`.
        mlp_width: hidden width of each block's MLP (GPT uses `4 * width`).
        dropout: dropout on embeddings, attention weights and residual branches (training only).
        tie_embeddings: use the token embedding as the output projection.
        layer_norm_epsilon: every LayerNorm's epsilon.

    Example:
        >>> model = GPT(vocab_size=70, context_length=16, width=32, num_layers=2, num_heads=4)
        >>> logits = model(tf.zeros([2, 5], tf.int32))  # [batch=2, time=5, vocab=70]
    """

    def __init__(
        self,
        vocab_size,
        context_length=64,
        width=128,
        num_layers=4,
        num_heads=4,
        mlp_width=512,
        dropout=0.0,
        tie_embeddings=True,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if context_length < 1:
            raise ValueError(f"context_length must be at least 1, got {context_length}.")
        check_transformer_sizes(num_layers, num_heads, width)
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.width = width
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_width = mlp_width
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.layer_norm_epsilon = layer_norm_epsilon

        # GPT-2's initialisation: N(0, 0.02) everywhere, and the projections that write into the
        # residual stream scaled by 1/sqrt(2 * num_layers) so its variance does not grow with
        # depth.
        normal = {"class_name": "RandomNormal", "config": {"stddev": 0.02}}
        residual = {
            "class_name": "RandomNormal",
            "config": {"stddev": 0.02 / (2 * num_layers) ** 0.5},
        }
        # Every layer follows the model's dtype policy, so a model saved under a mixed policy
        # and reloaded under another global one (`python -m kerasgen.export`) keeps its own.
        policy = self.dtype_policy
        self.token_embedding = keras.layers.Embedding(
            vocab_size, width, embeddings_initializer=normal, name="token_embedding", dtype=policy
        )
        self.position_embedding = keras.layers.Embedding(
            context_length,
            width,
            embeddings_initializer=normal,
            name="position_embedding",
            dtype=policy,
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.blocks = [
            TransformerBlock(
                width,
                num_heads,
                mlp_width,
                dropout=dropout,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=normal,
                output_initializer=residual,
                name=f"block_{i}",
                dtype=policy,
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="final_norm", dtype=policy
        )
        self.output_projection = (
            None
            if tie_embeddings
            else keras.layers.Dense(
                vocab_size,
                use_bias=False,
                kernel_initializer=normal,
                name="output_projection",
                dtype=policy,
            )
        )

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.position_embedding.build(input_shape)
        for block in self.blocks:
            block.build((None, None, self.width))
        self.final_norm.build((None, None, self.width))
        if self.output_projection is not None:
            self.output_projection.build((None, None, self.width))

    @property
    def head_dim(self):
        return self.width // self.num_heads

    # The whole-sequence path.

    def _hidden(self, token_ids, training=False):
        """int `[batch, time <= context_length]` → final-normed hidden `[batch, time, width]`."""
        positions = tf.range(tf.shape(token_ids)[1])
        x = self.token_embedding(token_ids) + self.position_embedding(positions)[tf.newaxis]
        x = self.embedding_dropout(x, training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self.final_norm(x)

    def _logits(self, hidden):
        """hidden `[..., width]` → float32 logits `[..., vocab_size]`."""
        if self.output_projection is None:
            embeddings = tf.cast(self.token_embedding.embeddings, hidden.dtype)
            logits = tf.matmul(hidden, embeddings, transpose_b=True)
        else:
            logits = self.output_projection(hidden)
        # Float32 whatever the compute dtype: the loss and the samplers need the small logits.
        return tf.cast(logits, "float32")

    def _sliding_window_logits(self, token_ids):
        """Logits of a sequence longer than the window: the first `context_length` positions in
        one pass, then each later position from its own window of the last `context_length`
        tokens.

        The windows go through the model a chunk at a time (`windows_per_pass` of them per row,
        one pass after the other), so memory is bounded by the chunk, not by the text: building
        every window at once took gigabytes for a long text. Each window's logits are the same
        whichever chunk computes them.
        """
        context = self.context_length
        batch, time = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        head = self._logits(self._hidden(token_ids[:, :context]))  # [batch, context, vocab]
        # Window j holds tokens j+1 .. j+context; its last position is context + j.
        num_windows = time - context
        per_pass = max(1, _SLIDING_WINDOW_TOKENS_PER_PASS // context)
        num_passes = (num_windows + per_pass - 1) // per_pass
        # Padded so that every pass frames `per_pass` full windows (fixed shapes); the windows
        # of the padding are dropped at the end.
        padded = tf.pad(token_ids[:, 1:], [[0, 0], [0, num_passes * per_pass - num_windows]])

        def one_pass(k, logits):
            tokens = tf.slice(padded, [0, k * per_pass], [batch, per_pass + context - 1])
            windows = tf.signal.frame(tokens, context, 1, axis=1)  # [batch, per_pass, context]
            last = self._hidden(tf.reshape(windows, [-1, context]))[:, -1]
            chunk = tf.reshape(self._logits(last), [batch, per_pass, self.vocab_size])
            return k + 1, logits.write(k, chunk)

        _, chunks = tf.while_loop(
            lambda k, logits: k < num_passes,
            one_pass,
            (tf.constant(0), tf.TensorArray(tf.float32, size=num_passes)),
            parallel_iterations=1,  # one chunk in memory at a time
        )
        tail = tf.transpose(chunks.stack(), [1, 0, 2, 3])  # [batch, passes, per_pass, vocab]
        tail = tf.reshape(tail, [batch, -1, self.vocab_size])[:, :num_windows]
        return tf.concat([head, tail], axis=1)

    def call(self, token_ids, training=False):
        """Runs the whole sequence.

        Args:
            token_ids: int `[batch, time]`; `time` may exceed `context_length` (sliding
                window, see the class docstring; training never needs it).
            training: enables dropout.

        Returns:
            float32 logits `[batch, time, vocab_size]`; position `t` predicts token `t + 1`.
        """
        token_ids = tf.cast(token_ids, "int32")
        time = token_ids.shape[1]
        if time is not None and time <= self.context_length:
            return self._logits(self._hidden(token_ids, training=training))
        if time is not None:
            return self._sliding_window_logits(token_ids)
        return tf.cond(
            tf.shape(token_ids)[1] <= self.context_length,
            lambda: self._logits(self._hidden(token_ids, training=training)),
            lambda: self._sliding_window_logits(token_ids),
        )

    # The decoding path (the step contract of kerasgen.decoding).

    def initial_decoding_state(self, batch_size):
        """Empty caches, allocated once for the whole decode.

        Returns:
            {"keys": per-layer tuple of `[batch, heads, context_length, head_dim]`,
             "values": the same, "window": int32 `[batch, context_length]`, the last tokens
             (what a step re-encodes once generation runs past the window), "positions": int32
             `[batch]`, the position of the token each row reads next (0 here)}.
        """
        if not self.built:
            self.build((None, None))
        shape = [batch_size, self.num_heads, self.context_length, self.head_dim]
        zeros = tf.zeros(shape, dtype=self.compute_dtype)
        return {
            "keys": tuple(zeros for _ in self.blocks),
            "values": tuple(zeros for _ in self.blocks),
            "window": tf.zeros([batch_size, self.context_length], tf.int32),
            "positions": tf.zeros([batch_size], tf.int32),
        }

    def prefill_decoding_state(self, prompt_ids, prompt_lengths):
        """The decoding state after each row's prompt but its last token, in one forward pass.

        The first `min(longest prompt - 1, context_length)` positions of every row go through
        the blocks at once (a static bucket of that length under XLA, see
        `kerasgen.decoding.length_buckets`), and their keys and values fill the caches. A row's
        slots past its own prompt hold whatever the padding gave; its steps overwrite each one
        before reading it. A row whose prompt runs past the window keeps only the window of its
        last tokens: its next step slides it (see the class docstring), the cache unread.

        Args:
            prompt_ids: int32 `[batch, max_length]`, left-aligned (from `prepare_prompts`).
            prompt_lengths: int32 `[batch]`, at least 1.

        Returns:
            The state of `initial_decoding_state`, row `r` holding positions `0 ..
            prompt_lengths[r] - 2` and `positions = prompt_lengths - 1` (the loop's first step
            reads each row's last prompt token; see `kerasgen.decoding.decode_with_prefill`).
        """
        context = self.context_length
        prompt_ids = tf.cast(prompt_ids, tf.int32)
        prompt_lengths = tf.cast(prompt_lengths, tf.int32)
        batch = tf.shape(prompt_ids)[0]
        read = prompt_lengths - 1  # [batch], prompt tokens before the last
        longest = tf.reduce_max(tf.concat([read, [0]], axis=0))
        # Room for any bucket (a bucket may be longer than the buffer, never than the window).
        max_length = prompt_ids.shape[1]
        padded = tf.pad(prompt_ids, [[0, 0], [0, max(0, context - max_length)]])

        def fill(length):
            ids = padded[:, :length]  # [batch, length]
            x = self.token_embedding(ids) + self.position_embedding(tf.range(length))[tf.newaxis]
            keys, values = [], []
            to_context = [[0, 0], [0, 0], [0, context - length], [0, 0]]
            for block in self.blocks:
                x, k, v = block.prefill(x)  # k, v [batch, heads, length, head_dim]
                keys.append(tf.pad(k, to_context))
                values.append(tf.pad(v, to_context))
            return tuple(keys), tuple(values)

        empty = self.initial_decoding_state(batch)
        keys, values = tf.cond(
            longest > 0,
            lambda: run_at_length(
                tf.minimum(longest, context), min(context, max(max_length - 1, 1)), fill
            ),
            lambda: (empty["keys"], empty["values"]),
        )
        # The last `context` tokens before each row's last prompt token (the first `context`
        # slots for a prompt inside the window, as the cached steps write them).
        first = tf.maximum(read - context, 0)
        window = tf.gather(padded, first[:, tf.newaxis] + tf.range(context), batch_dims=1)
        return {"keys": keys, "values": values, "window": window, "positions": read}

    def decoding_step(self, token_ids, state, index):
        """One decoding step for every row, each at its own position.

        Args:
            token_ids: int `[batch]`, the token at position `state["positions"]` of every row.
            state: as from `initial_decoding_state` or `prefill_decoding_state`.
            index: scalar int32, the loop's position; unused, as each row's position is in the
                state (equal to `index` for a loop started from `initial_decoding_state`).

        Returns:
            (float32 logits `[batch, vocab_size]` for each row's next position, the new state).
        """
        del index
        token_ids = tf.cast(token_ids, tf.int32)
        positions = state["positions"]
        context = self.context_length
        # Attend over the slots written so far in some row, not the whole cache: a slice in
        # graph mode, the smallest length bucket that holds it under XLA. Only the attention
        # read is bucketed (and only the sliding logits are conditional): under XLA a
        # conditional that returned the caches copied them every step.
        length = tf.minimum(tf.reduce_max(tf.concat([positions, [0]], axis=0)), context - 1) + 1
        logits, new_state = self._cached_step(token_ids, state, length)
        past = positions >= context  # [batch]
        window = tf.concat([state["window"][:, 1:], token_ids[:, tf.newaxis]], axis=1)
        sliding_logits = tf.cond(
            tf.reduce_any(past),
            lambda: self._logits(self._hidden(window)[:, -1]),
            lambda: tf.zeros_like(logits),
        )
        new_state["window"] = tf.where(past[:, tf.newaxis], window, new_state["window"])
        return tf.where(past[:, tf.newaxis], sliding_logits, logits), new_state

    def _cached_step(self, token_ids, state, length):
        """Inside the window: the new position's keys and values join the caches, and
        attention reads the first `length` slots (every row's position is below it; a scalar
        tensor, bucketed under XLA by the attention). Past the window, a row drops its oldest
        token and re-encodes the window at positions 0 .. context_length - 1 instead
        (`decoding_step`)."""
        batch = tf.shape(token_ids)[0]
        positions = state["positions"]
        # A row past the window writes a slot it never reads again (its logits come from the
        # sliding step), so every row can share this step.
        slot = tf.minimum(positions, self.context_length - 1)
        window = tf.tensor_scatter_nd_update(
            state["window"], tf.stack([tf.range(batch), slot], axis=1), token_ids
        )
        x = self.token_embedding(token_ids) + self.position_embedding(slot)  # [batch, width]
        cache_indices = cache_write_indices(batch, self.num_heads, slot)
        keys, values = [], []
        for block, key_cache, value_cache in zip(
            self.blocks, state["keys"], state["values"], strict=True
        ):
            x, key_cache, value_cache = block.masked_step(
                x, key_cache, value_cache, cache_indices, positions, length
            )
            keys.append(key_cache)
            values.append(value_cache)
        logits = self._logits(self.final_norm(x))
        new_state = {
            "keys": tuple(keys),
            "values": tuple(values),
            "window": window,
            "positions": positions + 1,
        }
        return logits, new_state

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            context_length=self.context_length,
            **transformer_config(self),
        )
        return config
