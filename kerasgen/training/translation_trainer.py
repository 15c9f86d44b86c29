"""`train_translation_and_evaluate`: the training run of an encoder-decoder preset.

`train_and_evaluate` hands over to this function when `--model` is a translation family
(`kerasgen.models.presets.TRANSLATION_FAMILIES`). A run's work folder holds:

    workdir/config.json            the resolved TrainConfig
    workdir/source_tokenizer/      the source vocabulary and tokenizer.json
    workdir/target_tokenizer/      the target vocabulary and tokenizer.json
    workdir/checkpoints/           weights after every epoch, and best.weights.h5
    workdir/backup/                mid-epoch backups while training runs (a rerun continues
                                   from them; see kerasgen.training.resume)
    workdir/logs/                  TensorBoard: loss, perplexity, accuracy, learning rate,
                                   the translations after each epoch
    workdir/training.json          written when training has finished
    workdir/model.keras            the trained model, with the kept (best) weights
"""

import dataclasses
import os

import keras

from kerasgen import tokenizers
from kerasgen.data.parallel_corpus import load_parallel_corpus
from kerasgen.data.translation_pipeline import translation_dataset
from kerasgen.evaluation.translation_quality import evaluate_translator, greedy_translator
from kerasgen.models.presets import build_translation_model, get_preset
from kerasgen.serving import DecodingConfig
from kerasgen.serving.translation_service import TranslationService
from kerasgen.training import distribution
from kerasgen.training.fitting import fit_model
from kerasgen.training.run_output import export_and_release, save_trained
from kerasgen.training.trainer import _check_workdir

# The export's decoding for translation: greedy by default (temperature 0), room for long
# sources (`max_prompt_tokens` bounds the source) and translations.
TRANSLATION_DECODING = DecodingConfig(
    max_prompt_tokens=256,  # source tokens kept (the end token included); longer ones are cut
    max_new_tokens_cap=256,  # the longest translation a request may ask for
    max_new_tokens=128,  # serving_default's limit: a long sentence in words or characters
    temperature=0.0,  # translation wants the most likely output, not a sample
    num_beams=4,  # the usual NMT beam width
)
_EVALUATION_EXAMPLES = 2000  # pairs per split for the exact-match figures printed after training


@dataclasses.dataclass
class TranslationTrainResult:
    """What a translation run produced and measured."""

    model: keras.Model
    source_tokenizer: tokenizers.Tokenizer
    target_tokenizer: tokenizers.Tokenizer
    service: TranslationService
    validation_loss: float  # nats per target token
    validation_accuracy: float  # next-token accuracy, teacher forced, padding excluded
    exact_match: dict  # split name -> greedy exact match in %
    train_seconds: float
    samples: list  # (source, reference, translation) triples
    export_path: str | None


def _tokenizer_for(texts, level, config, directory):
    """Reloaded from `directory` if a run left it there, else learned from `texts` and saved."""
    if os.path.exists(os.path.join(directory, tokenizers.CONFIG_FILE_NAME)):
        return tokenizers.load_tokenizer(directory)
    return tokenizers.learn_tokenizer(level, texts, directory, max_vocab_size=config.max_vocab_size)


