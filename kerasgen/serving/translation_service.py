"""The serving functions of an encoder-decoder: source strings in, translations out.

`TranslationService` is the `GenerationService` of a model with `Seq2Seq`'s contract (`encode`,
`decoding_step`, `call((source_ids, target_ids))`, `attention`, `with_attention_buffer`): the
encoder runs once per request and its outputs are the decoder's initial state, which the decode
loop's strategies tile per beam; the target buffer starts with the start token alone.
"""

import numpy as np
import tensorflow as tf

from kerasgen.data.translation_pipeline import add_source_end
from kerasgen.decoding import prepare_prompts
from kerasgen.serving.generation_service import GenerationService, token_strings


class TranslationService(GenerationService):
    """Builds the translation signatures of one encoder-decoder and its two tokenizers.

    Args:
        model: a `Seq2Seq`, or any model with its contract.
        source_tokenizer, target_tokenizer: `kerasgen.tokenizers.Tokenizer`s.
        config: a `DecodingConfig`. For translation `max_prompt_tokens` bounds the *source*
            (longer sources keep their first tokens, the end token included); the target
            buffer is `1 + max_new_tokens_cap` (the start token plus the translation). With
            `length_ratio`, every signature stops a row after `ceil(length_ratio * source
            tokens) + length_offset` new tokens if its `max_new_tokens` allows more.
        jit_compile: compile the decode loops with XLA.

    Signatures (see `GenerationService`):
        serving_default(source) → text, num_tokens, log_prob (greedy or sampled with the
            export's defaults).
        translate(source, max_new_tokens, temperature, top_k, top_p, seed) → the same, plus for
            attention models `attention` `[batch, target_len, source_len]` (row `j` produced
            target token `j`, the end token included; zero past each row's tokens) and the
            tokens labelling its axes, `source_tokens` `[batch, source_len]` and
            `target_tokens` `[batch, target_len]` (reserved ids as "", the end token too).
        translate_with_controls(source, max_new_tokens, temperature, top_k, top_p, seed,
            stop_sequences, repetition_penalty, no_repeat_ngram_size, min_new_tokens,
            num_samples, top_logprobs) → `[batch, samples, ...]` translations with per-token
            log-probabilities (no attention); the prompt the controls see is the start token.
        beam_search(source, length_penalty) → texts, scores `[batch, num_beams]`.
        score(source, target) → log_prob, num_tokens of the target given the source (end
            token included).
    """

    text_input = "source"
    sampling_signature = "translate"
    controls_signature = "translate_with_controls"
    score_inputs = ("source", "target")
    warmup_texts = np.array([b"", b"March 3, 2021"], dtype=object)

    def __init__(self, model, source_tokenizer, target_tokenizer, config, *, jit_compile=False):
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_length = 1 + config.max_new_tokens_cap  # start token + translation
        super().__init__(model, target_tokenizer, config, jit_compile=jit_compile)

    @property
    def translate(self):
        """The `translate` signature's function."""
        return self.sample

    @property
    def translate_with_controls(self):
        """The `translate_with_controls` signature's function."""
        return self.sample_with_controls

    def tracked_resources(self):
        """What an export must track: the model and both tokenizers (tables and vocabularies)."""
        return [self.model, self.source_tokenizer, self.target_tokenizer]

    def named_tokenizers(self):
        return {
            "source_tokenizer": self.source_tokenizer,
            "target_tokenizer": self.target_tokenizer,
        }

    def _sources(self, source):
        """Source ids int32 `[batch, source_len]`: tokens, end token, cut, 0-padded."""
        token_ids = tf.cast(self.source_tokenizer.tokenize(source), tf.int32)
        with_end = add_source_end(token_ids, self.source_tokenizer.end_id)
        with_end = with_end[:, : self.config.max_prompt_tokens]
        # At least one column, so an empty batch still gives the encoder a time step.
        width = tf.maximum(with_end.bounding_shape(axis=1), 1)
        shape = tf.stack([with_end.nrows(), width])
        return with_end.to_tensor(default_value=self.source_tokenizer.pad_id, shape=shape)

    # Family hooks.

    def _decoding_start(self, text):
        source_ids = self._sources(text)
        no_prompts = tf.RaggedTensor.from_row_lengths(
            tf.zeros([0], tf.int32), tf.zeros([tf.shape(source_ids)[0]], tf.int64)
        )
        prompt_ids, prompt_lengths = prepare_prompts(
            no_prompts,
            start_id=self.target_tokenizer.start_id,
            pad_id=self.target_tokenizer.pad_id,
            max_prompt_tokens=1,
            max_length=self.max_length,
        )
        return {
            "source_ids": source_ids,
            "prompt_ids": prompt_ids,
            "prompt_lengths": prompt_lengths,
        }

    def _new_token_limits(self, start, max_new_tokens):
        """A row's limit: `max_new_tokens`, or fewer when the config's `length_ratio` bounds
        it by the source, `ceil(length_ratio * source tokens) + length_offset` (the source's
        end token counted, as are the translation's)."""
        if not self.config.length_ratio:
            return max_new_tokens
        source_ids = start["source_ids"]
        source_lengths = tf.reduce_sum(
            tf.cast(source_ids != self.source_tokenizer.pad_id, tf.float32), axis=1
        )
        limits = tf.cast(tf.math.ceil(self.config.length_ratio * source_lengths), tf.int32)
        return tf.minimum(max_new_tokens, limits + self.config.length_offset)

    def _initial_state(self, start, *, sampling):
        state = self.model.encode(start["source_ids"])
        if sampling and self.model.attention:
            state = self.model.with_attention_buffer(state, self.max_length)
        return state

    def _step_fn(self):
        return self.model.decoding_step

    def _kept_state(self, state):
        return {"attention": state["attention"]} if self.model.attention else {}

    def _sampling_outputs(self, start, result):
        if not self.model.attention:
            return {}
        num_tokens = result["num_tokens"]  # [batch]
        target_len = tf.reduce_max(tf.concat([num_tokens, [0]], axis=0))
        attention = result["attention"][:, :target_len, :]  # [batch, target_len, source_len]
        rows = tf.sequence_mask(num_tokens, target_len)  # [batch, target_len]
        attention = tf.where(rows[:, :, tf.newaxis], attention, tf.zeros_like(attention))
        target_ids = result["tokens"][:, 1 : 1 + target_len]  # after the start token
        target_ids = tf.where(rows, target_ids, tf.zeros_like(target_ids))
        return {
            "attention": attention,
            "source_tokens": token_strings(self.source_tokenizer, start["source_ids"]),
            "target_tokens": token_strings(self.target_tokenizer, target_ids),
        }

    def _scoring(self, source, target):
        source_ids = self._sources(source)
        target_ids = self.target_tokenizer.tokenize(target)
        return target_ids, lambda inputs: self.model((source_ids, inputs), training=False)

    def _score_warmup_inputs(self):
        return {
            "source": self.warmup_texts,
            "target": np.array([b"", b"2021-03-03"], dtype=object),
        }
