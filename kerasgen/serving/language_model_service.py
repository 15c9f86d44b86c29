"""The serving functions of a language model: prompts in, continuations out.

`LanguageModelService` is the `GenerationService` of a decoder-only model (`TextGenerator`,
`GPT`): a prompt becomes the start of the token buffer, and the model's own state (recurrent
states, a key/value cache) starts empty.
"""

import numpy as np
import tensorflow as tf

from kerasgen.decoding import prepare_prompts
from kerasgen.decoding.engine import decode_with_prefill
from kerasgen.serving.decoding_config import DecodingConfig
from kerasgen.serving.generation_service import GenerationService, warmup_requests

_WARMUP_PROMPTS = np.array([b"", b"Hello"], dtype=object)


def language_model_warmup_inputs(signature_names):
    """One small request per language-model signature in `signature_names`: the warmup file's
    records, also used by the tests."""
    requests = warmup_requests(
        text_input=LanguageModelService.text_input,
        texts=_WARMUP_PROMPTS,
        sampling_signature=LanguageModelService.sampling_signature,
        controls_signature=LanguageModelService.controls_signature,
        score_inputs={"text": _WARMUP_PROMPTS},
        length_penalty=DecodingConfig.length_penalty,
        max_top_logprobs=DecodingConfig.max_top_logprobs,
    )
    return {name: inputs for name, inputs in requests.items() if name in signature_names}


class LanguageModelService(GenerationService):
    """Builds the generation signatures of one language model and its tokenizer.

    Args:
        model: a Keras model with `initial_decoding_state(batch)`, `decoding_step(ids, state,
            index)` (or `decoding_step_fn()` returning a faster equivalent) and `call(ids)`
            for the whole sequence.
        tokenizer: a `kerasgen.tokenizers.Tokenizer`.
        config: a `DecodingConfig` (limits and defaults); prompts keep their last
            `max_prompt_tokens - 1` tokens.
        jit_compile: compile the decode loops with XLA.

    Signatures (see `GenerationService`):
        serving_default(prompt) → text, num_tokens, log_prob.
        generate(prompt, max_new_tokens, temperature, top_k, top_p, seed) → the same outputs.
        generate_with_controls(prompt, max_new_tokens, temperature, top_k, top_p, seed,
            stop_sequences, repetition_penalty, no_repeat_ngram_size, min_new_tokens,
            num_samples, top_logprobs) → `[batch, samples, ...]` texts with per-token
            log-probabilities.
        beam_search(prompt, length_penalty) → texts, scores `[batch, num_beams]`.
        score(text) → log_prob, num_tokens (start and end tokens included in the scoring).
    """

    text_input = "prompt"
    sampling_signature = "generate"
    controls_signature = "generate_with_controls"
    score_inputs = ("text",)
    warmup_texts = _WARMUP_PROMPTS

    @property
    def generate(self):
        """The `generate` signature's function."""
        return self.sample

    @property
    def generate_with_controls(self):
        """The `generate_with_controls` signature's function."""
        return self.sample_with_controls

    def _decoding_start(self, text):
        token_ids = self.tokenizer.tokenize(text)
        prompt_ids, prompt_lengths = prepare_prompts(
            token_ids,
            start_id=self.tokenizer.start_id,
            pad_id=self.tokenizer.pad_id,
            max_prompt_tokens=self.config.max_prompt_tokens,
            max_length=self.config.max_length,
        )
        return {"prompt_ids": prompt_ids, "prompt_lengths": prompt_lengths}

    def _decode(self, strategy, start, *, sampling):
        """The prompts in one pass (`decode_with_prefill`) for a model that offers
        `prefill_decoding_state`; the same result as the base class's token-by-token loop."""
        if not hasattr(self.model, "prefill_decoding_state"):
            return super()._decode(strategy, start, sampling=sampling)
        return decode_with_prefill(
            self.model.prefill_decoding_state,
            self._step_fn(),
            strategy,
            start["prompt_ids"],
            start["prompt_lengths"],
            return_state=True,
        )

    def _initial_state(self, start, *, sampling):
        del sampling
        return self.model.initial_decoding_state(tf.shape(start["prompt_ids"])[0])

    def _step_fn(self):
        """The model's step function; a model may offer `decoding_step_fn()` to precompute, once
        per call and outside the loop, work its steps share (see TextGenerator)."""
        if hasattr(self.model, "decoding_step_fn"):
            return self.model.decoding_step_fn()
        return self.model.decoding_step

    def _scoring(self, text):
        return self.tokenizer.tokenize(text), lambda inputs: self.model(inputs, training=False)

    def _score_warmup_inputs(self):
        return {"text": _WARMUP_PROMPTS}
