"""`Seq2Seq`: a recurrent encoder-decoder, with or without attention."""

import keras
import tensorflow as tf

from kerasgen.layers import projected_rnn
from kerasgen.layers.bahdanau_attention import BahdanauAttention
from kerasgen.layers.luong_attention import LuongAttention
from kerasgen.models.encoder_decoder import EncoderDecoder

# Keras's layers with the input projection before the time loop (same weights and paths).
ENCODER_TYPES = {"lstm": projected_rnn.LSTM, "gru": projected_rnn.GRU}
DECODER_CELLS = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}
ATTENTION_TYPES = (None, "bahdanau", "luong_dot", "luong_general")


@keras.saving.register_keras_serializable(package="kerasgen")
class Seq2Seq(EncoderDecoder):
    """A recurrent encoder-decoder over source and target token ids.

    Encoder: source Embedding, then one LSTM (or GRU) layer over the source, optionally
    bidirectional with `rnn_units // 2` units per direction, whose outputs are concatenated and
    whose final states are concatenated direction by direction. The final states become the
    decoder's initial state; source padding (id 0) is masked, so they are the states after the
    last real token.

    Decoder: target Embedding and a recurrent cell of `rnn_units`, one step per target token,
    then a Dense over the target vocabulary. With `attention`:

    - "bahdanau": additive attention whose query is the previous decoder state; the context is
      fed to the cell beside the embedded token (Bahdanau et al., 2015).
    - "luong_dot" / "luong_general": multiplicative attention whose query is this step's decoder
      output (Luong et al., 2015); the previous step's attentional vector is fed to the cell
      beside the embedded token ("input feeding").

    In every attention variant the context and the decoder output are combined as
    `tanh(W_c [output; context])` before the projection. Source padding gets no weight.

    The same step serves training (`call`, teacher forcing, one `tf.scan` over the target) and
    decoding (`encode` once per request, then `decoding_step` through `kerasgen.decoding`): the
    contract of `EncoderDecoder`.

    Args:
        source_vocab_size: ids of the source tokenizer (reserved ids included).
        target_vocab_size: ids of the target tokenizer.
        embedding_dim: width of both embeddings.
        rnn_type: "lstm" or "gru".
        rnn_units: width of the decoder and of the encoder's output (both directions together).
        bidirectional: read the source in both directions.
        attention: None, "bahdanau", "luong_dot" or "luong_general".
        dropout: dropout rate on embeddings and on the decoder outputs (training only).

    Example:
        >>> model = Seq2Seq(40, 20, embedding_dim=8, rnn_units=16, attention="bahdanau")
        >>> logits = model((source_ids, target_in))  # [batch, target_len, 20]
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        embedding_dim=64,
        rnn_type="lstm",
        rnn_units=256,
        bidirectional=True,
        attention=None,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(source_vocab_size, target_vocab_size, **kwargs)
        if rnn_type not in ENCODER_TYPES:
            raise ValueError(
                f"Unknown rnn_type {rnn_type!r}; valid types: {', '.join(sorted(ENCODER_TYPES))}."
            )
        if attention not in ATTENTION_TYPES:
            raise ValueError(
                f"Unknown attention {attention!r}; valid: None, "
                f"{', '.join(a for a in ATTENTION_TYPES if a)}."
            )
        if bidirectional and rnn_units % 2:
            raise ValueError(f"A bidirectional encoder needs even rnn_units, got {rnn_units}.")
        self.embedding_dim = embedding_dim
        self.rnn_type = rnn_type
        self.rnn_units = rnn_units
        self.bidirectional = bidirectional
        self.attention = attention
        self.dropout = dropout

        # Every layer follows the model's dtype policy (a mixed one too), also when a saved model
        # is rebuilt from its config under another global policy.
        policy = self.dtype_policy
        self.source_embedding = keras.layers.Embedding(
            source_vocab_size, embedding_dim, name="source_embedding", dtype=policy
        )
        encoder_units = rnn_units // 2 if bidirectional else rnn_units
        encoder = ENCODER_TYPES[rnn_type](
            encoder_units,
            return_sequences=True,
            return_state=True,
            name=f"encoder_{rnn_type}",
            dtype=policy,
        )
        self.encoder = (
            keras.layers.Bidirectional(encoder, name="encoder", dtype=policy)
            if bidirectional
            else encoder
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocab_size, embedding_dim, name="target_embedding", dtype=policy
        )
        self.decoder_cell = DECODER_CELLS[rnn_type](
            rnn_units, name=f"decoder_{rnn_type}_cell", dtype=policy
        )
        if attention == "bahdanau":
            self.attention_layer = BahdanauAttention(rnn_units, name="attention", dtype=policy)
        elif attention is not None:
            self.attention_layer = LuongAttention(
                attention.split("_")[1], name="attention", dtype=policy
            )
        else:
            self.attention_layer = None
        self.attention_combine = (
            keras.layers.Dense(
                rnn_units, activation="tanh", use_bias=False, name="combine", dtype=policy
            )
            if attention
            else None
        )
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=policy)
        self.projection = keras.layers.Dense(target_vocab_size, name="projection", dtype=policy)

    @property
    def num_states(self):
        """State tensors of the recurrent cell: 2 for LSTM (h, c), 1 for GRU."""
        return 2 if self.rnn_type == "lstm" else 1

    def build(self, input_shape=None):
        """Builds every sublayer (the decoder's run inside a loop, where none may be created)."""
        del input_shape
        units = self.rnn_units
        self.source_embedding.build((None, None))
        self.encoder.build((None, None, self.embedding_dim))
        self.target_embedding.build((None, None))
        fed = units if self.attention else 0  # context (Bahdanau) or attentional vector (Luong)
        self.decoder_cell.build((None, self.embedding_dim + fed))
        if self.attention:
            self.attention_layer.build((None, units), (None, None, units))
            self.attention_combine.build((None, 2 * units))
        self.projection.build((None, units))
        self.built = True

    # Encoder.

    def encode(self, source_ids, training=False):
        """Reads the source once (see `EncoderDecoder.encode`) into the decoder's state: `rnn`
        (tuple of `[batch, rnn_units]`: h, c for LSTM), and with attention `memory` (encoder
        outputs `[batch, source_len, rnn_units]`), `keys` (the attention's precomputed keys,
        same shape), `source_mask` (bool `[batch, source_len]`) and `feed` (`[batch,
        rnn_units]`, the vector fed to the next step)."""
        source_mask = tf.not_equal(source_ids, 0)
        x = self.dropout_layer(self.source_embedding(source_ids), training=training)
        memory, *states = self.encoder(x, mask=source_mask, training=training)
        if self.bidirectional:
            forward, backward = states[: self.num_states], states[self.num_states :]
            states = [tf.concat([f, b], axis=-1) for f, b in zip(forward, backward, strict=True)]
        state = {"rnn": tuple(states)}
        if self.attention:
            state.update(
                memory=memory,
                keys=self.attention_layer.prepare_keys(memory),
                source_mask=source_mask,
                feed=tf.zeros_like(states[0]),
            )
        return state

    # Decoder.

    def _decoder_step(self, embedded, state):
        """One decoder step from an embedded token.

        Args:
            embedded: float `[batch, embedding_dim]`.
            state: as returned by `encode` (or a previous step).

        Returns:
            (output `[batch, rnn_units]` before the projection, attention weights
            `[batch, source_len]` or None, new state).
        """
        rnn_state = list(state["rnn"])
        weights = None
        if self.attention == "bahdanau":
            context, weights = self.attention_layer(
                rnn_state[0], state["memory"], state["keys"], state["source_mask"]
            )
            cell_input = tf.concat([embedded, context], axis=-1)
        elif self.attention:
            cell_input = tf.concat([embedded, state["feed"]], axis=-1)
        else:
            cell_input = embedded
        output, rnn_state = self.decoder_cell(cell_input, rnn_state)
        new_state = dict(state, rnn=tuple(rnn_state))
        if self.attention:
            if self.attention != "bahdanau":
                context, weights = self.attention_layer(
                    output, state["memory"], state["keys"], state["source_mask"]
                )
            output = self.attention_combine(tf.concat([output, context], axis=-1))
            new_state["feed"] = output
        return output, weights, new_state

    def call(self, inputs, training=False, return_attention=False):
        """Teacher-forced logits (see `EncoderDecoder.call`), one `tf.scan` over the target;
        `return_attention` only with attention."""
        source_ids, target_ids = inputs
        state = self.encode(source_ids, training=training)
        embedded = self.dropout_layer(self.target_embedding(target_ids), training=training)
        time_major = tf.transpose(embedded, [1, 0, 2])  # [target_len, batch, embedding_dim]
        batch = tf.shape(target_ids)[0]
        source_len = tf.shape(source_ids)[1]
        no_weights = tf.zeros([batch, source_len], self.compute_dtype)

        def step(carry, embedded_t):
            _, _, state = carry
            output, weights, state = self._decoder_step(embedded_t, state)
            return output, no_weights if weights is None else weights, state

        initial = (tf.zeros([batch, self.rnn_units], self.compute_dtype), no_weights, state)
        outputs, weights, _ = tf.scan(step, time_major, initializer=initial)
        outputs = tf.transpose(outputs, [1, 0, 2])  # [batch, target_len, rnn_units]
        logits = self.projection(self.dropout_layer(outputs, training=training))
        if return_attention:
            return logits, tf.transpose(weights, [1, 0, 2])
        return logits

    def decoding_step(self, token_ids, state, index):
        """One decoder step of every row (see `EncoderDecoder.decoding_step`)."""
        output, weights, state = self._decoder_step(self.target_embedding(token_ids), state)
        return self.projection(output), self._record_attention(state, weights, index)

    def with_attention_buffer(self, state, max_length):
        """Adds a zero `attention` buffer `[batch, max_length, source_len]` to an `encode` state,
        so that `decoding_step` records the weights of every step (attention models only)."""
        if not self.attention:
            raise ValueError("This Seq2Seq model has no attention to record.")
        batch, source_len = tf.shape(state["memory"])[0], tf.shape(state["memory"])[1]
        buffer = tf.zeros([batch, max_length, source_len], state["memory"].dtype)
        return dict(state, attention=buffer)

    def disable_cudnn(self):
        """Portable kernels only (no `CudnnRNN*` ops): the exporter calls this before tracing."""
        layers = (
            [self.encoder.forward_layer, self.encoder.backward_layer]
            if self.bidirectional
            else [self.encoder]
        )
        for layer in layers:
            if hasattr(layer, "use_cudnn"):
                layer.use_cudnn = False

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding_dim=self.embedding_dim,
            rnn_type=self.rnn_type,
            rnn_units=self.rnn_units,
            bidirectional=self.bidirectional,
            attention=self.attention,
            dropout=self.dropout,
        )
        return config
