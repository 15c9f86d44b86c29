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
from kerasgen.serving import DecodingConfig, LanguageModelService, export_service


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
    if config.tokenizer not in tokenizers.TOKENIZER_LEVELS:
        raise ValueError(
            f"Unknown tokenizer {config.tokenizer!r}; valid tokenizers: "
            f"{', '.join(tokenizers.TOKENIZER_LEVELS)}."
        )
    os.makedirs(workdir, exist_ok=True)
    _check_workdir(workdir, config)
    keras.utils.set_random_seed(config.seed)

    corpus = load_corpus(
        data_path=config.data_path, dataset=config.dataset, data_dir=config.data_dir
    )
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

    model = build_model(config.model, tokenizer.vocab_size)
    model(tf.zeros([1, config.seq_len], tf.int32))  # build, so BackupAndRestore can restore
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=config.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=tokenizer.pad_id
        ),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    checkpoints = os.path.join(workdir, "checkpoints")
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, "epoch-{epoch:03d}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.TensorBoard(os.path.join(workdir, "logs")),
        keras.callbacks.TerminateOnNaN(),
    ]
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
    model.save(os.path.join(workdir, "model.keras"))

    validation_loss = float(model.evaluate(validation_data, verbose=0, return_dict=True)["loss"])
    perplexity = math.exp(validation_loss)
    log(
        f"Validation loss {validation_loss:.4f} nats/token, perplexity {perplexity:.3f} "
        f"({train_seconds:.0f} s of training)."
    )

    service = LanguageModelService(model, tokenizer, decoding or DecodingConfig())
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
    )
