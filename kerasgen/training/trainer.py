"""`train_and_evaluate`: the whole training run the command line (and the tests) call.

A run's work folder holds everything needed to continue or trace it:

    workdir/config.json        the resolved TrainConfig
    workdir/tokenizer/         the vocabulary and tokenizer.json
    workdir/checkpoints/       weights after every epoch
    workdir/backup/            Keras BackupAndRestore state (a rerun continues from it)
    workdir/logs/              TensorBoard scalars
    workdir/model.keras        the trained model (Keras format)
"""

import dataclasses
import json
import math
import os
import time

import keras
import tensorflow as tf

from kerasgen import tokenizers
from kerasgen.data.corpus import load_corpus
from kerasgen.data.pipeline import count_tokens, language_model_dataset
from kerasgen.errors import UserInputError
from kerasgen.models import build_model, get_preset
from kerasgen.models.presets import is_translation_model
from kerasgen.serving import DecodingConfig, LanguageModelService, export_service
from kerasgen.training.callbacks import StepTimer, TimeBudget
from kerasgen.training.init_from import initialize_from, install_tokenizer, load_pretrained
from kerasgen.training.optimizers import build_optimizer, learning_rate_schedule


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
    os.makedirs(workdir, exist_ok=True)
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
            pretrained, os.path.join(workdir, "tokenizer"), config.tokenizer
        )
    else:
        tokenizer = _tokenizer_for(corpus, config, workdir)
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
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
    train_data = language_model_dataset(
        corpus.train,
        shuffle=True,
        repeat=repeat,
        name=f"{corpus.name} (training part)",
        **pipeline,
    )
    # A small file's validation part may hold fewer windows than a batch: shrink its batches.
    validation_windows = count_tokens(corpus.validation, tokenizer.tokenize) // (config.seq_len + 1)
    validation_data = language_model_dataset(
        corpus.validation,
        shuffle=False,
        name=f"{corpus.name} (validation part)",
        **dict(pipeline, batch_size=max(1, min(config.batch_size, validation_windows))),
    )

    model = _built_model(config.model, tokenizer.vocab_size, config.mixed_precision)
    context_length = getattr(model, "context_length", None)
    if context_length is not None and config.seq_len > context_length:
        raise UserInputError(
            f"seq_len {config.seq_len} exceeds the context window of --model={config.model} "
            f"({context_length} tokens); use --seq_len={context_length} or less"
        )
    if pretrained is not None:
        initialize_from(model, pretrained, config.model)
        log(f"Initialised from the {pretrained.kind} {config.init_from}.")
    epoch_steps = config.steps_per_epoch or len(train_data)
    learning_rate = learning_rate_schedule(
        config.learning_rate,
        schedule=config.schedule,
        total_steps=config.epochs * epoch_steps,
        warmup_steps=config.warmup_steps,
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
    checkpoints = os.path.join(workdir, "checkpoints")
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, "epoch-{epoch:03d}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.TensorBoard(os.path.join(workdir, "logs")),
        keras.callbacks.TerminateOnNaN(),
        step_timer := StepTimer(),
    ]
    if config.time_budget_seconds:
        callbacks.append(TimeBudget(config.time_budget_seconds))
    started = time.monotonic()
    model.fit(
        train_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=False,  # the pipeline shuffles, with the run's seed
        verbose=config.verbose,
    )
    train_seconds = time.monotonic() - started
    if step_timer.milliseconds_per_step is not None:
        log(
            f"Steady-state step time {step_timer.milliseconds_per_step:.1f} ms "
            f"({int(model.optimizer.iterations)} steps trained)."
        )
    model.save(os.path.join(workdir, "model.keras"))

    validation_loss = float(model.evaluate(validation_data, verbose=0, return_dict=True)["loss"])
    perplexity = math.exp(validation_loss)
    log(
        f"Validation loss {validation_loss:.4f} nats/token, perplexity {perplexity:.3f} "
        f"({train_seconds:.0f} s of training)."
    )

    decoding = (decoding or DecodingConfig()).fitted_to(model)
    service = LanguageModelService(model, tokenizer, decoding)
    prompts = sample_prompts(corpus, config.num_samples)
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

    export_path = None
    if config.export:
        export_path = export_service(
            service,
            config.export_dir,
            config.model,
            metadata={
                "train_config": dataclasses.asdict(config),
                "corpus": corpus.name,
                "validation_loss": validation_loss,
            },
        )
        log(f"Exported SavedModel to {export_path}")
    return TrainResult(
        model=model,
        tokenizer=tokenizer,
        service=service,
        validation_loss=validation_loss,
        validation_perplexity=perplexity,
        train_seconds=train_seconds,
        samples=samples,
        export_path=export_path,
        milliseconds_per_step=step_timer.milliseconds_per_step,
    )
