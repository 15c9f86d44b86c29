"""What differs between the model families' training runs, one small object per family.

`kerasgen.training.run.train_and_evaluate` is the one skeleton of every run (strategy, work
folder, optimizer, compile, fit, save, export); a *task* supplies the rest:

- `LanguageModelTask` (`text_generator`, `gpt`): a text corpus, one tokenizer, windows of
  `seq_len + 1` tokens, next-token cross-entropy with padding ignored, `LanguageModelService`,
  samples from the empty prompt and validation openings, validation perplexity.
- `TranslationTask` (`seq2seq` and the other encoder-decoder families): sentence pairs, a source
  and a target tokenizer, length-bucketed padded batches, cross-entropy weighted to the real
  target tokens, `TranslationService`, greedy translations of validation sources, exact match,
  BLEU and chrF.

`task_for(model)` picks the task of a preset by its family.
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from kerasgen.data.corpus import load_corpus
from kerasgen.data.parallel_corpus import load_parallel_corpus
from kerasgen.data.pipeline import count_tokens, language_model_dataset
from kerasgen.data.translation_pipeline import translation_dataset
from kerasgen.errors import UserInputError
from kerasgen.evaluation.translation_quality import evaluate_translator, greedy_translator
from kerasgen.losses import SparseCrossentropy
from kerasgen.models import presets
from kerasgen.serving import DecodingConfig, LanguageModelService
from kerasgen.serving.translation_service import TranslationService
from kerasgen.work_folder import WorkFolder

# Tokens of the sample generated after each epoch: a glimpse, not a page.
_EPOCH_SAMPLE_TOKENS = 48
# Target tokens of the translations printed after each epoch: enough for a sentence.
_EPOCH_TRANSLATION_TOKENS = 64
_EVALUATION_EXAMPLES = 2000  # pairs per split for the exact-match figures printed after training
# A greedy translation of one evaluation pair, in training steps of batch 64: measured 0.021
# (5 ms a pair, 237 ms a step) for the 512-unit GRU on Multi30k; rounded up to 0.05 for other
# families and machines: time reserved and unused costs less than a budget overrun.
_EVALUATION_STEPS_PER_PAIR = 0.05
# The share of training targets the measured decoding length limit must fit (see
# `TranslationTask.length_limit`).
_LENGTH_LIMIT_QUANTILE = 0.999


class LanguageModelTask:
    """Training a language model (`TextGenerator`, `GPT`) on a text corpus."""

    tokenizer_names = WorkFolder.LANGUAGE_MODEL_TOKENIZERS

    def tokenizer_levels(self, config):
        return {"tokenizer": config.tokenizer}

    def default_decoding(self):
        return DecodingConfig()

    def length_limit(self, corpus, tokenizers_, decoding):
        """A language model's continuation has no source to follow: no measured limit."""
        del corpus, tokenizers_, decoding
        return None

    def evaluation_seconds(self, corpus, step_seconds):
        """A language model's evaluation after training is its validation loss, which the
        budget plan reserves for already, and the samples (`budget_plan.SAMPLES_SECONDS`)."""
        del corpus, step_seconds
        return 0.0

    def decoding_for(self, decoding, config):
        """The run's decoding (nothing recorded to apply for a language model)."""
        del config
        return decoding

    def load_data(self, config, log):
        return load_corpus(
            data_path=config.data_path, dataset=config.dataset, data_dir=config.data_dir
        )

    def training_texts(self, corpus):
        return {"tokenizer": corpus.train}

    def describe(self, corpus, tokenizers_):
        tokenizer = tokenizers_["tokenizer"]
        return (
            f"Corpus {corpus.name}: {sum(map(len, corpus.train)):,} training characters, "
            f"{tokenizer.level} vocabulary of {tokenizer.vocab_size} ids."
        )

    def datasets(self, corpus, tokenizers_, config, decoding):
        """`(make_train_data, validation_data, epoch_batches)`: a function building the
        training dataset afresh, the validation dataset, and the batches of one pass
        (None when repeated). The first call of `make_train_data` returns the dataset built
        here (its size is checked now, before the model is built)."""
        tokenizer = tokenizers_["tokenizer"]
        pipeline = dict(
            tokenize_fn=tokenizer.tokenize,
            seq_len=config.seq_len,
            **_batching_arguments(config, tokenizer),
        )
        repeat = config.steps_per_epoch is not None

        def build_train_data():
            return language_model_dataset(
                corpus.train,
                shuffle=True,
                repeat=repeat,
                name=f"{corpus.name} (training part)",
                **pipeline,
            )

        # Built now, so a corpus too small for one batch stops the run before the model is
        # built; the first `fit` call trains on this one, later calls (a resume) on fresh ones.
        unused = [build_train_data()]

        def make_train_data():
            return unused.pop() if unused else build_train_data()

        # A small file's validation part may hold fewer windows than a batch: shrink its batches.
        windows = count_tokens(corpus.validation, tokenizer.tokenize) // (config.seq_len + 1)
        validation_data = language_model_dataset(
            corpus.validation,
            shuffle=False,
            name=f"{corpus.name} (validation part)",
            **dict(pipeline, batch_size=max(1, min(config.batch_size, windows))),
        )
        epoch_batches = None if repeat else len(unused[0])
        return make_train_data, validation_data, epoch_batches

    def build_model(self, config, tokenizers_):
        model = presets.build_model(
            config.model, tokenizers_["tokenizer"].vocab_size, hyperparameters=config.model_config
        )
        model(tf.zeros([1, 1], tf.int32))  # build, so weights can be restored or copied
        return model

    def check_model(self, model, config):
        context_length = getattr(model, "context_length", None)
        if context_length is not None and config.seq_len > context_length:
            raise UserInputError(
                f"seq_len {config.seq_len} exceeds the context window of --model={config.model} "
                f"({context_length} tokens); use --seq_len={context_length} or less"
            )

    def compile_arguments(self, tokenizers_, config):
        if config.label_smoothing:
            raise UserInputError(
                "--label_smoothing applies to encoder-decoders; a language model's loss is the "
                "plain cross-entropy its perplexity is reported in."
            )
        return dict(
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=tokenizers_["tokenizer"].pad_id
            ),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    def service(self, model, tokenizers_, decoding, *, jit_compile=False):
        return LanguageModelService(
            model, tokenizers_["tokenizer"], decoding, jit_compile=jit_compile
        )

    def epoch_sampler(self, service, corpus, config):
        """`() -> lines`: continuations of the empty prompt and a validation opening through
        the service's own `generate`, at its default temperature and fixed seeds, so successive
        epochs are comparable; None without samples."""
        prompts = sample_prompts(corpus, config.num_samples)[:2]
        if not prompts:
            return None
        max_new_tokens = min(service.config.max_new_tokens, _EPOCH_SAMPLE_TOKENS)

        def sample():
            texts = _generate(service, prompts, config.seed, max_new_tokens)
            # One line each: the prompt and its continuation, newlines escaped.
            return [repr(prompt + text) for prompt, text in zip(prompts, texts, strict=True)]

        return sample

    def evaluate(self, service, corpus, outcome, config, log):
        """Logs the validation figures and the final samples; returns `(metrics, samples)`."""
        loss = outcome.validation_loss
        perplexity = safe_exp(loss)
        log(
            f"Validation loss {loss:.4f} nats/token, perplexity {perplexity:.3f} "
            f"({outcome.train_seconds:.0f} s of training)."
        )
        samples = []
        prompts = sample_prompts(corpus, config.num_samples)
        if prompts:
            texts = _generate(service, prompts, config.seed, service.config.max_new_tokens)
            samples = list(zip(prompts, texts, strict=True))
            for prompt, text in samples:
                log(f"--- sample (prompt {prompt!r}):\n{prompt}{text}")
        return {"validation_perplexity": perplexity}, samples

    def export_metadata(self, corpus, tokenizers_, metrics, outcome):
        return {"corpus": corpus.name, "validation_loss": outcome.validation_loss}


