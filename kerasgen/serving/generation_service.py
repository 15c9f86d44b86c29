"""`GenerationService`: what every family's serving functions share.

A service wraps a model that follows the decoding step contract of `kerasgen.decoding` and its
tokenizers, and builds the `tf.function`s that become a SavedModel's signatures: tokenization,
the whole decode loop and detokenization run inside each function, so an export needs nothing
of kerasgen to run, and the same functions serve in-process generation (training samples,
tests), so what a user sees during training is what the export returns.

The base class owns the signatures (their input specs, request checks, the sampling and
beam-search loops through `kerasgen.decoding.decode`, scoring), the warmup requests, the
resources an export tracks and its record. A family (`LanguageModelService`,
`TranslationService`) supplies only how its input text becomes a decoding start and the pieces
of its model: the initial state, the step function, teacher-forced logits for `score`, and any
outputs of its own (translation's attention). A new signature written here therefore serves
every family at once.
"""

import hashlib
import inspect

import keras
import numpy as np
import tensorflow as tf

from kerasgen.decoding import (
    BeamSearchStrategy,
    SamplingStrategy,
    decode,
    generated_tokens,
    generated_values,
    group_samples,
    repeat_rows,
    sample_seeds,
)
from kerasgen.errors import UserInputError
from kerasgen.serving.request_checks import (
    batch_matrix,
    batch_vector,
    beam_search_checks,
    check_same_batch,
    control_checks,
    controls_warmup_parameters,
    ensure_batch_matrix,
    ensure_batch_vectors,
    generation_checks,
    resolve_seeds,
    sampling_warmup_parameters,
)

# The per-row inputs of the sampling signature (`generate` / `translate`) after the text.
SAMPLING_PARAMETERS = {
    "max_new_tokens": tf.int32,
    "temperature": tf.float32,
    "top_k": tf.int32,
    "top_p": tf.float32,
    "seed": tf.int32,
}
# What `serving_default` returns: the sampling signature's outputs every family has.
DEFAULT_OUTPUTS = ("text", "num_tokens", "log_prob")
# The inputs the controls signature (`generate_with_controls` / `translate_with_controls`) takes
# after the sampling parameters, each with its "off" value: `stop_sequences` is `[batch, k]`
# (`""` for an unused column), the others `[batch]`.
CONTROL_PARAMETERS = {
    "stop_sequences": (tf.string, ""),
    "repetition_penalty": (tf.float32, 1.0),
    "no_repeat_ngram_size": (tf.int32, 0),
    "min_new_tokens": (tf.int32, 0),
    "num_samples": (tf.int32, 1),
    "top_logprobs": (tf.int32, 0),
}


def warmup_requests(
    *,
    text_input,
    texts,
    sampling_signature,
    controls_signature,
    score_inputs,
    length_penalty,
    max_top_logprobs,
):
    """One small two-row request per signature, for TensorFlow Serving's warmup file.

    Args:
        text_input: the name of the text input (`prompt`, `source`).
        texts: object array `[2]` of bytes, the text of each row.
        sampling_signature: the name of the sampling signature (`generate`, `translate`).
        controls_signature: the name of the controls signature (`generate_with_controls`,
            `translate_with_controls`).
        score_inputs: `{input_name: object array [2]}` of the `score` signature.
        length_penalty: Python float, the first row's beam-search length penalty (the second
            row takes 0, no penalty).
        max_top_logprobs: Python int, the export's limit of `top_logprobs`.

    Returns:
        `{signature_name: {input_name: array}}`.
    """
    return {
        "serving_default": {text_input: texts},
        sampling_signature: {text_input: texts, **sampling_warmup_parameters()},
        controls_signature: {
            text_input: texts,
            **sampling_warmup_parameters(),
            **controls_warmup_parameters(max_top_logprobs),
        },
        "beam_search": {
            text_input: texts,
            "length_penalty": np.array([length_penalty, 0.0], np.float32),
        },
        "score": score_inputs,
    }


