"""The serving functions of an encoder-decoder: source strings in, translations out.

`TranslationService` wraps a `Seq2Seq` (its `encode`, `decoding_step` and `call`) and its source
and target tokenizers, and builds the `tf.function`s that become the SavedModel's signatures.
The encoder runs once per request; the decoder then runs through the shared decode loop
(`kerasgen.decoding.decode`), whose strategies tile the encoder's outputs and states per beam.
Tokenization, the loop and detokenization are all inside each function.
"""

import numpy as np
import tensorflow as tf

from kerasgen.data.translation_pipeline import add_source_end
from kerasgen.decoding import (
    BeamSearchStrategy,
    SamplingStrategy,
    decode,
    generated_tokens,
    prepare_prompts,
)
from kerasgen.serving.request_checks import (
    batch_vector,
    check_same_batch,
    generation_checks,
    resolve_seeds,
    sampling_warmup_parameters,
)


def _token_strings(tokenizer, ids):
    """Each id of int `[batch, length]` as its own string `[batch, length]` (reserved → "")."""
    flat = tf.reshape(ids, [-1, 1])
    return tf.reshape(tokenizer.detokenize(flat), tf.shape(ids))


class TranslationService:
    """Builds the translation signatures of one encoder-decoder and its two tokenizers.

    Args:
        model: a `Seq2Seq`.
        source_tokenizer, target_tokenizer: `kerasgen.tokenizers.Tokenizer`s.
        config: a `DecodingConfig`. For translation `max_prompt_tokens` bounds the *source*
            (longer sources keep their first tokens, the end token included); the target
            buffer is `1 + max_new_tokens_cap` (the start token plus the translation).
        jit_compile: compile the decode loops with XLA.

    Signatures (every input and output `[batch]` or `[batch, ...]`):
        serving_default(source) → text, num_tokens, log_prob (greedy or sampled with the
            export's defaults).
        translate(source, max_new_tokens, temperature, top_k, top_p, seed) → the same, plus for
            attention models `attention` `[batch, target_len, source_len]` (row `j` produced
            target token `j`, the end token included; zero past each row's tokens) and the
            tokens labelling its axes, `source_tokens` `[batch, source_len]` and
            `target_tokens` `[batch, target_len]` (reserved ids as "", the end token too).
        beam_search(source, length_penalty) → texts, scores `[batch, num_beams]`.
        score(source, target) → log_prob, num_tokens of the target given the source (end
            token included).
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, config, *, jit_compile=False):
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.tokenizer = target_tokenizer  # what the exporter records as "tokenizer"
        self.config = config
        self.jit_compile = jit_compile
        self.max_length = 1 + config.max_new_tokens_cap  # start token + translation
        self._sample_loop = tf.function(self._sample_loop_impl, jit_compile=jit_compile)
        self._beam_loop = tf.function(self._beam_loop_impl, jit_compile=jit_compile)
        strings, ints, floats = (batch_vector(t) for t in (tf.string, tf.int32, tf.float32))
        self.serving_default = tf.function(self._serving_default, input_signature=[strings])
        self.translate = tf.function(
            self._translate, input_signature=[strings, ints, floats, ints, floats, ints]
        )
        self.beam_search = tf.function(self._beam_search, input_signature=[strings, floats])
        self.score = tf.function(self._score, input_signature=[strings, strings])

    def signatures(self):
        """`{name: tf.function}` of every signature an export carries."""
        return {
            "serving_default": self.serving_default,
            "translate": self.translate,
            "beam_search": self.beam_search,
            "score": self.score,
        }

    def tracked_resources(self):
        """What an export must track: the model and both tokenizers (tables and vocabularies)."""
        return [self.model, self.source_tokenizer, self.target_tokenizer]

    def warmup_inputs(self):
        """One small request per signature (an empty source included), for the warmup file."""
        sources = np.array([b"", b"March 3, 2021"], dtype=object)
        return {
            "serving_default": {"source": sources},
            "translate": {
                "source": sources,
                **sampling_warmup_parameters(),
            },
            "beam_search": {
                "source": sources,
                "length_penalty": np.array([self.config.length_penalty] * 2, np.float32),
            },
            "score": {"source": sources, "target": np.array([b"", b"2021-03-03"], dtype=object)},
        }

    # The decode loops: dense tensors in and out, so they compile with XLA.

    def _start_buffer(self, batch):
        empty = tf.RaggedTensor.from_row_lengths(
            tf.zeros([0], tf.int32), tf.zeros([batch], tf.int64)
        )
        return prepare_prompts(
            empty,
            start_id=self.target_tokenizer.start_id,
            pad_id=self.target_tokenizer.pad_id,
            max_prompt_tokens=1,
            max_length=self.max_length,
        )

    def _sample_loop_impl(self, source_ids, max_new_tokens, temperature, top_k, top_p, seeds):
        strategy = SamplingStrategy(
            end_id=self.target_tokenizer.end_id,
            pad_id=self.target_tokenizer.pad_id,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seeds=seeds,
        )
        state = self.model.encode(source_ids)
        if self.model.attention:
            state = self.model.with_attention_buffer(state, self.max_length)
        prompt_ids, prompt_lengths = self._start_buffer(tf.shape(source_ids)[0])
        result, state = decode(
            self.model.decoding_step,
            strategy,
            state,
            prompt_ids,
            prompt_lengths,
            return_state=True,
        )
        if self.model.attention:
            result["attention"] = state["attention"]
        return result

    def _beam_loop_impl(self, source_ids, max_new_tokens, length_penalty):
        strategy = BeamSearchStrategy(
            num_beams=self.config.num_beams,
            end_id=self.target_tokenizer.end_id,
            pad_id=self.target_tokenizer.pad_id,
            max_new_tokens=max_new_tokens,
            alpha=length_penalty,
        )
        state = self.model.encode(source_ids)
        prompt_ids, prompt_lengths = self._start_buffer(tf.shape(source_ids)[0])
        return decode(self.model.decoding_step, strategy, state, prompt_ids, prompt_lengths)

    # Signature bodies.

    def _sources(self, source):
        """Source ids int32 `[batch, source_len]`: tokens, end token, cut, 0-padded."""
        token_ids = tf.cast(self.source_tokenizer.tokenize(source), tf.int32)
        with_end = add_source_end(token_ids, self.source_tokenizer.end_id)
        with_end = with_end[:, : self.config.max_prompt_tokens]
        # At least one column, so an empty batch still gives the encoder a time step.
        width = tf.maximum(with_end.bounding_shape(axis=1), 1)
        shape = tf.stack([with_end.nrows(), width])
        return with_end.to_tensor(default_value=self.source_tokenizer.pad_id, shape=shape)

    def _translations(self, result):
        token_ids = generated_tokens(
            result["tokens"],
            result["prompt_lengths"],
            result["num_tokens"],
            self.target_tokenizer.end_id,
        )
        return self.target_tokenizer.detokenize(token_ids)

    def _serving_default(self, source):
        batch = tf.shape(source)[0]
        config = self.config
        outputs = self._translate(
            source,
            tf.fill([batch], config.max_new_tokens),
            tf.fill([batch], float(config.temperature)),
            tf.fill([batch], config.top_k),
            tf.fill([batch], float(config.top_p)),
            tf.fill([batch], -1),
        )
        return {key: outputs[key] for key in ("text", "num_tokens", "log_prob")}

    def _translate(self, source, max_new_tokens, temperature, top_k, top_p, seed):
        batch = tf.shape(source)[0]
        checks = generation_checks(
            batch,
            self.config.max_new_tokens_cap,
            batch_input="source",
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
        )
        with tf.control_dependencies(checks):
            source_ids = self._sources(source)
            seeds = resolve_seeds(seed)
        result = self._sample_loop(source_ids, max_new_tokens, temperature, top_k, top_p, seeds)
        outputs = {
            "text": self._translations(result),
            "num_tokens": result["num_tokens"],
            "log_prob": result["log_prob"],
        }
        if self.model.attention:
            outputs.update(self._attention_outputs(source_ids, result))
        return outputs

    def _attention_outputs(self, source_ids, result):
        num_tokens = result["num_tokens"]  # [batch]
        target_len = tf.reduce_max(tf.concat([num_tokens, [0]], axis=0))
        attention = result["attention"][:, :target_len, :]  # [batch, target_len, source_len]
        rows = tf.sequence_mask(num_tokens, target_len)  # [batch, target_len]
        attention = tf.where(rows[:, :, tf.newaxis], attention, tf.zeros_like(attention))
        target_ids = result["tokens"][:, 1 : 1 + target_len]  # after the start token
        target_ids = tf.where(rows, target_ids, tf.zeros_like(target_ids))
        return {
            "attention": attention,
            "source_tokens": _token_strings(self.source_tokenizer, source_ids),
            "target_tokens": _token_strings(self.target_tokenizer, target_ids),
        }

    def _beam_search(self, source, length_penalty):
        batch = tf.shape(source)[0]
        with tf.control_dependencies(
            [check_same_batch("length_penalty", length_penalty, batch, batch_input="source")]
        ):
            source_ids = self._sources(source)
        result = self._beam_loop(
            source_ids, tf.fill([batch], self.config.max_new_tokens), length_penalty
        )
        texts = self._translations(result)
        return {
            "texts": tf.reshape(texts, [batch, self.config.num_beams]),
            "scores": result["scores"],
        }

    def _score(self, source, target):
        batch = tf.shape(source)[0]
        with tf.control_dependencies(
            [check_same_batch("target", target, batch, batch_input="source")]
        ):
            source_ids = self._sources(source)
            target_ids = tf.cast(self.target_tokenizer.tokenize(target), tf.int32)
        tokenizer = self.target_tokenizer
        starts = tf.fill([batch, 1], tf.constant(tokenizer.start_id, tf.int32))
        ends = tf.fill([batch, 1], tf.constant(tokenizer.end_id, tf.int32))
        sequence = tf.concat(
            [tf.RaggedTensor.from_tensor(starts), target_ids, tf.RaggedTensor.from_tensor(ends)],
            axis=1,
        ).to_tensor(default_value=tokenizer.pad_id)  # [batch, target_len + 2]
        inputs, labels = sequence[:, :-1], sequence[:, 1:]
        logits = tf.cast(self.model((source_ids, inputs), training=False), tf.float32)
        token_log_probs = tf.gather(tf.nn.log_softmax(logits), labels, batch_dims=2)
        mask = labels != tokenizer.pad_id
        return {
            "log_prob": tf.reduce_sum(tf.where(mask, token_log_probs, 0.0), axis=1),
            "num_tokens": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
        }
