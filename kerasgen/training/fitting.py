"""`fit_model`: what every trainer shares between compiling a model and evaluating it.

The callbacks (backups, checkpoints, early stopping, TensorBoard, per-epoch samples, step timing,
time budget), the `model.fit` calls, and resuming an interrupted run (`kerasgen.training.resume`
describes the backup and what a rerun of a finished work folder does).

What a run writes under its work folder (`kerasgen.work_folder.WorkFolder` names the files):
the backups (deleted when training ends), the weights after each epoch and those of the lowest
validation loss so far, TensorBoard logs (loss, perplexity, accuracy, learning rate, the text
generated after each epoch), and the finished-run record. Every weights file is written through
a temporary file and `os.replace`.

A run whose loss stops being finite ends with `TrainingDivergedError`: nothing is recorded as
finished, and the last backup (of finite weights) stays for a rerun with other settings.

The weights a run keeps, and so saves and exports, are those of the lowest validation loss at an
epoch end (`checkpoints/best.weights.h5`): the last epoch's, unless the loss rose after its best
epoch, as it does before early stopping. A run that a time budget stops mid-epoch is validated
at the stop too, so its last weights compete.
"""

import dataclasses
import math
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from kerasgen.errors import UserInputError
from kerasgen.training import budget_plan, resume
from kerasgen.training.callbacks import AtomicCheckpoint, StepTimer, TimeBudget
from kerasgen.training.epoch_callbacks import EpochSamples, Perplexity
from kerasgen.training.optimizers import budgeted_schedule_of
from kerasgen.work_folder import WorkFolder

BEST_WEIGHTS = WorkFolder.BEST_WEIGHTS
FINAL_WEIGHTS = WorkFolder.FINAL_WEIGHTS


class TrainingDivergedError(UserInputError):
    """The training loss stopped being finite (NaN or infinity)."""


@dataclasses.dataclass
class FitOutcome:
    """What `fit_model` did. Epochs count from 1 in messages and from 0 in fields."""

    validation_logs: dict | None  # validation metrics of the weights the model now holds
    epochs_trained: int  # finished epochs, over all restarts
    global_step: int  # batches trained, over all restarts
    optimizer_steps: int  # optimizer.iterations at the end
    train_seconds: float  # training time of this process
    milliseconds_per_step: float | None = None  # steady state, compilation excluded
    best_epoch: int | None = None  # the epoch (from 0) whose weights the model holds
    stopped_early: bool = False  # early stopping ended training
    resumed_from: resume.TrainingState | None = None  # the backup this process started from
    already_trained: bool = False  # the work folder held a finished run: nothing was trained
    history: dict = dataclasses.field(default_factory=dict)  # metric -> per-epoch values
    config: object = None  # the TrainConfig trained with: the planned one if `plan_fn` planned

    @property
    def validation_loss(self):
        return None if self.validation_logs is None else self.validation_logs["loss"]