class TranslationTask:
    """Training an encoder-decoder (`Seq2Seq`, ...) on sentence pairs.

    Data: `config.data_path` (a TSV file), `config.dataset` (a TFDS name), or by default
    `kerasgen_dates`. `config.seq_len` does not apply (pairs are batched whole, by length).
    """

    tokenizer_names = WorkFolder.TRANSLATION_TOKENIZERS

    def tokenizer_levels(self, config):
        return {
            "source_tokenizer": config.source_tokenizer or config.tokenizer,
            "target_tokenizer": config.target_tokenizer or config.tokenizer,
        }

    def default_decoding(self):
        """The export's decoding for translation: greedy by default, room for long sources
        (`max_prompt_tokens` bounds the source) and translations."""
        return DecodingConfig(
            max_prompt_tokens=256,  # source tokens kept (end token included); longer are cut
            max_new_tokens_cap=256,  # the longest translation a request may ask for
            max_new_tokens=128,  # serving_default's limit: a long sentence in words or characters
            temperature=0.0,  # translation wants the most likely output, not a sample
            num_beams=4,  # the usual NMT beam width
        )

    def length_limit(self, corpus, tokenizers_, decoding):
        """The decoding length limit the training pairs support, `{"ratio", "offset"}` (see
        `DecodingConfig.length_ratio`): with the offset `decoding.length_offset`, the smallest
        ratio, rounded up to a tenth, under which 99.9% of the training targets fit (tokens with
        their end token; sources cut to `max_prompt_tokens` as the service cuts them). The
        rest are outliers (a caption with an added sentence, a misaligned pair): a limit wide
        enough for them would let every row run on."""
        if not corpus.train:
            return None
        source, target = tokenizers_["source_tokenizer"], tokenizers_["target_tokenizer"]
        source_lengths = _token_counts(source, [s for s, _ in corpus.train]) + 1
        source_lengths = np.minimum(source_lengths, decoding.max_prompt_tokens)
        target_lengths = _token_counts(target, [t for _, t in corpus.train]) + 1
        offset = decoding.length_offset
        needed = np.maximum(target_lengths - offset, 0) / source_lengths
        ratio = math.ceil(10 * float(np.quantile(needed, _LENGTH_LIMIT_QUANTILE)) - 1e-9) / 10
        return {"ratio": max(ratio, 0.1), "offset": offset}

    def evaluation_seconds(self, corpus, step_seconds):
        """What `evaluate` will take, for the budget plan's reserve: greedy translations of up
        to `_EVALUATION_EXAMPLES` pairs per held-out split, each costing about
        `_EVALUATION_STEPS_PER_PAIR` training steps (see there)."""
        pairs = sum(
            min(len(corpus.split(split)), _EVALUATION_EXAMPLES)
            for split in ["validation", *corpus.test]
        )
        return pairs * _EVALUATION_STEPS_PER_PAIR * step_seconds

    def decoding_for(self, decoding, config):
        """`decoding` with the run's measured length limit, unless it sets its own."""
        if decoding.length_ratio or not config.length_limit:
            return decoding
        return dataclasses.replace(
            decoding,
            length_ratio=config.length_limit["ratio"],
            length_offset=config.length_limit["offset"],
        )

    def load_data(self, config, log):
        return load_parallel_corpus(
            data_path=config.data_path,
            dataset=config.dataset,
            data_dir=config.data_dir,
            seed=config.seed,
            log=log,
        )

    def training_texts(self, corpus):
        return {
            "source_tokenizer": [source for source, _ in corpus.train],
            "target_tokenizer": [target for _, target in corpus.train],
        }

    def describe(self, corpus, tokenizers_):
        source, target = tokenizers_["source_tokenizer"], tokenizers_["target_tokenizer"]
        return (
            f"Corpus {corpus.name}: {len(corpus.train):,} training pairs, "
            f"{len(corpus.validation):,} validation pairs; {source.level} source vocabulary of "
            f"{source.vocab_size} ids, {target.level} target vocabulary of "
            f"{target.vocab_size} ids."
        )

    def datasets(self, corpus, tokenizers_, config, decoding):
        source, target = tokenizers_["source_tokenizer"], tokenizers_["target_tokenizer"]
        pipeline = dict(
            source_tokenize_fn=source.tokenize,
            target_tokenize_fn=target.tokenize,
            max_source_tokens=decoding.max_prompt_tokens,
            # A fixed set of batch shapes, so that an XLA train step compiles a few times only.
            pad_to_bucket_edges=config.trains_with_xla(),
            **_batching_arguments(config, target),
        )

        def make_train_data():  # called again by a resumed run, for the same shuffled order
            return translation_dataset(
                corpus.train,
                shuffle=True,
                repeat=config.steps_per_epoch is not None,
                name=f"{corpus.name} (train)",
                **pipeline,
            )

        validation_data = translation_dataset(
            corpus.validation, shuffle=False, name=f"{corpus.name} (validation)", **pipeline
        )
        # Length-bucketed batches: tf.data cannot tell their number without reading them.
        return make_train_data, validation_data, None

    def build_model(self, config, tokenizers_):
        model = presets.build_translation_model(
            config.model,
            tokenizers_["source_tokenizer"].vocab_size,
            tokenizers_["target_tokenizer"].vocab_size,
            hyperparameters=config.model_config,
        )
        model.build()
        return model

    def check_model(self, model, config):
        pass

    def compile_arguments(self, tokenizers_, config):
        return dict(
            # The pipeline's weights are 0 on padding; the mean is over real target tokens.
            loss=SparseCrossentropy(config.label_smoothing, reduction="mean_with_sample_weight"),
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    def service(self, model, tokenizers_, decoding, *, jit_compile=False):
        return TranslationService(
            model,
            tokenizers_["source_tokenizer"],
            tokenizers_["target_tokenizer"],
            decoding,
            jit_compile=jit_compile,
        )

    def epoch_sampler(self, service, corpus, config):
        """`() -> lines`: greedy translations of validation sources by the live model."""
        sources = [source for source, _ in corpus.validation[: min(2, config.num_samples)]]
        if not sources:
            return None
        translate = greedy_translator(
            service.signatures(),
            max_new_tokens=min(service.config.max_new_tokens, _EPOCH_TRANSLATION_TOKENS),
        )

        def sample():
            return [
                f"{source!r} -> {translation!r}"
                for source, translation in zip(sources, translate(sources), strict=True)
            ]

        return sample

    def evaluate(self, service, corpus, outcome, config, log):
        """Logs validation figures and greedy exact match, BLEU and chrF per held-out split;
        returns `(metrics, samples)` with samples `(source, reference, translation)`."""
        accuracy = outcome.validation_logs["accuracy"]
        log(
            f"Validation loss {outcome.validation_loss:.4f} nats/token, token accuracy "
            f"{100 * accuracy:.2f}% ({outcome.train_seconds:.0f} s of training)."
        )
        translator = greedy_translator(
            service.signatures(), max_new_tokens=service.config.max_new_tokens
        )
        # Character-level targets have no spaces to split words at: BLEU over characters.
        level = service.target_tokenizer.level
        bleu_tokenize = "char" if level == "character" else "13a"
        exact_match, samples = {}, []
        for split in ["validation", *corpus.test]:
            pairs = corpus.split(split)[:_EVALUATION_EXAMPLES]
            quality, hypotheses = evaluate_translator(
                translator, pairs, bleu_tokenize=bleu_tokenize
            )
            exact_match[split] = quality["exact_match"]
            log(
                f"Greedy on {split} ({len(pairs)} pairs): exact match "
                f"{quality['exact_match']:.2f}%, BLEU ({bleu_tokenize}) {quality['bleu']:.2f}, "
                f"chrF {quality['chrf']:.2f}."
            )
            if split == "validation":
                samples = [
                    (source, target, hypothesis)
                    for (source, target), hypothesis in zip(pairs, hypotheses, strict=True)
                ][: config.num_samples]
        for source, target, hypothesis in samples:
            log(f"--- {source!r} -> {hypothesis!r} (reference {target!r})")
        return {"validation_accuracy": accuracy, "exact_match": exact_match}, samples

    def export_metadata(self, corpus, tokenizers_, metrics, outcome):
        return {
            "corpus": corpus.name,
            "validation_loss": outcome.validation_loss,
            "exact_match": metrics["exact_match"],
        }


def _token_counts(tokenizer, texts, batch_size=4096):
    """Tokens of each text (int64 numpy `[len(texts)]`), tokenized in batches by the graph."""
    counts = [
        tokenizer.tokenize(tf.constant(texts[i : i + batch_size])).row_lengths().numpy()
        for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(counts) if counts else np.zeros([0], np.int64)


def _batching_arguments(config, tokenizer):
    """The pipeline arguments both tasks' datasets take alike: the batch size, the shuffle
    seed, and the start and end ids of `tokenizer` (the target's, for pairs) that frame every
    sequence."""
    return dict(
        batch_size=config.batch_size,
        start_id=tokenizer.start_id,
        end_id=tokenizer.end_id,
        seed=config.seed,
    )


def task_for(model):
    """The task that trains preset `model` (a `ValueError` listing the presets if unknown)."""
    if presets.is_translation_model(model):
        return TranslationTask()
    return LanguageModelTask()


def safe_exp(loss):
    """`exp(loss)`, infinite instead of an OverflowError for a huge (diverging) loss."""
    return math.exp(loss) if loss < 700 else math.inf


def sample_prompts(corpus, count):
    """Prompts for the samples printed after training: the empty prompt, then the openings
    (up to the first colon, e.g. a speaker's name, or the first word) of validation lines."""
    prompts = [""]
    for document in corpus.validation:
        for line in document.splitlines()[1:]:
            opening = line.split(":")[0] + ":" if ":" in line else line.split(" ")[0]
            if opening.strip() and opening not in prompts:
                prompts.append(opening)
                break
        if len(prompts) >= count:
            break
    return prompts[:count]


def _generate(service, prompts, seed, max_new_tokens):
    """Continuations of `prompts` (a list of str) through the service's `generate`, at its
    default temperature, seeds `seed, seed + 1, ...`."""
    count = len(prompts)
    generated = service.generate(
        tf.constant(prompts),
        tf.fill([count], max_new_tokens),
        tf.fill([count], float(service.config.temperature)),
        tf.zeros([count], tf.int32),
        tf.ones([count], tf.float32),
        tf.range(seed, seed + count),
    )
    return [text.decode("utf-8", errors="replace") for text in generated["text"].numpy()]