def token_strings(tokenizer, ids):
    """Each id of int `[...]` as its own string, the same shape (reserved ids → "")."""
    flat = tf.reshape(ids, [-1, 1])
    return tf.reshape(tokenizer.detokenize(flat), tf.shape(ids))


def token_text_table(tokenizer):
    """string `[vocab_size]`: the text of every id detokenized alone (reserved ids → ""), so
    that per-token texts are one gather instead of a detokenization per token."""
    return token_strings(tokenizer, tf.range(tokenizer.vocab_size)).numpy()


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _named_inputs(body, names, specs):
    """`tf.function` of `body(*inputs)` whose parameters are called `names`.

    Keyword calls (`service.generate(prompt=...)`, `signatures["translate"](source=...)`) bind
    by the Python parameter names and the SavedModel names each input after its spec, so both
    must be the family's input names while the body is shared by every family.
    """
    parameters = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names
    ]
    signature = inspect.Signature(parameters)

    def function(*args, **kwargs):
        return body(*signature.bind(*args, **kwargs).args)

    function.__signature__ = signature
    function.__name__ = body.__name__.lstrip("_")
    return tf.function(
        function,
        input_signature=[
            tf.TensorSpec(spec.shape, spec.dtype, name=name)
            for name, spec in zip(names, specs, strict=True)
        ],
    )


