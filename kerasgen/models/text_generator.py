"""`TextGenerator`: an Embedding → recurrent stack → Dense language model."""

import keras
import tensorflow as tf

RNN_TYPES = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}


@keras.saving.register_keras_serializable(package="kerasgen")
class TextGenerator(keras.Model):
    """A recurrent language model over token ids.

    Embedding, then `num_layers` recurrent layers (LSTM by default; GRU or SimpleRNN selectable),
    each with `return_sequences=True` and `return_state=True`, then a Dense projection over the
    vocabulary. The same weights serve two paths:

    - `call(token_ids)`: the whole sequence at once, for training with teacher forcing and for
      scoring.
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

        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.rnn_layers = [
            RNN_TYPES[rnn_type](
                rnn_units, return_sequences=True, return_state=True, name=f"{rnn_type}_{i}"
            )
            for i in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout)
        self.projection = keras.layers.Dense(vocab_size, name="projection")

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
            logits `[batch, time, vocab_size]`, and with `return_state` the final states as a flat
            tuple of `[batch, rnn_units]` tensors (layer by layer; LSTM contributes h then c).
        """
        x = self.embedding(token_ids)
        x = self.dropout_layer(x, training=training)
        per_layer = self._split_state(initial_state)
        final_states = []
        for layer, layer_state in zip(self.rnn_layers, per_layer, strict=True):
            x, *states = layer(x, initial_state=layer_state, training=training)
            x = self.dropout_layer(x, training=training)
            final_states.extend(states)
        logits = self.projection(x)
        if return_state:
            return logits, tuple(final_states)
        return logits

    def initial_decoding_state(self, batch_size):
        """Zero states for `decoding_step`: a flat tuple of `[batch, rnn_units]` float tensors."""
        zeros = tf.zeros([batch_size, self.rnn_units], dtype=self.compute_dtype)
        return tuple(zeros for _ in range(self.num_layers * self.state_size_per_layer))

    def decoding_step(self, token_ids, state, index):
        """One decoding step through the recurrent cells (never cuDNN, so exports are portable).

        Args:
            token_ids: int `[batch]`, the token at position `index` of every row.
            state: flat tuple of `[batch, rnn_units]` tensors.
            index: scalar int32 position; unused by a recurrent model, part of the step contract.

        Returns:
            (logits `[batch, vocab_size]`, new state with the structure of `state`).
        """
        del index
        x = self.embedding(token_ids)  # [batch, embedding_dim]
        new_state = []
        for layer, layer_state in zip(self.rnn_layers, self._split_state(state), strict=True):
            x, states = layer.cell(x, list(layer_state), training=False)
            new_state.extend(states)
        return self.projection(x), tuple(new_state)

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
        first = self.rnn_layers[0].cell
        if not first.use_bias or (self.rnn_type == "gru" and not first.reset_after):
            return self.decoding_step
        input_bias = first.bias[0] if self.rnn_type == "gru" else first.bias
        table = tf.matmul(self.embedding.embeddings, first.kernel) + input_bias
        first_layer_step = {
            "lstm": _lstm_step,
            "gru": _gru_step,
            "simple_rnn": _simple_rnn_step,
        }[self.rnn_type]

        def step(token_ids, state, index):
            del index
            per_layer = self._split_state(state)
            x, new_state = first_layer_step(first, tf.gather(table, token_ids), per_layer[0])
            for layer, layer_state in zip(self.rnn_layers[1:], per_layer[1:], strict=True):
                x, states = layer.cell(x, list(layer_state), training=False)
                new_state.extend(states)
            return self.projection(x), tuple(new_state)

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


# One step of each Keras cell given its input projection `x @ kernel + input bias` (`[batch,
# gates * units]`), written out as in keras.layers.LSTMCell / GRUCell (reset_after=True) /
# SimpleRNNCell. Each returns (output, new states as a list).


def _lstm_step(cell, projected_input, state):
    h, c = state
    z = projected_input + tf.matmul(h, cell.recurrent_kernel)
    z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
    i = cell.recurrent_activation(z_i)
    f = cell.recurrent_activation(z_f)
    c = f * c + i * cell.activation(z_c)
    h = cell.recurrent_activation(z_o) * cell.activation(c)
    return h, [h, c]


def _gru_step(cell, projected_input, state):
    (h,) = state
    x_z, x_r, x_h = tf.split(projected_input, 3, axis=-1)
    inner = tf.matmul(h, cell.recurrent_kernel) + cell.bias[1]
    inner_z, inner_r, inner_h = tf.split(inner, 3, axis=-1)
    z = cell.recurrent_activation(x_z + inner_z)
    r = cell.recurrent_activation(x_r + inner_r)
    candidate = cell.activation(x_h + r * inner_h)
    h = z * h + (1 - z) * candidate
    return h, [h]


def _simple_rnn_step(cell, projected_input, state):
    (h,) = state
    h = cell.activation(projected_input + tf.matmul(h, cell.recurrent_kernel))
    return h, [h]
