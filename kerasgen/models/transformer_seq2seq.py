"""`TransformerSeq2Seq`: a Transformer encoder-decoder ("Attention Is All You Need", pre-LN)."""

import keras
import tensorflow as tf

from kerasgen.layers import (
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    cache_write_indices,
    sinusoidal_position_encoding,
)
from kerasgen.models.encoder_decoder import EncoderDecoder
from kerasgen.models.transformer_config import check_transformer_sizes, transformer_config


@keras.saving.register_keras_serializable(package="kerasgen")
class TransformerSeq2Seq(EncoderDecoder):
    """A Transformer encoder-decoder over source and target token ids.

    Encoder: source embedding (scaled by `sqrt(width)`) plus a sinusoidal position encoding,
    `num_layers` pre-LayerNorm blocks of bidirectional self-attention (source padding, id 0,
    masked) and a GELU MLP, then a LayerNorm. Decoder: target embedding and the same position
    encoding, `num_layers` pre-LayerNorm blocks of causal self-attention, attention over the
    encoder's output (padding masked) and a GELU MLP, a LayerNorm, and the output projection.
    Dropout on the embeddings, the attention weights and every residual branch (training only).

    Choices:

    - Sinusoidal positions, not learned ones: no weights, and no maximum length in `call`, so a
      source or a scored target longer than anything in training still runs (the service cuts
      sources at its own `max_prompt_tokens`). Only decoding has a limit, `max_target_length`.
    - Tied output projection by default (`tie_embeddings`): the target embedding transposed, as
      in Vaswani et al. Fewer weights, which suits the tens of thousands of pairs this zoo
      trains on, and rare target tokens learn from both ends. Embeddings start at
      `N(0, 1 / width)`, so scaled by `sqrt(width)` they meet the unit-sized position signal
      at its scale, and the tied logits of a LayerNormed hidden state start near unit scale.
      The source and target vocabularies stay separate.

    The `EncoderDecoder` contract (what `kerasgen.serving.TranslationService` calls):

    - `encode(source_ids)`: runs the encoder once per request and computes every decoder
      layer's cross-attention keys and values from its output; the state also holds the
      self-attention key/value caches, allocated there at `max_target_length` positions
      (fixed shapes: the decode loop compiles with XLA). Every leaf has the rows first, so beam
      search tiles and reorders the state on axis 0.
    - `decoding_step(token_ids, state, index)`: one target position of every row, written into
      the caches at `index`; float32 logits.
    - `attention` / `with_attention_buffer(state, max_length)`: `translate`'s `attention`
      output is the cross-attention weights of the LAST decoder layer averaged over its heads,
      `[batch, target_len, source_len]`; row `j` is what produced target token `j`.
    - `call((source_ids, target_ids))`: teacher-forced logits (training, `score`).

    A service decodes at most `max_target_length` positions: its `max_new_tokens_cap` (its
    buffer is `1 + max_new_tokens_cap` with the start token) must not exceed it.
    `with_attention_buffer` refuses a larger buffer when the service traces `translate`.

    Args:
        source_vocab_size: ids of the source tokenizer (reserved ids included).
        target_vocab_size: ids of the target tokenizer.
        width: model width (embeddings and residual stream); even.
        num_layers: encoder blocks, and as many decoder blocks.
        num_heads: attention heads of every attention; must divide `width`.
        mlp_width: hidden width of every block's MLP.
        dropout: dropout rate (training only).
        max_target_length: target positions a decode can hold: the size of the decoding
            caches (teacher forcing has no such limit).
        tie_embeddings: use the target embedding as the output projection.
        layer_norm_epsilon: every LayerNorm's epsilon.

    Example:
        >>> model = TransformerSeq2Seq(40, 20, width=16, num_layers=2, num_heads=2, mlp_width=32)
        >>> logits = model((source_ids, target_in))  # [batch, target_len, 20], float32
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        width=256,
        num_layers=3,
        num_heads=4,
        mlp_width=1024,
        dropout=0.0,
        max_target_length=512,
        tie_embeddings=True,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(source_vocab_size, target_vocab_size, **kwargs)
        check_transformer_sizes(num_layers, num_heads, width)
        if width % 2:
            raise ValueError(f"width must be even (sinusoidal positions), got {width}.")
        if max_target_length < 1:
            raise ValueError(f"max_target_length must be at least 1, got {max_target_length}.")
        self.width = width
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_width = mlp_width
        self.dropout = dropout
        self.max_target_length = max_target_length
        self.tie_embeddings = tie_embeddings
        self.layer_norm_epsilon = layer_norm_epsilon

        embedding = {"class_name": "RandomNormal", "config": {"stddev": width**-0.5}}
        self.source_embedding = keras.layers.Embedding(
            source_vocab_size, width, embeddings_initializer=embedding, name="source_embedding"
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocab_size, width, embeddings_initializer=embedding, name="target_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(dropout)
        block = dict(dropout=dropout, layer_norm_epsilon=layer_norm_epsilon)
        self.encoder_blocks = [
            TransformerEncoderBlock(width, num_heads, mlp_width, name=f"encoder_{i}", **block)
            for i in range(num_layers)
        ]
        self.encoder_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="encoder_norm"
        )
        self.decoder_blocks = [
            TransformerDecoderBlock(width, num_heads, mlp_width, name=f"decoder_{i}", **block)
            for i in range(num_layers)
        ]
        self.decoder_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="decoder_norm"
        )
        self.output_projection = (
            None
            if tie_embeddings
            else keras.layers.Dense(target_vocab_size, use_bias=False, name="output_projection")
        )

    def build(self, input_shape=None):
        """Builds every sublayer (the decoding step runs inside a loop, where none may be
        created)."""
        del input_shape
        sequence = (None, None, self.width)
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        for layer in [*self.encoder_blocks, self.encoder_norm, *self.decoder_blocks]:
            layer.build(sequence)
        self.decoder_norm.build(sequence)
        if self.output_projection is not None:
            self.output_projection.build(sequence)
        self.built = True

    @property
    def head_dim(self):
        return self.width // self.num_heads

    @property
    def attention(self):
        """The attention `translate` reports (truthy: this model always has one)."""
        return "scaled_dot_product"

    # Shared by both paths.

    def _embed(self, embedding, token_ids, positions, training):
        """Token embedding times `sqrt(width)` plus the position signal, then dropout."""
        x = embedding(token_ids) * tf.cast(self.width**0.5, self.compute_dtype)
        x = x + sinusoidal_position_encoding(positions, self.width, self.compute_dtype)
        return self.embedding_dropout(x, training=training)

    def _memory(self, source_ids, training):
        """Runs the encoder.

        Returns:
            (per-layer tuples of the cross-attention keys and of the values, each
            `[batch, heads, source_len, head_dim]`; bool source mask `[batch, source_len]`).
        """
        source_ids = tf.cast(source_ids, tf.int32)
        source_mask = tf.not_equal(source_ids, 0)
        positions = tf.range(tf.shape(source_ids)[1])
        x = self._embed(self.source_embedding, source_ids, positions, training)
        for block in self.encoder_blocks:
            x = block(x, source_mask, training=training)
        memory = self.encoder_norm(x)  # [batch, source_len, width]
        keys, values = zip(
            *(block.memory_keys_values(memory) for block in self.decoder_blocks), strict=True
        )
        return tuple(keys), tuple(values), source_mask

    def _logits(self, hidden):
        """Decoder output `[..., width]` → float32 logits `[..., target_vocab_size]`."""
        hidden = self.decoder_norm(hidden)
        if self.output_projection is None:
            embeddings = tf.cast(self.target_embedding.embeddings, hidden.dtype)
            logits = tf.matmul(hidden, embeddings, transpose_b=True)
        else:
            logits = self.output_projection(hidden)
        # Float32 whatever the compute dtype: the loss and the samplers need the small logits.
        return tf.cast(logits, "float32")

    # Teacher forcing.

    def call(self, inputs, training=False, return_attention=False):
        """Teacher-forced logits (see `EncoderDecoder.call`), float32; the attention weights
        are the last decoder layer's cross-attention, float32, averaged over its heads."""
        source_ids, target_ids = inputs
        memory_keys, memory_values, source_mask = self._memory(source_ids, training)
        target_ids = tf.cast(target_ids, tf.int32)
        positions = tf.range(tf.shape(target_ids)[1])
        x = self._embed(self.target_embedding, target_ids, positions, training)
        for block, keys, values in zip(
            self.decoder_blocks, memory_keys, memory_values, strict=True
        ):
            x, weights = block(x, keys, values, source_mask, training=training)
        logits = self._logits(x)
        return (logits, weights) if return_attention else logits

    # Decoding (the step contract of kerasgen.decoding).

    def encode(self, source_ids, training=False):
        """Reads the source once (see `EncoderDecoder.encode`) into the decoder's state:
        `memory_keys`, `memory_values` (per-layer tuples of `[batch, heads, source_len,
        head_dim]`, the cross-attention's), `source_mask` (bool `[batch, source_len]`), and the
        empty self-attention caches `keys`, `values` (per-layer tuples of `[batch, heads,
        max_target_length, head_dim]`)."""
        memory_keys, memory_values, source_mask = self._memory(source_ids, training)
        batch = tf.shape(source_mask)[0]
        cache = tf.zeros(
            [batch, self.num_heads, self.max_target_length, self.head_dim], self.compute_dtype
        )
        return {
            "memory_keys": memory_keys,
            "memory_values": memory_values,
            "source_mask": source_mask,
            "keys": (cache,) * self.num_layers,
            "values": (cache,) * self.num_layers,
        }

    def decoding_step(self, token_ids, state, index):
        """One decoder position of every row (see `EncoderDecoder.decoding_step`): the state's
        caches hold positions `0 .. index - 1`, `index < max_target_length`; float32 logits
        and attention buffer."""
        token_ids = tf.cast(token_ids, tf.int32)
        index = tf.convert_to_tensor(index, tf.int32)
        # Past the caches a write would be lost (XLA drops out-of-range scatters): say so where
        # the runtime checks (graph mode; XLA compiles asserts away).
        check = tf.debugging.assert_less(
            index,
            self.max_target_length,
            message=f"the decode is longer than this model's max_target_length "
            f"({self.max_target_length})",
        )
        with tf.control_dependencies([check]):
            x = self._embed(self.target_embedding, token_ids, index, training=False)
        rows = tf.shape(token_ids)[0]
        cache_indices = cache_write_indices(rows, self.num_heads, index)
        keys, values = [], []
        for block, key_cache, value_cache, memory_keys, memory_values in zip(
            self.decoder_blocks,
            state["keys"],
            state["values"],
            state["memory_keys"],
            state["memory_values"],
            strict=True,
        ):
            x, weights, key_cache, value_cache = block.step(
                x,
                key_cache,
                value_cache,
                index,
                cache_indices,
                memory_keys=memory_keys,
                memory_values=memory_values,
                source_mask=state["source_mask"],
            )
            keys.append(key_cache)
            values.append(value_cache)
        state = dict(state, keys=tuple(keys), values=tuple(values))
        return self._logits(x), self._record_attention(state, weights, index)

    def with_attention_buffer(self, state, max_length):
        """Adds a zero `attention` buffer float32 `[batch, max_length, source_len]` to an
        `encode` state, so that `decoding_step` records the weights of every step.

        Raises:
            ValueError: `max_length - 1` (the positions a decode feeds) exceeds
                `max_target_length`. A plain ValueError, as autograph re-raises only the built-in
                types as themselves when the service traces this (a subclass would arrive as a
                StagingError).
        """
        if max_length - 1 > self.max_target_length:
            raise ValueError(
                f"A decode of {max_length - 1} target positions does not fit this model's "
                f"max_target_length ({self.max_target_length}); lower max_new_tokens_cap."
            )
        shape = tf.shape(state["source_mask"])
        return dict(state, attention=tf.zeros([shape[0], max_length, shape[1]], tf.float32))

    def disable_cudnn(self):
        """Nothing to do (no recurrent layers); part of the contract the exporter calls."""

    def get_config(self):
        config = super().get_config()
        config.update(**transformer_config(self), max_target_length=self.max_target_length)
        return config
