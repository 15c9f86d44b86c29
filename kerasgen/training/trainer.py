"""`train_and_evaluate`: the whole training run the command line (and the tests) call.

A run's work folder holds everything needed to continue or trace it:

    workdir/config.json        the resolved TrainConfig
    workdir/tokenizer/         the vocabulary and tokenizer.json
    workdir/checkpoints/       weights after every epoch, and best.weights.h5 (lowest val loss)
    workdir/backup/            mid-epoch backups while training runs (a rerun continues from
                               them; see kerasgen.training.resume)
    workdir/logs/              TensorBoard: loss, perplexity, learning rate, samples per epoch
    workdir/training.json      written when training has finished (a rerun does not retrain)
    workdir/model.keras        the trained model (Keras format), with the kept (best) weights
"""

import dataclasses
import json
import math
import os

import keras
import tensorflow as tf

from kerasgen import tokenizers
from kerasgen.data.corpus import load_corpus
from kerasgen.data.pipeline import count_tokens, language_model_dataset
from kerasgen.errors import UserInputError
from kerasgen.models import build_model, get_preset
from kerasgen.models.presets import is_translation_model
from kerasgen.serving import DecodingConfig, LanguageModelService
from kerasgen.training import distribution
from kerasgen.training.fitting import fit_model
from kerasgen.training.init_from import initialize_from, install_tokenizer, load_pretrained
from kerasgen.training.optimizers import build_optimizer, learning_rate_schedule
from kerasgen.training.run_output import export_and_release, save_trained


class WorkdirMismatchError(UserInputError):
    """A work folder was written by a run with another model or tokenizer."""


@dataclasses.dataclass
class TrainResult:
    """What a run produced and measured."""

    model: keras.Model
    tokenizer: tokenizers.Tokenizer
    service: LanguageModelService
    validation_loss: float  # nats per token
    validation_perplexity: float
    train_seconds: float
    samples: list  # (prompt, generated text) pairs
    export_path: str | None
    milliseconds_per_step: float | None = None  # steady state, compilation excluded


def _check_workdir(workdir, config):
    """Refuses to reuse a work folder written for another model or tokenizer."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    for field in ("model", "tokenizer", "data_path", "dataset", "max_vocab_size"):
        if previous.get(field) != getattr(config, field):
            raise WorkdirMismatchError(
                f"{workdir} holds a run with {field}={previous.get(field)!r}, not "
                f"{getattr(config, field)!r}; use another --workdir or delete it"
            )


def _tokenizer_for(corpus, config, workdir):
    """The run's tokenizer: reloaded from the work folder if present, else learned and saved."""
    directory = os.path.join(workdir, "tokenizer")
    if os.path.exists(os.path.join(directory, tokenizers.CONFIG_FILE_NAME)):
        return tokenizers.load_tokenizer(directory)
    return tokenizers.learn_tokenizer(
        config.tokenizer, corpus.train, directory, max_vocab_size=config.max_vocab_size
    )


