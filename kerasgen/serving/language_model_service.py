"""The serving functions of a language model: raw strings in, generated strings out.

`LanguageModelService` wraps a model that follows the decoding step contract
(`initial_decoding_state(batch)`, `decoding_step(ids, state, index)`, and `model(ids)` for the
whole sequence) and its tokenizer, and builds the `tf.function`s that become the SavedModel's
signatures. Tokenization, the whole decode loop and detokenization run inside each function, so
an export needs nothing of kerasgen to run. The same functions serve in-process generation
(training samples, tests), so what a user sees during training is what the export returns.
"""

import numpy as np
import tensorflow as tf

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


def language_model_warmup_inputs(signature_names):
    """One small request per language-model signature in `signature_names`: the warmup file's
    records, also used by the tests."""
    prompts = np.array([b"", b"Hello"], dtype=object)
    requests = {
        "serving_default": {"prompt": prompts},
        "generate": {
            "prompt": prompts,
            **sampling_warmup_parameters(),
        },
        "beam_search": {
            "prompt": prompts,
            "length_penalty": np.array([0.6, 0.0], np.float32),
        },
        "score": {"text": prompts},
    }
    return {name: inputs for name, inputs in requests.items() if name in signature_names}


class LanguageModelService:
    """Builds the generation signatures of one model and tokenizer.

    Args:
        model: a Keras model with `initial_decoding_state`, `decoding_step` and `call`.
        tokenizer: a `kerasgen.tokenizers.Tokenizer`.
        config: a `DecodingConfig` (limits and defaults).
        jit_compile: compile the decode loop with XLA (for TensorFlow programs on GPU/TPU;
            TensorFlow Serving runs XLA functions only experimentally).

    Signatures (every input and output is `[batch]` or `[batch, ...]`, as TensorFlow
    Serving's REST row format needs):
        serving_default(prompt) → text, num_tokens, log_prob (the export's defaults; fresh
            randomness on every call).
        generate(prompt, max_new_tokens, temperature, top_k, top_p, seed) → the same outputs.
        beam_search(prompt, length_penalty) → texts, scores `[batch, num_beams]`.
        score(text) → log_prob, num_tokens (start and end tokens included in the scoring).
    """

    def __init__(self, model, tokenizer, config, *, jit_compile=False):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.jit_compile = jit_compile
        self._sample_loop = tf.function(self._sample_loop_impl, jit_compile=jit_compile)
        self._beam_loop = tf.function(self._beam_loop_impl, jit_compile=jit_compile)
        self.serving_default = tf.function(
            self._serving_default, input_signature=[batch_vector(tf.string)]
        )
        self.generate = tf.function(
            self._generate,
            input_signature=[
                batch_vector(tf.string),
                batch_vector(tf.int32),
                batch_vector(tf.float32),
                batch_vector(tf.int32),
                batch_vector(tf.float32),
                batch_vector(tf.int32),
            ],
        )
        self.beam_search = tf.function(
            self._beam_search,
            input_signature=[batch_vector(tf.string), batch_vector(tf.float32)],
        )
        self.score = tf.function(self._score, input_signature=[batch_vector(tf.string)])

    def signatures(self):
        """`{name: tf.function}` of every signature an export carries."""
        return {
            "serving_default": self.serving_default,
            "generate": self.generate,
            "beam_search": self.beam_search,
            "score": self.score,
        }

    def tracked_resources(self):
        """What the export must carry besides the signatures: the model and the tokenizer."""
        return [self.model, self.tokenizer]

    def warmup_inputs(self):
        """One small request per signature, for TensorFlow Serving's warmup file."""
        return language_model_warmup_inputs(self.signatures())

    # The decode loops: dense tensors in and out, so they compile with XLA.

    def _sample_loop_impl(
        self, prompt_ids, prompt_lengths, max_new_tokens, temperature, top_k, top_p, seeds
    ):
        strategy = SamplingStrategy(
            end_id=self.tokenizer.end_id,
            pad_id=self.tokenizer.pad_id,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seeds=seeds,
        )
        initial_state = self.model.initial_decoding_state(tf.shape(prompt_ids)[0])
        return decode(self._step_fn(), strategy, initial_state, prompt_ids, prompt_lengths)

    def _beam_loop_impl(self, prompt_ids, prompt_lengths, max_new_tokens, length_penalty):
        strategy = BeamSearchStrategy(
            num_beams=self.config.num_beams,
            end_id=self.tokenizer.end_id,
            pad_id=self.tokenizer.pad_id,
            max_new_tokens=max_new_tokens,
            alpha=length_penalty,
        )
        initial_state = self.model.initial_decoding_state(tf.shape(prompt_ids)[0])
        return decode(self._step_fn(), strategy, initial_state, prompt_ids, prompt_lengths)

    def _step_fn(self):
        """The model's step function; a model may offer `decoding_step_fn()` to precompute, once
        per call and outside the loop, work its steps share (see TextGenerator)."""
        if hasattr(self.model, "decoding_step_fn"):
            return self.model.decoding_step_fn()
        return self.model.decoding_step

    # Signature bodies.

    def _prompts(self, prompt):
        token_ids = self.tokenizer.tokenize(prompt)
        return prepare_prompts(
            token_ids,
            start_id=self.tokenizer.start_id,
            pad_id=self.tokenizer.pad_id,
            max_prompt_tokens=self.config.max_prompt_tokens,
            max_length=self.config.max_length,
        )

    def _continuations(self, result):
        token_ids = generated_tokens(
            result["tokens"], result["prompt_lengths"], result["num_tokens"], self.tokenizer.end_id
        )
        return self.tokenizer.detokenize(token_ids)

    def _serving_default(self, prompt):
        batch = tf.shape(prompt)[0]
        config = self.config
        return self._generate(
            prompt,
            tf.fill([batch], config.max_new_tokens),
            tf.fill([batch], float(config.temperature)),
            tf.fill([batch], config.top_k),
            tf.fill([batch], float(config.top_p)),
            tf.fill([batch], -1),
        )

    def _generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        batch = tf.shape(prompt)[0]
        checks = generation_checks(
            batch,
            self.config.max_new_tokens_cap,
            batch_input="prompt",
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
        )
        # Everything after the checks depends on them, so a bad request fails with the check's
        # message rather than with whichever shape error an op meets first.
        with tf.control_dependencies(checks):
            prompt_ids, prompt_lengths = self._prompts(prompt)
            seeds = resolve_seeds(seed)
        result = self._sample_loop(
            prompt_ids, prompt_lengths, max_new_tokens, temperature, top_k, top_p, seeds
        )
        return {
            "text": self._continuations(result),
            "num_tokens": result["num_tokens"],
            "log_prob": result["log_prob"],
        }

    def _beam_search(self, prompt, length_penalty):
        batch = tf.shape(prompt)[0]
        with tf.control_dependencies([check_same_batch("length_penalty", length_penalty, batch)]):
            prompt_ids, prompt_lengths = self._prompts(prompt)
        result = self._beam_loop(
            prompt_ids,
            prompt_lengths,
            tf.fill([batch], self.config.max_new_tokens),
            length_penalty,
        )
        texts = self._continuations(result)
        return {
            "texts": tf.reshape(texts, [batch, self.config.num_beams]),
            "scores": result["scores"],
        }

    def _score(self, text):
        tokenizer = self.tokenizer
        token_ids = tf.cast(tokenizer.tokenize(text), tf.int32)
        batch = token_ids.nrows()
        starts = tf.fill([batch, 1], tf.constant(tokenizer.start_id, tf.int32))
        ends = tf.fill([batch, 1], tf.constant(tokenizer.end_id, tf.int32))
        sequence = tf.concat(
            [tf.RaggedTensor.from_tensor(starts), token_ids, tf.RaggedTensor.from_tensor(ends)],
            axis=1,
        )
        dense = sequence.to_tensor(default_value=tokenizer.pad_id)  # [batch, length]
        inputs, targets = dense[:, :-1], dense[:, 1:]
        logits = tf.cast(self.model(inputs, training=False), tf.float32)
        token_log_probs = tf.gather(tf.nn.log_softmax(logits), targets, batch_dims=2)
        mask = targets != tokenizer.pad_id
        return {
            "log_prob": tf.reduce_sum(tf.where(mask, token_log_probs, 0.0), axis=1),
            "num_tokens": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
        }
