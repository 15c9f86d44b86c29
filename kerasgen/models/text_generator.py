"""`TextGenerator`: an Embedding → recurrent stack → Dense language model."""

import keras
import tensorflow as tf

from kerasgen.decoding.length_buckets import run_at_length
from kerasgen.layers import projected_rnn

# Keras's layers with the input projection computed before the time loop (same weights, paths
# and saved layout; cuDNN where Keras would use it): see kerasgen/layers/projected_rnn.py.
RNN_TYPES = {
    "lstm": projected_rnn.LSTM,
    "gru": projected_rnn.GRU,
    "simple_rnn": projected_rnn.SimpleRNN,
}


@keras.saving.register_keras_serializable(package="kerasgen")
class TextGenerator(keras.Model):
    """A recurrent language model over token ids.

    Embedding, then `num_layers` recurrent layers (LSTM by default; GRU or SimpleRNN selectable),
    each with `return_sequences=True` and `return_state=True`, then a Dense projection over the
    vocabulary. The same weights serve two paths:

    - `call(token_ids)`: the whole sequence at once, for training with teacher forcing and for
      scoring (the input projection of every step in one matmul, then the recurrent loop:
      `kerasgen.layers.projected_rnn`).
    - `decoding_step(token_ids, state, index)`: one token for the whole batch through the
      recurrent cells, the step function of the decoding engine (`kerasgen.decoding`).

    Args:
        vocab_size: number of token ids, including the tokenizer's reserved ids.
        embedding_dim: width of the token embedding.
        rnn_type: "lstm", "gru" or "simple_rnn".
        rnn_units: width of every recurrent layer.
        num_layers: how many recurrent layers are stacked.
        dropout: dropout rate on the embedding and between recurrent layers (training only).

    Example:
        >>> model = TextGenerator(vocab_size=70, embedding_dim=16, rnn_units=32)
        >>> logits = model(tf.zeros([2, 5], tf.int32))  # [batch=2, time=5, vocab=70]
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim=64,
        rnn_type="lstm",
        rnn_units=256,
        num_layers=1,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if rnn_type not in RNN_TYPES:
            raise ValueError(
                f"Unknown rnn_type {rnn_type!r}; valid types: {', '.join(sorted(RNN_TYPES))}."
            )
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.rnn_type = rnn_type
        self.rnn_units = rnn_units
        self.num_layers = num_layers
        self.dropout = dropout

        # Every layer follows the model's dtype policy (a mixed one too), also when a saved model
        # is rebuilt from its config under another global policy.
        policy = self.dtype_policy
        self.embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, name="embedding", dtype=policy
        )
        self.rnn_layers = [
            RNN_TYPES[rnn_type](
                rnn_units,
                return_sequences=True,
                return_state=True,
                name=f"{rnn_type}_{i}",
                dtype=policy,
            )
            for i in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=policy)
        self.projection = keras.layers.Dense(vocab_size, name="projection", dtype=policy)

    @property
    def state_size_per_layer(self):
        """How many state tensors each recurrent layer carries: 2 for LSTM (h, c), else 1."""
        return 2 if self.rnn_type == "lstm" else 1

    def call(self, token_ids, initial_state=None, return_state=False, training=False):
        """Runs the whole sequence.

        Args:
            token_ids: int `[batch, time]`.
            initial_state: optional flat tuple of `[batch, rnn_units]` tensors, as returned by
                `initial_decoding_state` or by a previous call with `return_state=True`.
            return_state: also return the final states.
            training: enables dropout.

        Returns:
            float32 logits `[batch, time, vocab_size]`, and with `return_state` the final states
            as a flat tuple of `[batch, rnn_units]` tensors (layer by layer; LSTM contributes h
            then c) in the compute dtype.
        """
        x = self.embedding(token_ids)
        x = self.dropout_layer(x, training=training)
        per_layer = self._split_state(initial_state)
        final_states = []
        for layer, layer_state in zip(self.rnn_layers, per_layer, strict=True):
            x, *states = layer(x, initial_state=layer_state, training=training)
            x = self.dropout_layer(x, training=training)
            final_states.extend(states)
        logits = _float32(self.projection(x))
        if return_state:
            return logits, tuple(final_states)
        return logits

    def initial_decoding_state(self, batch_size):
        """Zero states for `decoding_step`: a flat tuple of `[batch, rnn_units]` float tensors."""
        zeros = tf.zeros([batch_size, self.rnn_units], dtype=self.compute_dtype)
        return tuple(zeros for _ in range(self.num_layers * self.state_size_per_layer))

    def prefill_decoding_state(self, prompt_ids, prompt_lengths):
        """The decoding state after each row's prompt but its last token, from the layers'
        whole-sequence call (`return_state`) instead of one decoding step per token.

        Every row reads the same number of steps, the longest prompt's (a static length bucket
        under XLA, see `kerasgen.decoding.length_buckets`); a mask past each row's own prompt
        keeps its state, so the state is the one after its own last token read.

        Args:
            prompt_ids: int32 `[batch, max_length]`, left-aligned (from `prepare_prompts`).
            prompt_lengths: int32 `[batch]`, at least 1.

        Returns:
            The state of `initial_decoding_state` after `prompt_lengths - 1` tokens of each row
            (the loop's first step reads each row's last prompt token; see
            `kerasgen.decoding.decode_with_prefill`).
        """
        prompt_ids = tf.cast(prompt_ids, tf.int32)
        read = tf.cast(prompt_lengths, tf.int32) - 1  # [batch]
        longest = tf.reduce_max(tf.concat([read, [0]], axis=0))
        max_length = prompt_ids.shape[1]
        initial = self.initial_decoding_state(tf.shape(prompt_ids)[0])

        def run(length):
            ids = prompt_ids[:, :length]
            x = self.embedding(ids)
            mask = tf.range(length)[tf.newaxis, :] < read[:, tf.newaxis]  # [batch, length]
            states = []
            for layer, layer_state in zip(self.rnn_layers, self._split_state(initial), strict=True):
                x, *layer_states = layer(x, initial_state=layer_state, mask=mask, training=False)
                states.extend(layer_states)
            return tuple(states)

        return tf.cond(
            longest > 0,
            lambda: run_at_length(longest, max(max_length - 1, 1), run),
            lambda: initial,
        )

    def decoding_step(self, token_ids, state, index):
        """One decoding step through the recurrent cells (never cuDNN, so exports are portable).

        Args:
            token_ids: int `[batch]`, the token at position `index` of every row.
            state: flat tuple of `[batch, rnn_units]` tensors.
            index: scalar int32 position; unused by a recurrent model, part of the step contract.

        Returns:
            (float32 logits `[batch, vocab_size]`, new state with the structure of `state`).
        """
        del index
        x = self.embedding(token_ids)  # [batch, embedding_dim]
        new_state = []
        for layer, layer_state in zip(self.rnn_layers, self._split_state(state), strict=True):
            x, states = layer.cell(x, list(layer_state), training=False)
            new_state.extend(states)
        return _float32(self.projection(x)), tuple(new_state)

    def decoding_step_fn(self):
        """`decoding_step` with the first layer's input projection turned into a lookup table.

        Call it inside the traced decode function, before the loop: `embedding(id) @ kernel +
        input bias` is computed once per call for every id (`[vocab, gates * units]`), and each
        step gathers one row instead of running the embedding lookup and the input matmul. That
        matmul waits on the token just sampled, so removing it shortens every step's critical
        path (benchmarks/decode_speed.py measures the gain). The results equal `decoding_step`.

        Returns:
            A step function with the signature of `decoding_step`.
        """
        # The first layer's weights in the compute dtype (cast once, here, not in every step).
        first = projected_rnn.recurrence_for(self.rnn_layers[0].cell)
        embeddings = tf.cast(self.embedding.embeddings, self.compute_dtype)
        table = first.project(embeddings)  # [vocab, gates * units]

        def step(token_ids, state, index):
            del index
            per_layer = self._split_state(state)
            x, new_state = first.step(tf.gather(table, token_ids), per_layer[0])
            for layer, layer_state in zip(self.rnn_layers[1:], per_layer[1:], strict=True):
                x, states = layer.cell(x, list(layer_state), training=False)
                new_state.extend(states)
            return _float32(self.projection(x)), tuple(new_state)

        return step

    def _split_state(self, state):
        """Flat state tuple → one list per layer (or `None` per layer when state is None)."""
        if state is None:
            return [None] * self.num_layers
        n = self.state_size_per_layer
        return [list(state[i * n : (i + 1) * n]) for i in range(self.num_layers)]

    def disable_cudnn(self):
        """Makes every recurrent layer use the portable kernels (no `CudnnRNN*` ops).

        A graph traced with cuDNN on a GPU cannot run on a CPU-only TensorFlow Serving, so the
        exporter calls this before tracing.
        """
        for layer in self.rnn_layers:
            if hasattr(layer, "use_cudnn"):
                layer.use_cudnn = False

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_dim=self.embedding_dim,
            rnn_type=self.rnn_type,
            rnn_units=self.rnn_units,
            num_layers=self.num_layers,
            dropout=self.dropout,
        )
        return config


def _float32(logits):
    """Logits in float32 whatever the compute dtype (under a mixed policy the projection gives
    bfloat16 or float16): the loss, the samplers and the scores need their small differences."""
    return tf.cast(logits, tf.float32)
