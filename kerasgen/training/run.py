"""`train_and_evaluate`: the one training run of every model family.

The skeleton is the same for a language model and an encoder-decoder: set up the strategy and
the work folder, read the data, learn (or reload) the tokenizers, build and compile the model
with the run's optimizer, schedule, clipping, precision and XLA settings, fit with backups and
checkpoints, keep the best weights, evaluate, sample and export. What differs per family comes
from its task (`kerasgen.tasks`). The work folder's files are `WorkFolder`'s
(`kerasgen.work_folder`).

Nothing is written into the work folder before every check has passed (data, tokenizers,
model sizes, the record of an earlier run), and the folder is locked while a run uses it.
"""

import dataclasses
import os
import shutil
import tempfile

import keras

from kerasgen import tokenizers as tokenizers_module
from kerasgen.errors import UserInputError
from kerasgen.models import presets
from kerasgen.serving import export_service
from kerasgen.tasks import task_for
from kerasgen.training import budget_plan, distribution, keras_fixes
from kerasgen.training.fitting import count_batches, fit_model
from kerasgen.training.init_from import initialize_from, install_tokenizer, load_pretrained
from kerasgen.training.optimizers import build_optimizer, learning_rate_schedule
from kerasgen.work_folder import WorkFolder, check_free_space, model_bytes


class WorkdirMismatchError(UserInputError):
    """A work folder records a run with other settings than this one."""


# TrainConfig fields that do not change what is trained: a rerun may give them other values.
RUN_INDEPENDENT_FIELDS = (
    "data_dir",
    "export",
    "export_dir",
    "num_samples",
    "verbose",
    "checkpoint_every_steps",
    "strategy",
    "tpu",
    "time_budget_seconds",
    "plan",
    "length_limit",
    "given_fields",
)


@dataclasses.dataclass
class TrainResult:
    """What a run produced and measured."""

    model: keras.Model
    tokenizers: dict  # name ("tokenizer", or "source_tokenizer" and "target_tokenizer") → it
    service: object  # the family's generation service (LanguageModelService, ...)
    validation_loss: float  # nats per (target) token
    train_seconds: float
    samples: list  # (prompt, text) pairs, or (source, reference, translation) triples
    export_path: str | None
    metrics: dict = dataclasses.field(default_factory=dict)  # the task's figures
    milliseconds_per_step: float | None = None  # steady state, compilation excluded
    config: object = None  # the resolved TrainConfig, as recorded in the work folder

    @property
    def tokenizer(self):
        """The language model's tokenizer, or an encoder-decoder's target tokenizer."""
        return self.tokenizers.get("tokenizer") or self.tokenizers["target_tokenizer"]

    @property
    def source_tokenizer(self):
        return self.tokenizers["source_tokenizer"]

    @property
    def target_tokenizer(self):
        return self.tokenizers["target_tokenizer"]

    @property
    def validation_perplexity(self):
        return self.metrics["validation_perplexity"]

    @property
    def validation_accuracy(self):
        return self.metrics["validation_accuracy"]

    @property
    def exact_match(self):
        return self.metrics["exact_match"]


def resolve_config(config):
    """`config` with the preset's hyperparameters resolved into `model_config` (the preset's,
    then `config.model_config`'s overrides, checked), as the run records them."""
    hyperparameters = presets.resolve_hyperparameters(config.model, config.model_config)
    return dataclasses.replace(config, model_config=hyperparameters)


