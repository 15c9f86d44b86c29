"""`EncoderDecoder`: the contract of kerasgen's encoder-decoders, which translation serves."""

import keras
import tensorflow as tf


class EncoderDecoder(keras.Model):
    """The base of `Seq2Seq` and `TransformerSeq2Seq`: what `TranslationService` calls.

    A subclass reads the source once (`encode`) into a state whose every leaf has the rows
    first, so beam search tiles and reorders it on axis 0, then decodes one target position at
    a time (`decoding_step`, the step contract of `kerasgen.decoding`). Teacher forcing
    (`call`) gives the logits of whole target sequences, for training and `score`.

    `attention` is truthy when the model attends over the source; `translate`'s `attention`
    output is then the weights of every step, recorded in a buffer that
    `with_attention_buffer` adds to the state.

    Args:
        source_vocab_size: ids of the source tokenizer (reserved ids included).
        target_vocab_size: ids of the target tokenizer.
    """

    def __init__(self, source_vocab_size, target_vocab_size, **kwargs):
        super().__init__(**kwargs)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size

    def call(self, inputs, training=False, return_attention=False):
        """Teacher-forced logits of a batch of pairs.

        Args:
            inputs: `(source_ids, target_ids)`, int `[batch, source_len]` and
                `[batch, target_len]` (the target starting with the start token), 0-padded.
            training: enables dropout.
            return_attention: also return the attention weights (models with attention).

        Returns:
            logits `[batch, target_len, target_vocab_size]`; with `return_attention`, also
            the weights `[batch, target_len, source_len]`.
        """
        raise NotImplementedError

    def encode(self, source_ids, training=False):
        """Reads the source once; returns the decoder's initial state.

        Args:
            source_ids: int `[batch, source_len]`, right-padded with 0.
            training: enables dropout.

        Returns:
            A dict of tensors, all with the batch first (what beam search tiles per beam).
        """
        raise NotImplementedError

    def decoding_step(self, token_ids, state, index):
        """One target position of every row: the step function of `kerasgen.decoding.decode`.

        Args:
            token_ids: int `[rows]`, the target token at position `index`.
            state: from `encode` (tiled per beam by beam search), optionally with an
                `attention` buffer `[rows, max_length, source_len]` (see
                `with_attention_buffer`) whose row `index` receives this step's weights.
            index: scalar int32 position.

        Returns:
            (logits `[rows, target_vocab_size]` for position `index + 1`, new state).
        """
        raise NotImplementedError

    def with_attention_buffer(self, state, max_length):
        """Adds a zero `attention` buffer `[batch, max_length, source_len]` to an `encode`
        state, so that `decoding_step` records the weights of every step."""
        raise NotImplementedError

    def disable_cudnn(self):
        """Keeps `CudnnRNN*` ops out of the graph; the exporter calls this before tracing."""
        raise NotImplementedError

    @staticmethod
    def _record_attention(state, weights, index):
        """Writes a step's attention `weights` `[rows, source_len]` into row `index` of the
        state's attention buffer; a state without one is returned as it is."""
        if "attention" not in state:
            return state
        buffer = state["attention"]  # [rows, max_length, source_len]
        rows = tf.shape(buffer)[0]
        positions = tf.stack([tf.range(rows), tf.fill([rows], index)], axis=1)  # [rows, 2]
        return dict(state, attention=tf.tensor_scatter_nd_update(buffer, positions, weights))

    def get_config(self):
        config = super().get_config()
        config.update(
            source_vocab_size=self.source_vocab_size,
            target_vocab_size=self.target_vocab_size,
        )
        return config