def train_translation_and_evaluate(config, workdir, *, decoding=None, log=print):
    """Trains an encoder-decoder preset on sentence pairs, evaluates, exports.

    Data: `config.data_path` (a TSV file), `config.dataset` (a TFDS name), or by default
    `kerasgen_dates`. `config.seq_len` does not apply (pairs are batched whole, by length).

    Args:
        config: a `TrainConfig` whose `model` is a translation preset.
        workdir: the run's work folder (a rerun resumes from it).
        decoding: the export's `DecodingConfig` (default `TRANSLATION_DECODING`).
        log: where progress lines go.

    Returns:
        A `TranslationTrainResult`.

    Raises:
        kerasgen.data.corpus.CorpusError: unusable data (one-line message).
        ValueError: unknown model or tokenizer level.
        WorkdirMismatchError: `workdir` belongs to another run.
    """
    get_preset(config.model)
    levels = {
        "source": config.source_tokenizer or config.tokenizer,
        "target": config.target_tokenizer or config.tokenizer,
    }
    for side, level in levels.items():
        if level not in tokenizers.TOKENIZER_LEVELS:
            raise ValueError(
                f"Unknown {side} tokenizer {level!r}; valid tokenizers: "
                f"{', '.join(tokenizers.TOKENIZER_LEVELS)}."
            )
    decoding = decoding or TRANSLATION_DECODING
    # First: a multi-worker strategy must be set up before TensorFlow runs anything.
    distribution.check_time_budget(config.strategy, config.time_budget_seconds)
    strategy = distribution.make_strategy(config.strategy, tpu=config.tpu)
    distribution.check_global_batch(config.batch_size, strategy)
    chief = distribution.is_chief(strategy)
    # Only the chief writes into the work folder; another worker keeps its files (tokenizers
    # learned from the same data, so the same) in a scratch folder.
    files = workdir if chief else distribution.scratch_folder()
    os.makedirs(files, exist_ok=True)
    _check_workdir(workdir, config)
    keras.utils.set_random_seed(config.seed)

    corpus = load_parallel_corpus(
        data_path=config.data_path,
        dataset=config.dataset,
        data_dir=config.data_dir,
        seed=config.seed,
        log=log,
    )
    source_tokenizer = _tokenizer_for(
        [s for s, _ in corpus.train],
        levels["source"],
        config,
        os.path.join(files, "source_tokenizer"),
    )
    target_tokenizer = _tokenizer_for(
        [t for _, t in corpus.train],
        levels["target"],
        config,
        os.path.join(files, "target_tokenizer"),
    )
    with open(os.path.join(files, "config.json"), "w", encoding="utf-8") as f:
        f.write(config.to_json())
    log(
        f"Corpus {corpus.name}: {len(corpus.train):,} training pairs, "
        f"{len(corpus.validation):,} validation pairs; {source_tokenizer.level} source "
        f"vocabulary of {source_tokenizer.vocab_size} ids, {target_tokenizer.level} target "
        f"vocabulary of {target_tokenizer.vocab_size} ids."
    )

    pipeline = dict(
        source_tokenize_fn=source_tokenizer.tokenize,
        target_tokenize_fn=target_tokenizer.tokenize,
        batch_size=config.batch_size,
        start_id=target_tokenizer.start_id,
        end_id=target_tokenizer.end_id,
        seed=config.seed,
        max_source_tokens=decoding.max_prompt_tokens,
    )

    def make_train_data():  # called again by a resumed run, for the same shuffled order
        dataset = translation_dataset(
            corpus.train,
            shuffle=True,
            repeat=config.steps_per_epoch is not None,
            name=f"{corpus.name} (train)",
            **pipeline,
        )
        return distribution.shard_by_data(dataset)

    validation_data = distribution.shard_by_data(
        translation_dataset(
            corpus.validation, shuffle=False, name=f"{corpus.name} (validation)", **pipeline
        )
    )

    def build():
        model = build_translation_model(
            config.model, source_tokenizer.vocab_size, target_tokenizer.vocab_size
        )
        model.build()
        return model

    # The model, its optimizer and metrics are created in the strategy's scope, which mirrors
    # their variables on every replica (the default strategy's scope changes nothing).
    with strategy.scope():
        model = build()
        model.compile(
            optimizer=keras.optimizers.Adam(
                config.learning_rate, beta_2=config.beta_2, clipnorm=config.clipnorm
            ),
            # The pipeline's weights are 0 on padding; the mean is over real target tokens.
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"
            ),
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    # Built before training: it translates the per-epoch samples with the live weights.
    service = TranslationService(model, source_tokenizer, target_tokenizer, decoding)
    sample_sources = [source for source, _ in corpus.validation[: min(2, config.num_samples)]]
    outcome = fit_model(
        model,
        make_train_data,
        validation_data,
        config,
        workdir,
        sample_fn=_epoch_sampler(service, sample_sources, decoding) if sample_sources else None,
        chief=chief,
        log=log,
    )
    train_seconds = outcome.train_seconds
    # Saving, the translations and the export use a copy with ordinary variables, built
    # outside the strategy's scope (see distribution.unreplicated_copy); by default the model.
    trained = save_trained(model, strategy, build, workdir, chief=chief)
    if trained is not model:
        service = TranslationService(trained, source_tokenizer, target_tokenizer, decoding)
    validation_loss = outcome.validation_loss
    validation_accuracy = outcome.validation_logs["accuracy"]
    log(
        f"Validation loss {validation_loss:.4f} nats/token, token accuracy "
        f"{100 * validation_accuracy:.2f}% ({train_seconds:.0f} s of training)."
    )

    translator = greedy_translator(service.signatures(), max_new_tokens=decoding.max_new_tokens)
    # Character-level targets have no spaces to split words at: BLEU over characters.
    bleu_tokenize = "char" if target_tokenizer.level == "character" else "13a"
    exact_match, samples = {}, []
    for split in ["validation", *corpus.test]:
        pairs = corpus.split(split)[:_EVALUATION_EXAMPLES]
        quality, hypotheses = evaluate_translator(translator, pairs, bleu_tokenize=bleu_tokenize)
        exact_match[split] = quality["exact_match"]
        log(
            f"Greedy on {split} ({len(pairs)} pairs): exact match {quality['exact_match']:.2f}%, "
            f"BLEU ({bleu_tokenize}) {quality['bleu']:.2f}, chrF {quality['chrf']:.2f}."
        )
        if split == "validation":
            samples = [
                (source, target, hypothesis)
                for (source, target), hypothesis in zip(pairs, hypotheses, strict=True)
            ][: config.num_samples]
    for source, target, hypothesis in samples:
        log(f"--- {source!r} -> {hypothesis!r} (reference {target!r})")

    export_path = export_and_release(
        service,
        config,
        strategy,
        chief=chief,
        scratch=files,
        metadata={
            "corpus": corpus.name,
            "source_tokenizer": source_tokenizer.get_config(),
            "target_tokenizer": target_tokenizer.get_config(),
            "validation_loss": validation_loss,
            "exact_match": exact_match,
        },
        log=log,
    )
    return TranslationTrainResult(
        model=trained,
        source_tokenizer=source_tokenizer,
        target_tokenizer=target_tokenizer,
        service=service,
        validation_loss=validation_loss,
        validation_accuracy=validation_accuracy,
        exact_match=exact_match,
        train_seconds=train_seconds,
        samples=samples,
        export_path=export_path,
    )


# Target tokens of the translations printed after each epoch: enough for a sentence.
_EPOCH_SAMPLE_TOKENS = 64


def _epoch_sampler(service, sources, decoding):
    """`() -> lines`: greedy translations of `sources` (validation sources) by the live model."""
    translate = greedy_translator(
        service.signatures(), max_new_tokens=min(decoding.max_new_tokens, _EPOCH_SAMPLE_TOKENS)
    )

    def sample():
        return [
            f"{source!r} -> {translation!r}"
            for source, translation in zip(sources, translate(sources), strict=True)
        ]

    return sample