def train_and_evaluate(config, workdir, *, decoding=None, callbacks=(), log=print):
    """Trains `config.model` on the configured data, evaluates, samples and exports.

    With `config.time_budget_seconds` and no length the user gave (`config.is_given`:
    neither `epochs` nor `steps_per_epoch`), the run plans its length from its measured step
    time so that training, its validation passes, the final evaluation and the export end
    within the budget (`kerasgen.training.budget_plan`); `result.config.plan` records it.

    Args:
        config: a `TrainConfig`.
        workdir: the run's work folder (created if missing; a rerun resumes from it).
        decoding: the export's `DecodingConfig` (default: the task's, e.g. greedy for
            translation).
        callbacks: more Keras callbacks for every `fit` call (e.g. a profiler).
        log: where progress lines go.

    Returns:
        A `TrainResult`.

    Raises:
        UserInputError (one-line message) for every problem of the user's making: unreadable
        or too small data, an unknown model or tokenizer level, hyperparameters that do not fit
        the preset, a work folder that belongs to another run or is in use, a diverged run.
    """
    task = task_for(config.model)
    config = resolve_config(config)
    for name, level in task.tokenizer_levels(config).items():
        if level not in tokenizers_module.TOKENIZER_LEVELS:
            raise UserInputError(
                f"Unknown {name.replace('_', ' ')} level {level!r}; valid tokenizers: "
                f"{', '.join(tokenizers_module.TOKENIZER_LEVELS)}."
            )
    # First: a multi-worker strategy must be set up before TensorFlow runs anything.
    distribution.check_time_budget(config.strategy, config.time_budget_seconds)
    keras_fixes.install()
    strategy = distribution.make_strategy(config.strategy, tpu=config.tpu)
    distribution.check_global_batch(config.batch_size, strategy)
    chief = distribution.is_chief(strategy)
    folder = WorkFolder(workdir)
    if chief:
        folder.prepare()
        if config.export:
            _check_writable_folder(config.export_dir, "--export_dir")
        folder.lock()
    try:
        return _train(task, config, folder, strategy, chief, decoding, callbacks, log)
    finally:
        folder.unlock()


def _train(task, config, folder, strategy, chief, decoding, callbacks, log):
    record = folder.read_config()
    # The datasets are built from the config as given: a resumed budget-sized run then reads
    # the same stream as its first process, whose datasets were built before its plan.
    data_config = config
    # A rerun of a run that planned its length to the budget keeps that plan.
    config = budget_plan.recorded_plan(config, record)
    if record is not None:
        _check_record(folder, record, config)
    keras.utils.set_random_seed(config.seed)
    # Read the pretrained source first: a bad --init_from fails before any data work.
    pretrained = None
    if config.init_from:
        pretrained = load_pretrained(config.init_from, build_preset=build_preset)
    data = task.load_data(config, log)

    # Only the chief writes into the work folder; another worker keeps its files (tokenizers
    # learned from the same data, so the same) in a scratch folder.
    files = folder if chief else WorkFolder(distribution.scratch_folder())
    staging = tempfile.mkdtemp(prefix=".tmp-run-", dir=files.path)
    try:
        tokenizers = _tokenizers(task, config, data, files, staging, pretrained, record)
        decoding = decoding or task.default_decoding()
        if config.length_limit is None:  # measured once, on the training pairs
            config = dataclasses.replace(
                config, length_limit=task.length_limit(data, tokenizers, decoding)
            )
        decoding = task.decoding_for(decoding, config)
        make_task_data, validation_data, epoch_batches = task.datasets(
            data, tokenizers, data_config, decoding
        )
        validation_data = distribution.shard_by_data(validation_data)

        def make_train_data():
            return distribution.shard_by_data(make_task_data())

        epoch_steps = config.steps_per_epoch or epoch_batches
        config = _planned(config, epoch_steps, make_train_data, log)

        def build():
            return _built_model(task, config, tokenizers)

        # The model, its optimizer and metrics are created in the strategy's scope, which
        # mirrors their variables on every replica (the default strategy's changes nothing).
        with strategy.scope():
            model = build()
            task.check_model(model, config)
            if pretrained is not None:
                initialize_from(model, pretrained, config.model)
            _compile(model, task, tokenizers, config)
        # Every check has passed: the run claims the folder.
        tokenizers = _install_tokenizers(files, staging, tokenizers)
        files.write_config(config)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(task.describe(data, tokenizers))
    if pretrained is not None:
        log(f"Initialised from the {pretrained.kind} {config.init_from}.")

    # Built before training: its tf.function generates the per-epoch samples from the live
    # weights, and then the final samples and the export.
    decoding = decoding.fitted_to(model)
    service = task.service(model, tokenizers, decoding)

    def plan_length(measurement):
        planned = budget_plan.plan_length(
            config,
            measurement,
            validation_batches=0 if validation_data is None else count_batches(validation_data),
            evaluation_seconds=task.evaluation_seconds(data, measurement.step_seconds),
        )
        log(budget_plan.describe(planned))
        if chief:
            files.write_config(planned)
        return planned

    outcome = fit_model(
        model,
        make_train_data,
        validation_data,
        config,
        folder,
        sample_fn=task.epoch_sampler(service, data, config),
        plan_fn=plan_length if budget_plan.is_pending(config.plan) else None,
        callbacks=callbacks,
        chief=chief,
        log=log,
    )
    config = outcome.config
    if config.time_budget_seconds and not outcome.already_trained:
        # How far the schedule got: the floor when it annealed (by its steps or the clock).
        log(
            f"Learning rate at the end of training {_learning_rate(model):.4g} (peak "
            f"{config.learning_rate:g})."
        )
    if outcome.milliseconds_per_step is not None:
        log(
            f"Steady-state step time {outcome.milliseconds_per_step:.1f} ms "
            f"({outcome.optimizer_steps} steps trained)."
        )
    # Saving, the samples and the export use a copy with ordinary variables, built outside
    # the strategy's scope (see distribution.unreplicated_copy); the model itself by default.
    trained = distribution.unreplicated_copy(model, strategy, build)
    if chief:
        _save_model_atomically(trained, folder.model_path)
    if trained is not model:
        service = task.service(trained, tokenizers, decoding)
    metrics, samples = task.evaluate(service, data, outcome, config, log)

    export_path = None
    if config.export and chief:
        check_free_space(config.export_dir, 2 * model_bytes(trained), "the export")
        export_path = export_service(
            service,
            config.export_dir,
            config.model,
            metadata={
                "train_config": dataclasses.asdict(config),
                **task.export_metadata(data, tokenizers, metrics, outcome),
            },
        )
        log(f"Exported SavedModel to {export_path}")
    if not chief:
        shutil.rmtree(files.path, ignore_errors=True)
    distribution.wait_for_workers(strategy)
    return TrainResult(
        model=trained,
        tokenizers=tokenizers,
        service=service,
        validation_loss=outcome.validation_loss,
        train_seconds=outcome.train_seconds,
        samples=samples,
        export_path=export_path,
        metrics=metrics,
        milliseconds_per_step=outcome.milliseconds_per_step,
        config=config,
    )