class GenerationService:
    """The signatures of one model and its tokenizers; a family subclasses it.

    Args:
        model: a Keras model following the decoding step contract (`kerasgen.decoding`).
        tokenizer: the `kerasgen.tokenizers.Tokenizer` of the generated text (its reserved ids
            drive the decode loop; its vocabulary detokenizes the result).
        config: a `DecodingConfig` (limits and defaults).
        jit_compile: compile the decode loops with XLA (for TensorFlow programs on GPU/TPU;
            TensorFlow Serving runs XLA functions only experimentally).

    Signatures (every input `[batch]`, every output `[batch]` or `[batch, ...]`, as TensorFlow
    Serving's REST row format needs; `<text>` is the family's `text_input`):
        serving_default(<text>) → text, num_tokens, log_prob: the sampling signature with the
            export's defaults (fresh randomness on every call).
        <sampling_signature>(<text>, max_new_tokens, temperature, top_k, top_p, seed) → the
            same outputs, plus the family's own (`_sampling_outputs`).
        <controls_signature>(<text>, max_new_tokens, temperature, top_k, top_p, seed,
            stop_sequences `[batch, k]`, repetition_penalty, no_repeat_ngram_size,
            min_new_tokens, num_samples, top_logprobs) → `[batch, samples, ...]` outputs; see
            `_sample_with_controls`.
        beam_search(<text>, length_penalty) → texts, scores `[batch, num_beams]`.
        score(<score_inputs>) → log_prob, num_tokens (the end token included).

    A bad request is INVALID_ARGUMENT naming the input: an input that is not `[batch]`, a
    batch size that differs from the text's, a value out of range or NaN. The int32 inputs
    take int32 values only: a larger number is refused before the signature runs by whatever
    builds the tensor (the Python client's conversion, or TensorFlow Serving's request
    parsing), with that layer's message; `kerasgen.serving.loading` names the input.

    Subclasses set the class attributes `text_input`, `sampling_signature`,
    `controls_signature` and `score_inputs` (input names of `score`) and implement the hooks
    below the `# Family hooks` line.
    """

    text_input = None  # the name of the text input: "prompt", "source"
    sampling_signature = None  # the name of the sampling signature: "generate", "translate"
    controls_signature = None  # "<sampling_signature>_with_controls"
    score_inputs = None  # the names of score's string inputs: ("text",), ("source", "target")
    warmup_texts = None  # object array [2] of bytes: the text of the warmup requests' rows

    def __init__(self, model, tokenizer, config, *, jit_compile=False):
        if config.max_top_logprobs > tokenizer.vocab_size:
            raise UserInputError(
                f"max_top_logprobs={config.max_top_logprobs} is more than the "
                f"{tokenizer.vocab_size} tokens of the vocabulary"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.jit_compile = jit_compile
        self._sample_loop = tf.function(self._sample_loop_impl, jit_compile=jit_compile)
        self._beam_loop = tf.function(self._beam_loop_impl, jit_compile=jit_compile)
        self._controls_loop = tf.function(self._controls_loop_impl, jit_compile=jit_compile)
        self._token_texts = token_text_table(tokenizer)  # a constant of the controls signature
        strings, floats = batch_vector(tf.string), batch_vector(tf.float32)
        self.serving_default = _named_inputs(self._serving_default, [self.text_input], [strings])
        self.sample = _named_inputs(
            self._sample,
            [self.text_input, *SAMPLING_PARAMETERS],
            [strings, *(batch_vector(dtype) for dtype in SAMPLING_PARAMETERS.values())],
        )
        self.sample_with_controls = _named_inputs(
            self._sample_with_controls,
            [self.text_input, *SAMPLING_PARAMETERS, *CONTROL_PARAMETERS],
            [strings, *(batch_vector(dtype) for dtype in SAMPLING_PARAMETERS.values())]
            + [batch_matrix(tf.string)]
            + [batch_vector(dtype) for dtype, _ in list(CONTROL_PARAMETERS.values())[1:]],
        )
        self.beam_search = _named_inputs(
            self._beam_search, [self.text_input, "length_penalty"], [strings, floats]
        )
        self.score = _named_inputs(
            self._score, list(self.score_inputs), [strings] * len(self.score_inputs)
        )

    # The interface the exporter calls.

    def signatures(self):
        """`{name: tf.function}` of every signature an export carries."""
        return {
            "serving_default": self.serving_default,
            self.sampling_signature: self.sample,
            self.controls_signature: self.sample_with_controls,
            "beam_search": self.beam_search,
            "score": self.score,
        }

    def tracked_resources(self):
        """What an export must carry besides the signatures: the model and its tokenizers
        (their lookup tables and vocabulary assets)."""
        return [self.model, self.tokenizer]

    def warmup_inputs(self):
        """One small request per signature, for TensorFlow Serving's warmup file."""
        return warmup_requests(
            text_input=self.text_input,
            texts=self.warmup_texts,
            sampling_signature=self.sampling_signature,
            controls_signature=self.controls_signature,
            score_inputs=self._score_warmup_inputs(),
            length_penalty=self.config.length_penalty,
            max_top_logprobs=self.config.max_top_logprobs,
        )

    def named_tokenizers(self):
        """`{name: Tokenizer}`, named as a work folder names its tokenizer folders."""
        return {"tokenizer": self.tokenizer}

    def export_record(self):
        """How the export was made, for its `assets/kerasgen_export.json`: the XLA flag, the
        decoding configuration, the model's and tokenizers' configurations, the signatures, and
        each tokenizer's vocabulary digest (the SavedModel renames assets of the same name, so
        the digest is what finds a tokenizer's file in `assets/` again)."""
        return {
            "xla": bool(self.jit_compile),
            "decoding": vars(self.config),
            "model_config": self.model.get_config(),
            "tokenizer": self.tokenizer.get_config(),
            **{name: t.get_config() for name, t in self.named_tokenizers().items()},
            "vocabulary_sha256": {
                name: _sha256(t.vocabulary_file) for name, t in self.named_tokenizers().items()
            },
            "signatures": sorted(self.signatures()),
        }

    def prepare_for_export(self):
        """Makes every LSTM and GRU layer of the model use the portable kernels.

        A graph traced with cuDNN on a GPU bakes `CudnnRNN*` ops in, which a CPU-only
        TensorFlow Serving lacks; the exporter calls this before tracing. The decode steps
        call the recurrent cells directly, so only whole-sequence paths (`score`) are concerned.
        """
        for layer in self.model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.LSTM | keras.layers.GRU):
                layer.use_cudnn = False

    # The decode loops: dense tensors in and out, so they compile with XLA.

    def _sample_loop_impl(self, start, max_new_tokens, temperature, top_k, top_p, seeds):
        strategy = SamplingStrategy(
            end_id=self.tokenizer.end_id,
            pad_id=self.tokenizer.pad_id,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seeds=seeds,
        )
        result, state = self._decode(strategy, start, sampling=True)
        return {**result, **self._kept_state(state)}

    def _controls_loop_impl(self, start, parameters, controls, top_logprobs):
        """The sampling loop with per-token outputs and, unless `controls` is None, the
        processors and stop sequences.

        Args:
            start: the rows' decoding start (samples already repeated as rows).
            parameters: `{max_new_tokens, temperature, top_k, top_p, seeds}`, each `[rows]`.
            controls: None for the fast path (every row has every control off: no processor
                and no stop-sequence op in the loop), or `{repetition_penalty,
                no_repeat_ngram_size, min_new_tokens}` `[rows]` and `stop_sequences` int32
                `[rows, K, L]` with `stop_sequence_lengths` `[rows, K]`.
            top_logprobs: Python int, the alternatives the loop ranks at each step: the
                export's limit, or 0 when no row asks for any (no top-k in the loop).

        Returns:
            The strategy's dense result (`kerasgen.decoding.SamplingStrategy.finalize`), with
            `token_log_probs`, `top_token_ids` and `top_log_probs` (`[rows, length,
            top_logprobs]`) and `stop_sequence_index`.
        """
        strategy = SamplingStrategy(
            end_id=self.tokenizer.end_id,
            pad_id=self.tokenizer.pad_id,
            **parameters,
            **(controls or {}),
            token_log_probs=True,
            top_logprobs=top_logprobs,
        )
        # sampling=False: nothing of the final model state is returned (translate's attention
        # buffer would only cost here).
        result, _ = self._decode(strategy, start, sampling=False)
        rows = tf.shape(result["num_tokens"])[0]
        if controls is None:
            result["stop_sequence_index"] = tf.fill([rows], -1)
        if not top_logprobs:  # the outputs keep their rank: `[..., 0]`
            max_length = tf.shape(result["tokens"])[1]
            result["top_token_ids"] = tf.zeros([rows, max_length, 0], tf.int32)
            result["top_log_probs"] = tf.zeros([rows, max_length, 0], tf.float32)
        return result

    def _beam_loop_impl(self, start, max_new_tokens, length_penalty):
        strategy = BeamSearchStrategy(
            num_beams=self.config.num_beams,
            end_id=self.tokenizer.end_id,
            pad_id=self.tokenizer.pad_id,
            max_new_tokens=max_new_tokens,
            alpha=length_penalty,
        )
        result, _ = self._decode(strategy, start, sampling=False)
        return result

    def _decode(self, strategy, start, *, sampling):
        """(the strategy's result, the final model state) of the rows of `start`."""
        return decode(
            self._step_fn(),
            strategy,
            self._initial_state(start, sampling=sampling),
            start["prompt_ids"],
            start["prompt_lengths"],
            return_state=True,
        )

    # Signature bodies.

    def _generated_texts(self, result):
        """The detokenized continuations of a loop's result, string `[rows]`."""
        token_ids = generated_tokens(
            result["tokens"], result["prompt_lengths"], result["num_tokens"], self.tokenizer.end_id
        )
        return self.tokenizer.detokenize(token_ids)

    def _serving_default(self, text):
        (text,) = ensure_batch_vectors(text)
        batch = tf.shape(text)[0]
        config = self.config
        outputs = self._sample(
            text,
            tf.fill([batch], config.max_new_tokens),
            tf.fill([batch], float(config.temperature)),
            tf.fill([batch], config.top_k),
            tf.fill([batch], float(config.top_p)),
            tf.fill([batch], -1),
        )
        return {key: outputs[key] for key in DEFAULT_OUTPUTS}

    def _sampling_checks(self, batch, max_new_tokens, temperature, top_k, top_p, seed):
        """The INVALID_ARGUMENT checks of the sampling parameters every sampling signature
        takes."""
        return generation_checks(
            batch,
            self.config.max_new_tokens_cap,
            batch_input=self.text_input,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
        )

    def _sample(self, text, max_new_tokens, temperature, top_k, top_p, seed):
        text, max_new_tokens, temperature, top_k, top_p, seed = ensure_batch_vectors(
            text, max_new_tokens, temperature, top_k, top_p, seed
        )
        batch = tf.shape(text)[0]
        checks = self._sampling_checks(batch, max_new_tokens, temperature, top_k, top_p, seed)
        # Everything after the checks depends on them, so a bad request fails with the check's
        # message rather than with whichever shape error an op meets first.
        with tf.control_dependencies(checks):
            start = self._decoding_start(text)
            seeds = resolve_seeds(seed)
        max_new_tokens = self._new_token_limits(start, max_new_tokens)
        result = self._sample_loop(start, max_new_tokens, temperature, top_k, top_p, seeds)
        return {
            "text": self._generated_texts(result),
            "num_tokens": result["num_tokens"],
            "log_prob": result["log_prob"],
            **self._sampling_outputs(start, result),
        }

    def _sample_with_controls(
        self,
        text,
        max_new_tokens,
        temperature,
        top_k,
        top_p,
        seed,
        stop_sequences,
        repetition_penalty,
        no_repeat_ngram_size,
        min_new_tokens,
        num_samples,
        top_logprobs,
    ):
        """The controls signature: the sampling signature's inputs plus every generation
        control, and `[batch, samples, ...]` outputs with per-token log-probabilities.

        Inputs (each with the batch first; the "off" value in brackets):
            stop_sequences: string `[batch, k]`, `k <= max_stop_sequences` [""]: a row stops
                when its continuation's tokens end with the tokens of one of its strings
                (tokenized here with the generated text's tokenizer, each at most
                `max_stop_sequence_tokens`); the stop sequence is not returned. Only generated
                tokens are matched, not the prompt.
            repetition_penalty: float32 `[batch]`, finite and > 0 [1]: CTRL's penalty on every
                token already in the prompt or continuation.
            no_repeat_ngram_size: int32 `[batch]`, >= 0 [0]: no n-gram of this size occurs
                twice in the prompt and continuation.
            min_new_tokens: int32 `[batch]`, >= 0 [0]: no end token and no stop sequence
                before this many tokens.
            num_samples: int32 `[batch]`, in `[1, max_num_samples]` [1]: independent samples
                of the row; sample 0 uses the row's seed, sample `i` a seed derived from it
                (`kerasgen.decoding.sample_seeds`), so each is reproducible alone.
            top_logprobs: int32 `[batch]`, in `[0, max_top_logprobs]` [0]: how many of the
                model's most likely tokens to return with each generated token. When no row
                asks for any, the loop ranks none (a top-k per step is what they cost).

        Outputs, `samples` being the batch's largest `num_samples` (a row asking for fewer gets
        "" / 0 / -1 in its unused samples, with `num_tokens` 0) and `tokens` the largest
        `num_tokens` of the response:
            text string, num_tokens int32, log_prob float32 `[batch, samples]`: as the
                sampling signature's, the stop sequence excluded from all three.
            stop_sequence_index int32 `[batch, samples]`: the column of `stop_sequences` that
                ended the sample, -1 for none.
            token_texts string `[batch, samples, tokens]`: each generated token's text as the
                tokenizer detokenizes it alone ("" for the end token and past `num_tokens`).
            token_log_probs float32 `[batch, samples, tokens]`: each token's log-probability
                under the model (temperature 1, before processors and filters; 0 past
                `num_tokens`); they sum to `log_prob`.
            top_token_texts string, top_log_probs float32 `[batch, samples, tokens, top]`:
                the model's most likely tokens at each step, most likely first, `top` being
                the batch's largest `top_logprobs` (a row asking for fewer gets "" / 0 in the
                columns past its own).
        """
        text, max_new_tokens, temperature, top_k, top_p, seed = ensure_batch_vectors(
            text, max_new_tokens, temperature, top_k, top_p, seed
        )
        repetition_penalty, no_repeat_ngram_size, min_new_tokens, num_samples, top_logprobs = (
            ensure_batch_vectors(
                repetition_penalty, no_repeat_ngram_size, min_new_tokens, num_samples, top_logprobs
            )
        )
        stop_sequences = ensure_batch_matrix(stop_sequences)
        batch = tf.shape(text)[0]
        stop_ids = tf.cast(self.tokenizer.tokenize(tf.reshape(stop_sequences, [-1])), tf.int32)
        checks = self._sampling_checks(
            batch, max_new_tokens, temperature, top_k, top_p, seed
        ) + control_checks(
            batch,
            self.config,
            batch_input=self.text_input,
            stop_sequences=stop_sequences,
            stop_sequence_lengths=stop_ids.row_lengths(),
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            min_new_tokens=min_new_tokens,
            num_samples=num_samples,
            top_logprobs=top_logprobs,
        )
        with tf.control_dependencies(checks):
            start = self._decoding_start(text)
            seeds = resolve_seeds(seed)
            stop_ids, stop_lengths = self._stop_sequence_ids(stop_ids, batch)
            num_samples = tf.identity(num_samples)
            top_logprobs = tf.identity(top_logprobs)
        parameters = {
            "max_new_tokens": self._new_token_limits(start, max_new_tokens),
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "seeds": seeds,
        }
        controls = {
            "repetition_penalty": repetition_penalty,
            "no_repeat_ngram_size": no_repeat_ngram_size,
            "min_new_tokens": min_new_tokens,
            "stop_sequences": stop_ids,
            "stop_sequence_lengths": stop_lengths,
        }
        samples = tf.reduce_max(tf.concat([num_samples, [1]], axis=0))  # the batch's largest
        every_control_off = (samples == 1) & ~tf.reduce_any(
            [
                tf.reduce_any(repetition_penalty != 1.0),
                tf.reduce_any(no_repeat_ngram_size > 0),
                tf.reduce_any(min_new_tokens > 0),
                tf.reduce_any(stop_lengths > 0),
            ]
        )
        top = tf.reduce_max(tf.concat([top_logprobs, [0]], axis=0))  # the batch's largest
        most_top = self.config.max_top_logprobs
        # A batch with every control off runs the sampling loop on its own rows, without any
        # control's ops: the repeated rows, the processors' per-step conditionals and the
        # stop-sequence windows are what made the controls cost when off; and without the
        # per-step top-k unless a row asks for alternatives.
        result = tf.cond(
            every_control_off,
            lambda: tf.cond(
                top > 0,
                lambda: self._controls_loop(start, parameters, None, most_top),
                lambda: self._controls_loop(start, parameters, None, 0),
            ),
            lambda: self._controls_loop(
                *_sample_rows(start, parameters, controls, num_samples, samples), most_top
            ),
        )
        # Each row's own number of alternatives, within the batch's largest.
        row_top = tf.repeat(top_logprobs, samples)[:, tf.newaxis, tf.newaxis]  # [rows, 1, 1]
        asked = tf.range(tf.shape(result["top_token_ids"])[2])[tf.newaxis, tf.newaxis] < row_top
        result["top_token_ids"] = tf.where(asked, result["top_token_ids"], self.tokenizer.pad_id)[
            ..., :top
        ]
        result["top_log_probs"] = tf.where(asked, result["top_log_probs"], 0.0)[..., :top]
        return group_samples(self._per_token_outputs(result), samples)

    def _stop_sequence_ids(self, stop_ids, batch):
        """Tokenized stop sequences (int32 RaggedTensor `[batch * k, (tokens)]`, checked) →
        the engine's (int32 `[batch, K, L]`, lengths int32 `[batch, K]`), the export's fixed
        `K = max_stop_sequences` and `L = max_stop_sequence_tokens`, unused slots of length 0."""
        most, longest = self.config.max_stop_sequences, self.config.max_stop_sequence_tokens
        ids = stop_ids.to_tensor(default_value=self.tokenizer.pad_id, shape=[None, longest])
        lengths = tf.cast(stop_ids.row_lengths(), tf.int32)
        ids = tf.reshape(ids, [batch, -1, longest])  # [batch, k, L]
        lengths = tf.reshape(lengths, [batch, -1])
        missing = most - tf.shape(lengths)[1]
        ids = tf.pad(ids, [[0, 0], [0, missing], [0, 0]], constant_values=self.tokenizer.pad_id)
        lengths = tf.pad(lengths, [[0, 0], [0, missing]])
        return tf.reshape(ids, [-1, most, longest]), tf.reshape(lengths, [-1, most])

    def _per_token_outputs(self, result):
        """The controls signature's outputs `[rows, ...]` from its loop's dense result."""
        prompt_lengths, num_tokens = result["prompt_lengths"], result["num_tokens"]
        width = tf.reduce_max(tf.concat([num_tokens, [0]], axis=0))

        def per_token(key, fill):
            return generated_values(result[key], prompt_lengths, num_tokens, width, fill)

        pad_id = self.tokenizer.pad_id
        table = tf.constant(self._token_texts)

        def texts(ids):
            return tf.gather(table, ids)

        return {
            "text": self._generated_texts(result),
            "num_tokens": num_tokens,
            "log_prob": result["log_prob"],
            "stop_sequence_index": result["stop_sequence_index"],
            "token_texts": texts(per_token("tokens", pad_id)),
            "token_log_probs": per_token("token_log_probs", 0.0),
            "top_token_texts": texts(per_token("top_token_ids", pad_id)),
            "top_log_probs": per_token("top_log_probs", 0.0),
        }

    def _beam_search(self, text, length_penalty):
        text, length_penalty = ensure_batch_vectors(text, length_penalty)
        batch = tf.shape(text)[0]
        checks = beam_search_checks(length_penalty, batch, batch_input=self.text_input)
        with tf.control_dependencies(checks):
            start = self._decoding_start(text)
        max_new_tokens = self._new_token_limits(start, tf.fill([batch], self.config.max_new_tokens))
        result = self._beam_loop(start, max_new_tokens, length_penalty)
        texts = self._generated_texts(result)
        return {
            "texts": tf.reshape(texts, [batch, self.config.num_beams]),
            "scores": result["scores"],
        }

    def _score(self, *texts):
        texts = ensure_batch_vectors(*texts)
        batch = tf.shape(texts[0])[0]
        checks = [
            check_same_batch(name, tensor, batch, batch_input=self.score_inputs[0])
            for name, tensor in zip(self.score_inputs[1:], texts[1:], strict=True)
        ]
        with tf.control_dependencies(checks):
            target_ids, logits_fn = self._scoring(*texts)
        return self._sequence_scores(target_ids, logits_fn)

    def _sequence_scores(self, token_ids, logits_fn):
        """Log-probability of each row's tokens between a start and an end token.

        Args:
            token_ids: int RaggedTensor `[batch, (tokens)]`, without start or end token.
            logits_fn: teacher-forced logits, int32 `[batch, length]` → `[batch, length, vocab]`.

        Returns:
            {"log_prob": float32 `[batch]`, "num_tokens": int32 `[batch]`, the end token
             included, the start token (given, not predicted) not}.
        """
        tokenizer = self.tokenizer
        token_ids = tf.cast(token_ids, tf.int32)
        batch = token_ids.nrows()
        starts = tf.fill([batch, 1], tf.constant(tokenizer.start_id, tf.int32))
        ends = tf.fill([batch, 1], tf.constant(tokenizer.end_id, tf.int32))
        sequence = tf.concat(
            [tf.RaggedTensor.from_tensor(starts), token_ids, tf.RaggedTensor.from_tensor(ends)],
            axis=1,
        )
        # At least the start and end columns, so an empty batch still gives a recurrent layer
        # one time step (zero steps fail to stack its outputs).
        width = tf.maximum(sequence.bounding_shape(axis=1), 2)
        dense = sequence.to_tensor(
            default_value=tokenizer.pad_id, shape=tf.stack([batch, width])
        )  # [batch, length]
        inputs, targets = dense[:, :-1], dense[:, 1:]
        logits = tf.cast(logits_fn(inputs), tf.float32)
        token_log_probs = tf.gather(tf.nn.log_softmax(logits), targets, batch_dims=2)
        mask = targets != tokenizer.pad_id
        return {
            "log_prob": tf.reduce_sum(tf.where(mask, token_log_probs, 0.0), axis=1),
            "num_tokens": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
        }

    # Family hooks.

    def _decoding_start(self, text):
        """Text string `[batch]` → the dense tensors a decode loop starts from: at least
        `prompt_ids` int32 `[batch, max_length]` (static length) and `prompt_lengths` int32
        `[batch]`, plus whatever `_initial_state` needs."""
        raise NotImplementedError

    def _initial_state(self, start, *, sampling):
        """The model's decoding state for the rows of `start` (inside the loop function);
        `sampling` is True for the sampling loop, whose final state `_kept_state` reads."""
        raise NotImplementedError

    def _step_fn(self):
        """The model's step function (`kerasgen.decoding` contract), built inside the loop
        function."""
        raise NotImplementedError

    def _scoring(self, *texts):
        """The `score` inputs → (target token ids int RaggedTensor `[batch, (tokens)]`, the
        teacher-forced `logits_fn` of `_sequence_scores`)."""
        raise NotImplementedError

    def _score_warmup_inputs(self):
        """`{input_name: object array [2]}`: the `score` warmup request."""
        raise NotImplementedError

    def _new_token_limits(self, start, max_new_tokens):
        """Each row's limit of new tokens, int32 `[batch]`: the request's `max_new_tokens`,
        or fewer where the family bounds a row by its input (a translation by its source)."""
        del start
        return max_new_tokens

    def _kept_state(self, state):
        """What of the sampling loop's final model state joins its result (dense tensors)."""
        del state
        return {}

    def _sampling_outputs(self, start, result):
        """The family's outputs of the sampling signature beyond `DEFAULT_OUTPUTS`."""
        del start, result
        return {}


def _sample_rows(start, parameters, controls, num_samples, samples):
    """Every request repeated as `samples` rows, one per sample, request-major (see
    `kerasgen.decoding.multiple_samples`): the decoding start, the parameters with each
    sample's own seed, and the controls. A request's samples past its `num_samples` get
    `max_new_tokens` 0, so they finish at once and return nothing.

    The rows are repeated here, outside the loop function: XLA needs the row count of its
    inputs, not one computed from a value. Scalars of the start (shared by every row) are kept.
    """
    start = {
        key: value if value.shape.rank == 0 else tf.repeat(value, samples, axis=0)
        for key, value in start.items()
    }
    in_use = tf.reshape(tf.range(samples)[tf.newaxis, :] < num_samples[:, tf.newaxis], [-1])
    per_row = {key: value for key, value in parameters.items() if key != "seeds"}
    parameters = dict(
        repeat_rows(per_row, samples), seeds=sample_seeds(parameters["seeds"], samples)
    )
    parameters["max_new_tokens"] = tf.where(in_use, parameters["max_new_tokens"], 0)
    return start, parameters, repeat_rows(controls, samples)