def _built_model(name, vocab_size, mixed_precision=None):
    """Preset `name` built for `vocab_size` ids, under the `mixed_precision` policy if given
    (layers take the policy in force when they are created; the global one is restored)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(mixed_precision or previous)
    try:
        model = build_model(name, vocab_size)
        model(tf.zeros([1, 1], tf.int32))  # build, so weights can be restored or copied
    finally:
        keras.config.set_dtype_policy(previous)
    return model


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


def train_and_evaluate(config, workdir, *, decoding=None, log=print):
    """Trains `config.model` on the configured corpus, evaluates, samples and exports.

    Args:
        config: a `TrainConfig`.
        workdir: the run's work folder (created if missing; a rerun resumes from it).
        decoding: the `DecodingConfig` of the export (default: `DecodingConfig()`).
        log: where progress lines go.

    Returns:
        A `TrainResult`.

    Raises:
        kerasgen.data.corpus.CorpusError: unreadable or too small data (one-line message).
        ValueError: an unknown model or tokenizer level (the message lists the valid ones).
        WorkdirMismatchError: `workdir` belongs to another run.
    """
    get_preset(config.model)  # fail on an unknown model before any work
    if is_translation_model(config.model):  # encoder-decoders train on sentence pairs
        from kerasgen.training.translation_trainer import train_translation_and_evaluate

        return train_translation_and_evaluate(config, workdir, decoding=decoding, log=log)
    if config.tokenizer not in tokenizers.TOKENIZER_LEVELS:
        raise ValueError(
            f"Unknown tokenizer {config.tokenizer!r}; valid tokenizers: "
            f"{', '.join(tokenizers.TOKENIZER_LEVELS)}."
        )
    # First: a multi-worker strategy must be set up before TensorFlow runs anything.
    distribution.check_time_budget(config.strategy, config.time_budget_seconds)
    strategy = distribution.make_strategy(config.strategy, tpu=config.tpu)
    distribution.check_global_batch(config.batch_size, strategy)
    chief = distribution.is_chief(strategy)
    # Only the chief writes into the work folder; another worker keeps its files (a tokenizer
    # learned from the same data, so the same) in a scratch folder.
    files = workdir if chief else distribution.scratch_folder()
    os.makedirs(files, exist_ok=True)
    _check_workdir(workdir, config)
    keras.utils.set_random_seed(config.seed)
    # Read the pretrained source first: a bad --init_from fails before any data work.
    pretrained = (
        load_pretrained(config.init_from, build_preset=_built_model) if config.init_from else None
    )

    corpus = load_corpus(
        data_path=config.data_path, dataset=config.dataset, data_dir=config.data_dir
    )
    if pretrained is not None:
        tokenizer = install_tokenizer(
            pretrained, os.path.join(files, "tokenizer"), config.tokenizer
        )
    else:
        tokenizer = _tokenizer_for(corpus, config, files)
    with open(os.path.join(files, "config.json"), "w", encoding="utf-8") as f:
        f.write(config.to_json())
    log(
        f"Corpus {corpus.name}: {sum(map(len, corpus.train)):,} training characters, "
        f"{tokenizer.level} vocabulary of {tokenizer.vocab_size} ids."
    )

    pipeline = dict(
        tokenize_fn=tokenizer.tokenize,
        seq_len=config.seq_len,
        batch_size=config.batch_size,
        start_id=tokenizer.start_id,
        end_id=tokenizer.end_id,
        seed=config.seed,
    )
    repeat = config.steps_per_epoch is not None

    def make_train_data():  # called again by a resumed run, for the same shuffled order
        dataset = language_model_dataset(
            corpus.train,
            shuffle=True,
            repeat=repeat,
            name=f"{corpus.name} (training part)",
            **pipeline,
        )
        return distribution.shard_by_data(dataset)

    # Built now, so a corpus too small for one batch stops the run before the model is built;
    # the first `fit` call trains on this one, later calls (a resume) on fresh ones.
    unused_train_data = [make_train_data()]
    epoch_batches = len(unused_train_data[0]) if not repeat else None

    def train_data():
        return unused_train_data.pop() if unused_train_data else make_train_data()

    # A small file's validation part may hold fewer windows than a batch: shrink its batches.
    validation_windows = count_tokens(corpus.validation, tokenizer.tokenize) // (config.seq_len + 1)
    validation_data = language_model_dataset(
        corpus.validation,
        shuffle=False,
        name=f"{corpus.name} (validation part)",
        **dict(pipeline, batch_size=max(1, min(config.batch_size, validation_windows))),
    )
    validation_data = distribution.shard_by_data(validation_data)

    def build():
        return _built_model(config.model, tokenizer.vocab_size, config.mixed_precision)

    # The model, its optimizer and metrics are created in the strategy's scope, which mirrors
    # their variables on every replica (the default strategy's scope changes nothing).
    with strategy.scope():
        model = build()
        context_length = getattr(model, "context_length", None)
        if context_length is not None and config.seq_len > context_length:
            raise UserInputError(
                f"seq_len {config.seq_len} exceeds the context window of --model={config.model} "
                f"({context_length} tokens); use --seq_len={context_length} or less"
            )
        if pretrained is not None:
            initialize_from(model, pretrained, config.model)
            log(f"Initialised from the {pretrained.kind} {config.init_from}.")
        epoch_steps = config.steps_per_epoch or epoch_batches
        learning_rate = learning_rate_schedule(
            config.learning_rate,
            schedule=config.schedule,
            total_steps=config.epochs * epoch_steps,
            warmup_steps=config.warmup_steps,
            time_budget_seconds=config.time_budget_seconds,
        )
        model.compile(
            optimizer=build_optimizer(
                config.optimizer,
                learning_rate,
                model,
                weight_decay=config.weight_decay,
                beta_2=config.beta_2,
                clipnorm=config.clipnorm,
                loss_scaling=config.mixed_precision == "mixed_float16",
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=tokenizer.pad_id
            ),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=config.jit_compile,
            steps_per_execution=config.steps_per_execution,
        )
    # Built before training: its tf.function generates the per-epoch samples from the live
    # weights, and then the final samples and the export.
    decoding = (decoding or DecodingConfig()).fitted_to(model)
    service = LanguageModelService(model, tokenizer, decoding)
    prompts = sample_prompts(corpus, config.num_samples)
    outcome = fit_model(
        model,
        train_data,
        validation_data,
        config,
        workdir,
        sample_fn=_epoch_sampler(service, prompts[:2], config.seed) if prompts else None,
        chief=chief,
        log=log,
    )
    train_seconds = outcome.train_seconds
    if outcome.milliseconds_per_step is not None:
        log(
            f"Steady-state step time {outcome.milliseconds_per_step:.1f} ms "
            f"({outcome.optimizer_steps} steps trained)."
        )
    # Saving, the samples and the export use a copy with ordinary variables, built outside
    # the strategy's scope (see distribution.unreplicated_copy); the model itself by default.
    trained = save_trained(model, strategy, build, workdir, chief=chief)
    if trained is not model:
        service = LanguageModelService(trained, tokenizer, decoding)

    validation_loss = outcome.validation_loss
    perplexity = math.exp(validation_loss)
    log(
        f"Validation loss {validation_loss:.4f} nats/token, perplexity {perplexity:.3f} "
        f"({train_seconds:.0f} s of training)."
    )

    samples = []
    if prompts:
        count = len(prompts)
        generated = service.generate(
            tf.constant(prompts),
            tf.fill([count], service.config.max_new_tokens),
            tf.fill([count], float(service.config.temperature)),
            tf.zeros([count], tf.int32),
            tf.ones([count], tf.float32),
            tf.range(config.seed, config.seed + count),
        )
        texts = [t.decode("utf-8", errors="replace") for t in generated["text"].numpy()]
        samples = list(zip(prompts, texts, strict=True))
        for prompt, text in samples:
            log(f"--- sample (prompt {prompt!r}):\n{prompt}{text}")

    export_path = export_and_release(
        service,
        config,
        strategy,
        chief=chief,
        scratch=files,
        metadata={"corpus": corpus.name, "validation_loss": validation_loss},
        log=log,
    )
    return TrainResult(
        model=trained,
        tokenizer=tokenizer,
        service=service,
        validation_loss=validation_loss,
        validation_perplexity=perplexity,
        train_seconds=train_seconds,
        samples=samples,
        export_path=export_path,
        milliseconds_per_step=outcome.milliseconds_per_step,
    )


# Tokens of the sample generated after each epoch: a glimpse, not a page.
_EPOCH_SAMPLE_TOKENS = 48


def _epoch_sampler(service, prompts, seed):
    """`() -> lines`: continuations of `prompts` (the empty prompt and a validation opening)
    through the service's own `generate` function, at its default temperature and fixed seeds,
    so successive epochs are comparable."""
    count = len(prompts)
    inputs = dict(
        prompt=tf.constant(prompts),
        max_new_tokens=tf.fill([count], min(service.config.max_new_tokens, _EPOCH_SAMPLE_TOKENS)),
        temperature=tf.fill([count], float(service.config.temperature)),
        top_k=tf.zeros([count], tf.int32),
        top_p=tf.ones([count], tf.float32),
        seed=tf.range(seed, seed + count),
    )

    def sample():
        texts = service.generate(**inputs)["text"].numpy()
        # One line each: the prompt and its continuation, newlines escaped.
        return [
            repr(prompt + text.decode("utf-8", errors="replace"))
            for prompt, text in zip(prompts, texts, strict=True)
        ]

    return sample