def _check_record(folder, record, config):
    """Refuses a run whose settings differ from those its work folder records: the record
    keeps what was trained (and a resume must continue the same run)."""
    for field in dataclasses.fields(config):
        if field.name in RUN_INDEPENDENT_FIELDS:
            continue
        before, now = getattr(record, field.name), getattr(config, field.name)
        if field.name == "model_config" and before is None:  # recorded before model_config
            continue
        if before != now:
            raise WorkdirMismatchError(
                f"{folder.path} holds a run with {field.name}={before!r}, not {now!r}; a rerun "
                f"keeps what was trained: repeat its settings, or use another --workdir"
            )


def _check_writable_folder(path, flag):
    """One line, before any training, when `path` (created later if missing) cannot be."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise UserInputError(f"{flag}={path} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserInputError(f"{flag}={path} is not writable")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UserInputError(f"{flag}={path} cannot be created ({parent} is not writable)")


def _tokenizers(task, config, data, files, staging, pretrained, record):
    """`{name: Tokenizer}`: the work folder's if it records a run, the pretrained source's
    with `--init_from`, else learned from the training text into `staging`."""
    levels = task.tokenizer_levels(config)
    texts = task.training_texts(data)
    result = {}
    for name in task.tokenizer_names:
        if record is not None and files.has_tokenizer(name):
            result[name] = files.load_tokenizer(name)
            if pretrained is not None:  # the same vocabulary as the source's, or refused
                install_tokenizer(pretrained, files.tokenizer_dir(name), levels[name], name=name)
        elif pretrained is not None:
            result[name] = install_tokenizer(
                pretrained, os.path.join(staging, name), levels[name], name=name
            )
        else:
            result[name] = tokenizers_module.learn_tokenizer(
                levels[name],
                texts[name],
                os.path.join(staging, name),
                max_vocab_size=config.max_vocab_size,
            )
    return result


def _install_tokenizers(files, staging, tokenizers):
    """Moves the staged tokenizers into the work folder and reloads them from there (the
    export tracks their vocabulary files by path)."""
    installed = {}
    for name, tokenizer in tokenizers.items():
        staged = os.path.join(staging, name)
        if os.path.isdir(staged):
            files.install(staged, name)
            installed[name] = files.load_tokenizer(name)
        else:
            installed[name] = tokenizer
    return installed


def _planned(config, epoch_steps, make_train_data, log):
    """`config` with its schedule fitted to the run's length: a warmup that comes from the
    preset's recipe shrinks to a tenth of a shorter run (with a note); an explicit one that
    does not fit is an error. The plan is recorded in `config.plan`.

    A run that sizes its length to its budget gets a provisional plan, which its measurement
    replaces (`budget_plan`); a rerun keeps the plan its record holds."""
    if budget_plan.is_measured(config.plan):
        return config
    uses_total = config.schedule != "constant" or config.warmup_steps
    sizing = budget_plan.sizes_to_budget(config)
    if not uses_total and not sizing:
        return dataclasses.replace(config, plan=None)
    if epoch_steps is None:
        epoch_steps = count_batches(make_train_data())
    if sizing:
        return dataclasses.replace(config, plan=budget_plan.provisional_plan(config, epoch_steps))
    total_steps = config.epochs * epoch_steps
    warmup_steps = config.warmup_steps
    if warmup_steps >= total_steps:
        from_recipe = presets.training_recipe(config.model).get("warmup_steps") == warmup_steps
        if not from_recipe:
            raise UserInputError(
                f"--warmup_steps={warmup_steps} does not fit a run of {total_steps} steps "
                f"(--epochs={config.epochs} of {epoch_steps}); use fewer warmup steps"
            )
        warmup_steps = total_steps // 10
        log(
            f"Note: the {config.model} recipe's {config.warmup_steps} warmup steps exceed this "
            f"run's {total_steps} steps; warming up over {warmup_steps}."
        )
    return dataclasses.replace(
        config, plan={"total_steps": total_steps, "warmup_steps": warmup_steps}
    )


def _built_model(task, config, tokenizers):
    """The task's model, built under the `mixed_precision` policy if given (layers take the
    policy in force when they are created; the global one is restored)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.mixed_precision or previous)
    try:
        return task.build_model(config, tokenizers)
    finally:
        keras.config.set_dtype_policy(previous)