def fit_model(
    model,
    train_data,
    validation_data,
    config,
    workdir,
    *,
    sample_fn=None,
    plan_fn=None,
    callbacks=(),
    chief=True,
    log=print,
):
    """Trains a compiled `model` for `config.epochs`, resuming from `workdir` if a backup is
    there; leaves the model holding the weights it keeps (see the module docstring).

    Args:
        model: a built and compiled Keras model.
        train_data: a function returning the training `tf.data.Dataset` (shuffled with the
            run's seed, reshuffled each pass; repeated when `config.steps_per_epoch` is set,
            else one pass is an epoch), or the dataset itself. A function is better: each `fit`
            call builds the data afresh and skips to where the run stands, which reproduces
            the batches an uninterrupted run sees (a dataset's reshuffling has moved on after
            its first use).
        validation_data: the validation dataset, or None (then no best checkpoint, no early
            stopping).
        config: the `TrainConfig` (epochs, steps_per_epoch, checkpoint_every_steps,
            early_stopping_patience, time_budget_seconds, verbose and the data settings).
        workdir: the run's work folder (a path or a `WorkFolder`).
        sample_fn: `() -> list[str]`, sample lines generated after each epoch; None: none.
        plan_fn: for a run that sizes its length to its budget (`config.plan` provisional, see
            `kerasgen.training.budget_plan`): `(StepMeasurement) -> TrainConfig`, called once
            after the first `budget_plan.measuring_steps` steps of a fresh run; the returned
            config's length and plan rule the rest of the run (a `BudgetedSchedule` is
            replanned to its total). The measured steps are the run's first steps, kept: the
            run goes on from them as a resumed run would. Not called on a resume.
        callbacks: more Keras callbacks, run before the run's own in every `fit` call.
        chief: False on the non-chief workers of a multi-worker run: they run every callback
            (some take part in collectives) but write into a temporary folder, not `workdir`.
            Every worker reads the chief's backup.
        log: where progress lines go.

    Returns:
        A `FitOutcome`.

    Raises:
        kerasgen.training.resume.ResumeMismatchError: the backup was written with other data
            settings (batch size, sequence length, steps per epoch, seed).
        TrainingDivergedError: the loss became NaN or infinite.
    """
    workdir = workdir.path if isinstance(workdir, WorkFolder) else workdir
    scratch = None if chief else tempfile.mkdtemp(prefix="kerasgen-worker-")
    try:
        finished = resume.read_finished(workdir)
        if finished is not None:
            outcome = _reload_finished(model, validation_data, workdir, finished, log)
            return dataclasses.replace(outcome, config=config)
        return _fit(
            model,
            train_data,
            validation_data,
            config,
            workdir,
            scratch or workdir,
            sample_fn=sample_fn if chief else None,
            plan_fn=plan_fn,
            extra_callbacks=list(callbacks),
            chief=chief,
            log=log,
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _fit(
    model,
    train_data,
    validation_data,
    config,
    workdir,
    output,
    *,
    sample_fn,
    plan_fn,
    extra_callbacks,
    chief,
    log,
):
    make_data = train_data if callable(train_data) else lambda: train_data
    backup_dir = os.path.join(workdir, resume.BACKUP_FOLDER)
    state = resume.read_backup(backup_dir, log=log)
    resumed_from = None
    if state is not None:
        resume.check_settings(state, config, backup_dir)
        resume.load_weights(model, os.path.join(backup_dir, state.weights))
        resumed_from = dataclasses.replace(state)
    else:
        state = resume.TrainingState()
    state.data_settings = resume.settings_of(config)

    backup = resume.Backup(
        os.path.join(output, resume.BACKUP_FOLDER), state, config.checkpoint_every_steps
    )
    if chief:
        resume.remove_stale_files(backup_dir, keep=resume.referenced_weights(backup_dir))
    early_stopping = None
    if config.early_stopping_patience and validation_data is not None:
        early_stopping = resume.ResumableEarlyStopping(state, config.early_stopping_patience)
    step_timer = StepTimer()
    callbacks = [
        *extra_callbacks,
        Perplexity(),  # first: the callbacks after it log the perplexity
        keras.callbacks.TerminateOnNaN(),
        *([early_stopping] if early_stopping else []),
        AtomicCheckpoint(os.path.join(output, WorkFolder.EPOCH_WEIGHTS)),
    ]
    if validation_data is not None:
        callbacks.append(
            AtomicCheckpoint(
                os.path.join(output, BEST_WEIGHTS), best_so_far=state.best_validation_loss
            )
        )
    logdir = os.path.join(output, "logs")
    callbacks += [keras.callbacks.TensorBoard(logdir), step_timer]
    if sample_fn is not None:
        callbacks.append(EpochSamples(sample_fn, os.path.join(logdir, "samples"), log=log))

    started = time.monotonic()
    history = {}
    stopped = announced = False
    steps_per_execution = getattr(model, "steps_per_execution", 1) or 1
    if plan_fn is not None and resumed_from is None:
        config = _measure_and_plan(
            model,
            make_data,
            validation_data,
            config,
            started,
            state,
            plan_fn,
            [*extra_callbacks, step_timer],
            log,
        )
    while state.epoch < config.epochs and not stopped:
        # At most two `fit` calls: the rest of an interrupted (or measured) epoch, then the
        # remaining epochs.
        budget = []
        if config.time_budget_seconds:  # one budget for both calls
            deadline = budget_plan.training_seconds(config)
            if time.monotonic() - started >= deadline:
                break
            budget = [time_budget := TimeBudget(deadline, started)]
        partial = state.step_in_epoch > 0
        data, steps = _positioned_data(make_data, state, config, steps_per_execution)
        if resumed_from is not None and not announced:
            log(f"Resumed from {backup_dir} at {state.describe(config.epochs)}.")
            announced = True
        end = [_EndAfterEpoch()] if partial else []
        if partial:
            backup.continue_epoch(state.step_in_epoch)
        result = model.fit(
            data,
            initial_epoch=state.epoch,
            epochs=config.epochs,
            steps_per_epoch=steps,
            validation_data=validation_data,
            callbacks=[*callbacks, *budget, backup, *end],
            shuffle=False,  # the pipeline shuffles, with the run's seed
            verbose=config.verbose,
        )
        for name, values in result.history.items():
            history.setdefault(name, []).extend(values)
        stopped = end[0].stopped_by_others if end else model.stop_training
        if budget and time_budget.stopped_early:
            stopped = True
    train_seconds = time.monotonic() - started
    if backup.diverged_at is not None:
        raise TrainingDivergedError(
            f"training diverged: the loss became {backup.diverged_loss} at global step "
            f"{backup.diverged_at}; nothing was exported, and the last backup of finite weights "
            f"stays in {backup_dir} (lower --learning_rate, or delete the folder to start over)"
        )
    if resumed_from is not None and not announced:
        log(f"Resumed from {backup_dir} after epoch {state.epoch}: nothing left to train.")

    kept, validation_logs, best_epoch = _keep_best(model, validation_data, state, output, log)
    stopped_early = early_stopping is not None and early_stopping.stopped_epoch > 0
    if stopped_early:
        log(
            f"Early stopping after epoch {early_stopping.stopped_epoch + 1}: the validation "
            f"loss has not improved for {config.early_stopping_patience} epoch(s)."
        )
    finished = resume.FinishedRun(
        epochs=state.epoch,
        global_step=state.global_step,
        optimizer_steps=int(model.optimizer.iterations.numpy()),
        weights=kept,
        best_epoch=best_epoch,
        validation_logs=validation_logs,
        stopped_early=stopped_early,
    )
    if chief:
        resume.write_finished(workdir, finished)
        shutil.rmtree(backup_dir, ignore_errors=True)
    kept_text = (
        "the last weights" if best_epoch is None else f"the weights of epoch {best_epoch + 1}"
    )
    loss_text = (
        f" (validation loss {validation_logs['loss']:.4f})" if validation_logs is not None else ""
    )
    log(
        f"Trained {state.epoch} epoch(s), {state.global_step} steps ({finished.optimizer_steps} "
        f"optimizer steps); kept {kept_text}{loss_text}"
        + (f" in {os.path.join(workdir, kept)}." if chief else " (the chief writes them).")
    )
    return FitOutcome(
        validation_logs=validation_logs,
        epochs_trained=state.epoch,
        global_step=state.global_step,
        optimizer_steps=finished.optimizer_steps,
        train_seconds=train_seconds,
        milliseconds_per_step=step_timer.milliseconds_per_step,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        resumed_from=resumed_from,
        history=history,
        config=config,
    )


def _measure_and_plan(
    model, make_data, validation_data, config, started, state, plan_fn, callbacks, log
):
    """Trains the first steps of a budget-sized run, times them, and returns `plan_fn`'s
    config; leaves `state` where a resumed run would stand after those steps (epoch 0 in
    progress), so the loop of `_fit` continues with the next batch of the same stream."""
    steps_per_execution = getattr(model, "steps_per_execution", 1) or 1
    steps = budget_plan.measuring_steps(steps_per_execution, xla=bool(model.jit_compile))
    log(f"Measuring the step time over the first {steps} steps to plan the run's length.")
    counter = _StepCount()
    result = model.fit(
        make_data().repeat(),  # one stream across epochs, as `_positioned_data` makes it
        epochs=1,
        steps_per_epoch=steps,
        callbacks=[
            *callbacks,
            keras.callbacks.TerminateOnNaN(),
            TimeBudget(config.time_budget_seconds, started),
            counter,
        ],
        shuffle=False,
        verbose=0,  # a progress bar of its own would read as an epoch of its own
    )
    losses = result.history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise TrainingDivergedError(
            f"training diverged: the loss became {losses[-1]} within the first {counter.steps} "
            "steps (lower --learning_rate)"
        )
    step_timer = next(c for c in callbacks if isinstance(c, StepTimer))
    if validation_data is not None:
        # Traces the validation function now (the epochs reuse it): its compilation is then
        # part of the time spent before the plan, not a surprise at the first epoch's end.
        model.evaluate(validation_data, steps=1, verbose=0)
    # What a checkpoint or backup costs, timed on a scratch file: a real backup before the plan
    # is recorded would make a rerun resume without one.
    writing = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="kerasgen-timing-")
    try:
        resume.save_weights_atomically(model, os.path.join(scratch, "timing.weights.h5"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    weights_file_seconds = time.monotonic() - writing
    spent = time.monotonic() - started
    step_seconds = (
        step_timer.milliseconds_per_step / 1000
        if step_timer.milliseconds_per_step is not None
        else spent / max(1, counter.steps)  # too few executions to time: compilation counts
    )
    config = plan_fn(
        budget_plan.StepMeasurement(
            steps=counter.steps,
            step_seconds=step_seconds,
            spent_seconds=spent,
            weights_file_seconds=weights_file_seconds,
        )
    )
    schedule = budgeted_schedule_of(model.optimizer)
    if schedule is not None:
        schedule.replan(config.plan["total_steps"])
    state.epoch, state.step_in_epoch, state.global_step = 0, counter.steps, counter.steps
    state.optimizer_steps = int(model.optimizer.iterations.numpy())
    state.data_settings = resume.settings_of(config)
    return config


class _StepCount(keras.callbacks.Callback):
    """Counts the batches a one-epoch `fit` call trained."""

    steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps = batch + 1  # Keras passes an execution's last step


def count_batches(dataset):
    """The batches of one pass over `dataset` (read through once when tf.data cannot tell,
    as for length-bucketed batches); `tf.data.INFINITE_CARDINALITY` for a repeated one."""
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        cardinality = int(dataset.reduce(tf.constant(0, tf.int64), lambda count, *_: count + 1))
    return cardinality


def _positioned_data(make_data, state, config, steps_per_execution):
    """A fresh training dataset positioned where `state` stands, and the `steps_per_epoch` of
    the `fit` call that trains on it. Sets `state.epoch_steps` (and `global_step` when an old
    backup did not record it).

    Training always runs on one stream across epochs: a finite dataset (one pass = one epoch)
    is repeated. Each pass reshuffles with the next seed of the dataset's seed generator, so a
    fresh dataset that skips `global_step` batches continues exactly where the interrupted run
    stood. (Given a finite dataset, Keras would create iterators at epoch ends, each drawing a
    seed; how many is Keras's business, so a resume could not reproduce the order.)
    """
    data = make_data()
    cardinality = count_batches(data)
    if cardinality == tf.data.INFINITE_CARDINALITY:
        if not config.steps_per_epoch:
            raise ValueError("A repeated training dataset needs config.steps_per_epoch")
        epoch_batches = config.steps_per_epoch
    else:
        if cardinality == 0:
            raise ValueError("The training dataset is empty")
        epoch_batches = config.steps_per_epoch or cardinality
        data = data.repeat()
    # Keras rounds an epoch up to whole executions of `steps_per_execution` steps.
    state.epoch_steps = math.ceil(epoch_batches / steps_per_execution) * steps_per_execution
    if state.global_step is None:  # a backup of Keras's BackupAndRestore
        state.global_step = state.epoch * state.epoch_steps
    steps = epoch_batches - state.step_in_epoch
    return (data.skip(state.global_step) if state.global_step else data), steps


def _keep_best(model, validation_data, state, output, log):
    """Loads the best checkpoint into `model` (the optimizer keeps its state). Returns the kept
    weights' path relative to the work folder, their validation logs and epoch."""
    best_path = os.path.join(output, BEST_WEIGHTS)
    if validation_data is not None and state.best_epoch is not None and os.path.exists(best_path):
        try:
            resume.load_model_weights_only(model, best_path)
            return BEST_WEIGHTS, state.best_validation_logs, state.best_epoch
        except (OSError, ValueError) as error:  # a checkpoint cut short by a kill
            log(f"Cannot read {best_path} ({error}); keeping the last weights.")
    validation_logs = None
    if validation_data is not None:
        validation_logs = model.evaluate(validation_data, verbose=0, return_dict=True)
        validation_logs = {name: float(value) for name, value in validation_logs.items()}
    os.makedirs(os.path.dirname(os.path.join(output, FINAL_WEIGHTS)), exist_ok=True)
    resume.save_weights_atomically(model, os.path.join(output, FINAL_WEIGHTS))
    return FINAL_WEIGHTS, validation_logs, None


def _reload_finished(model, validation_data, workdir, finished, log):
    """A rerun of a finished work folder: its kept weights, evaluated; nothing trained."""
    log(
        f"{workdir} holds a finished training run: not training again; its kept weights "
        f"({finished.weights}) go on to evaluation, samples and export. To train afresh, "
        f"delete {workdir} or use another --workdir."
    )
    resume.load_weights(model, os.path.join(workdir, finished.weights))
    validation_logs = None
    if validation_data is not None:
        validation_logs = model.evaluate(validation_data, verbose=0, return_dict=True)
        validation_logs = {name: float(value) for name, value in validation_logs.items()}
    return FitOutcome(
        validation_logs=validation_logs,
        epochs_trained=finished.epochs,
        global_step=finished.global_step,
        optimizer_steps=int(model.optimizer.iterations.numpy()),
        train_seconds=0.0,
        best_epoch=finished.best_epoch,
        stopped_early=finished.stopped_early,
        already_trained=True,
    )


class _EndAfterEpoch(keras.callbacks.Callback):
    """Ends a `fit` call after its first epoch (the rest of an interrupted one), so the progress
    bar can still count epochs out of the run's total. Records whether another callback had
    stopped training already."""

    stopped_by_others = False

    def on_epoch_end(self, epoch, logs=None):
        self.stopped_by_others = self.model.stop_training
        self.model.stop_training = True