def build_preset(preset, vocab_sizes, *, model_config=None, mixed_precision=None):
    """Preset `preset` built for `vocab_sizes` (`{tokenizer name: size}`, e.g.
    `{"tokenizer": 65}`), as a run would build it; what `--init_from` a checkpoint needs."""
    from kerasgen.training.train_config import TrainConfig

    config = resolve_config(
        TrainConfig(model=preset, model_config=model_config, mixed_precision=mixed_precision)
    )
    sized = {name: _VocabularySize(size) for name, size in vocab_sizes.items()}
    return _built_model(task_for(preset), config, sized)


@dataclasses.dataclass
class _VocabularySize:
    """What `build_model` reads of a tokenizer: its vocabulary size."""

    vocab_size: int


def _compile(model, task, tokenizers, config):
    plan = config.plan or {}
    learning_rate = learning_rate_schedule(
        config.learning_rate,
        schedule=config.schedule,
        total_steps=plan.get("total_steps"),
        warmup_steps=plan.get("warmup_steps", config.warmup_steps),
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
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
        **task.compile_arguments(tokenizers, config),
    )


def _learning_rate(model):
    """The optimizer's current learning rate (a schedule's value at the current step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _save_model_atomically(model, path):
    """`model.save(path)` through a temporary file beside it."""
    check_free_space(os.path.dirname(path), 2 * model_bytes(model), "model.keras")
    temporary = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-model.keras")
    model.save(temporary)
    os.replace(temporary, path)


def load_trained(workdir):
    """`(model, tokenizers, TrainConfig)` of a finished run in `workdir`; what `python -m
    kerasgen.export --workdir` re-exports. A damaged or missing file is one line."""
    folder = WorkFolder(workdir)
    folder.require_finished()
    config = folder.read_config()
    task = task_for(config.model)
    model = folder.load_model()
    tokenizers = {name: folder.load_tokenizer(name) for name in task.tokenizer_names}
    return model, tokenizers, config


def service_for(workdir, decoding=None, *, jit_compile=False, measured_limit=True):
    """The generation service of the finished run in `workdir` (any family), with its task's
    default decoding unless `decoding` is given; and the run's `TrainConfig`.

    `measured_limit`: apply the decoding length limit the run measured (a translation run's
    `length_limit`) unless `decoding` sets its own ratio; False keeps `decoding`'s as it is, 0
    (no limit) included, for a user who gave it explicitly."""
    model, tokenizers, config = load_trained(workdir)
    task = task_for(config.model)
    decoding = decoding or task.default_decoding()
    if measured_limit:
        decoding = task.decoding_for(decoding, config)
    decoding = decoding.fitted_to(model)
    return task.service(model, tokenizers, decoding, jit_compile=jit_compile), config
