"""Training that survives interruption: mid-epoch backups, resuming from them, finished runs.

A run backs itself up every `TrainConfig.checkpoint_every_steps` steps and at every epoch end,
under its work folder:

    backup/state.json                 where the run stands (`TrainingState` as JSON)
    backup/state.previous.json        the backup before it, kept as a fallback
    backup/step-<N>.weights.h5        the model's and the optimizer's variables after N steps
                                      (the optimizer's include its step count, so learning-rate
                                      schedules continue where they were)
    training.json                     written once training has finished (`FinishedRun`)

Each backup writes its weights to a new file, moves `state.json` to `state.previous.json`, then
writes `state.json` naming the new file (both through a temporary file and `os.replace`), then
deletes the weights neither names. A kill at any moment therefore leaves a state file that names
complete weights of the same step; and if the newest backup is damaged all the same (a disk
fault, a file cut short by hand), a rerun resumes from the previous one.

Rerunning the same command resumes from the backup (`kerasgen.training.fitting.fit_model`): the
epoch in progress continues at its next step with the data it would have seen next, and the run
ends after as many steps as an uninterrupted one. When training has finished, the backup is
deleted (as Keras's `BackupAndRestore` does) and `training.json` is written.

A rerun of a finished work folder does not train again: it says so in one line, loads the
weights the run kept (`FinishedRun.weights`, the lowest validation loss) and goes on to evaluate,
sample and export them. To train afresh, delete the folder or use another `--workdir`.
"""

import dataclasses
import glob
import os

import keras
import numpy as np

from kerasgen.errors import UserInputError
from kerasgen.work_folder import (
    DamagedFileError,
    WorkFolder,
    check_free_space,
    model_bytes,
    read_json,
    write_json_atomically,
)

BACKUP_FOLDER = WorkFolder.BACKUP
FINISHED_FILE = WorkFolder.FINISHED
_STATE_FILE = "state.json"
_PREVIOUS_STATE_FILE = "state.previous.json"
# What Keras's BackupAndRestore left in backup/ (work folders of older kerasgen versions).
_KERAS_WEIGHTS_FILE = "latest.weights.h5"
_KERAS_STATE_FILE = "training_metadata.json"
# Settings that decide which batch comes next: a resume needs the same ones.
DATA_SETTINGS = ("batch_size", "seq_len", "steps_per_epoch", "seed")


class ResumeMismatchError(UserInputError):
    """A backup was written by a run with other data settings than this one."""


@dataclasses.dataclass
class TrainingState:
    """Where a run stands: what `backup/state.json` holds.

    `epoch` counts from 0: epochs before it are finished, `step_in_epoch` of its batches are
    trained. `global_step` is the position in the training stream (`fit_model` trains on one
    stream across epochs).
    """

    epoch: int = 0  # the epoch in progress, from 0
    step_in_epoch: int = 0  # batches of `epoch` already trained
    global_step: int | None = 0  # batches trained over all epochs (None: unknown, old backup)
    optimizer_steps: int = 0  # optimizer.iterations (float16 loss scaling may skip steps)
    epoch_steps: int | None = None  # batches per epoch, when known
    best_epoch: int | None = None  # the epoch (from 0) of the lowest validation loss so far
    best_validation_logs: dict | None = None  # that epoch's validation metrics ({"loss": ...})
    data_settings: dict = dataclasses.field(default_factory=dict)  # DATA_SETTINGS of the run
    weights: str | None = None  # the weights file in backup/

    @property
    def best_validation_loss(self):
        return None if self.best_validation_logs is None else self.best_validation_logs["loss"]

    def describe(self, epochs):
        """'epoch 3 of 10, step 40 of 100 (global step 240)', epochs counted from 1."""
        of_steps = f" of {self.epoch_steps}" if self.epoch_steps else ""
        return (
            f"epoch {self.epoch + 1} of {epochs}, step {self.step_in_epoch}{of_steps} "
            f"(global step {self.global_step})"
        )


@dataclasses.dataclass
class FinishedRun:
    """What `training.json` records about a finished run."""

    epochs: int  # epochs trained (the last one may be partial after a time budget)
    global_step: int  # batches trained
    optimizer_steps: int
    weights: str  # the kept weights, relative to the work folder
    best_epoch: int | None = None  # the epoch (from 0) of the kept weights, if one was
    validation_logs: dict | None = None  # the kept weights' validation metrics
    stopped_early: bool = False


def settings_of(config):
    """The `DATA_SETTINGS` of a `TrainConfig`, as stored in a backup."""
    return {name: getattr(config, name) for name in DATA_SETTINGS}


def read_backup(backup_dir, log=None):
    """The `TrainingState` of the newest intact backup in `backup_dir`, or None if there is
    none.

    A damaged newest backup (its state file or weights unreadable) falls back to the previous
    one, with a line to `log`. A backup of Keras's `BackupAndRestore` (older kerasgen) is read
    as the start of its epoch.

    Raises:
        DamagedFileError: backups are there, but none is intact.
    """
    damaged = []
    for name in (_STATE_FILE, _PREVIOUS_STATE_FILE):
        path = os.path.join(backup_dir, name)
        if not os.path.exists(path):
            continue
        try:
            state = TrainingState(**read_json(path, what="backup state"))
            _check_weights_file(os.path.join(backup_dir, state.weights))
        except (DamagedFileError, TypeError) as error:
            damaged.append(f"{path} ({str(error).split(' (')[0]})")
            continue
        if damaged and log is not None:
            log(f"The newest backup is damaged ({damaged[0]}); resuming from the previous one.")
        return state
    if damaged:
        raise DamagedFileError(
            f"no intact backup in {backup_dir}: {'; '.join(damaged)}; delete {backup_dir} to "
            "start the run over"
        )
    keras_state = os.path.join(backup_dir, _KERAS_STATE_FILE)
    if os.path.exists(keras_state) and os.path.exists(
        os.path.join(backup_dir, _KERAS_WEIGHTS_FILE)
    ):
        epoch = read_json(keras_state, what="backup state")["epoch"]
        return TrainingState(epoch=epoch, global_step=None, weights=_KERAS_WEIGHTS_FILE)
    return None


def _check_weights_file(path):
    """Raises `DamagedFileError` unless `path` is a readable HDF5 file."""
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except (OSError, ValueError) as error:
        raise DamagedFileError(f"{path}: unreadable weights ({error})") from None


def check_settings(state, config, backup_dir):
    """Refuses to resume a backup whose data settings differ from `config`'s."""
    for name, value in settings_of(config).items():
        if name in state.data_settings and state.data_settings[name] != value:
            raise ResumeMismatchError(
                f"{backup_dir} holds a run interrupted with {name}={state.data_settings[name]!r}, "
                f"not {value!r}: rerun with the same flags to resume, or delete {backup_dir} "
                "to start over"
            )


def load_weights(model, path):
    """Loads a `.weights.h5` or `.keras` file into `model`, optimizer variables included."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # else Keras skips the optimizer's variables
    model.load_weights(path)


def load_model_weights_only(model, path):
    """Loads the model's weights from `path` but keeps the optimizer as it is (its step count
    stays the number of steps trained)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.built:
        load_weights(model, path)
        return
    kept = [variable.numpy() for variable in optimizer.variables]
    model.load_weights(path)
    for variable, value in zip(optimizer.variables, kept, strict=True):
        variable.assign(value)


def save_weights_atomically(model, path):
    """`model.save_weights(path)` through a temporary file: `path` is never half written."""
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    # Twice the weights: the new file is written before the one it replaces goes.
    check_free_space(directory or ".", 2 * model_bytes(model), f"the weights file {name}")
    temporary = os.path.join(directory, f".tmp-{os.getpid()}-{name}")
    model.save_weights(temporary)
    _sync(temporary)
    os.replace(temporary, path)


def read_finished(workdir):
    """The `FinishedRun` of `workdir`, or None if its training has not finished.

    A work folder of an older kerasgen that finished (a `model.keras` and no backup) counts as
    finished, with the weights of its `model.keras`.
    """
    path = os.path.join(workdir, FINISHED_FILE)
    if os.path.exists(path):
        try:
            return FinishedRun(**read_json(path, what="finished-run record"))
        except TypeError as error:
            raise DamagedFileError(f"{path}: not a finished-run record ({error})") from None
    backup = os.path.join(workdir, BACKUP_FOLDER)
    if os.path.exists(os.path.join(workdir, WorkFolder.MODEL)) and not os.path.exists(backup):
        return FinishedRun(epochs=0, global_step=0, optimizer_steps=0, weights=WorkFolder.MODEL)
    return None


def write_finished(workdir, finished):
    write_json_atomically(os.path.join(workdir, FINISHED_FILE), dataclasses.asdict(finished))


class Backup(keras.callbacks.Callback):
    """Backs the run up every `every_steps` steps and at every epoch end (see the module
    docstring), and keeps `state` current.

    Put it after every other callback: at an epoch end the backup then covers what they wrote
    (the best checkpoint) and the epoch's validation loss.

    Args:
        backup_dir: where the backups go.
        state: the run's `TrainingState`, updated in place as training goes (`fit_model` and
            `ResumableEarlyStopping` read it).
        every_steps: steps between mid-epoch backups; 0 or None: epoch ends only.
    """

    def __init__(self, backup_dir, state, every_steps):
        super().__init__()
        self.diverged_at = None  # the global step whose loss was not finite, if any
        self.diverged_loss = None
        self.backup_dir = backup_dir
        self.state = state
        self.every_steps = every_steps or 0
        self._next_offset = 0  # batches of the next epoch trained before the next `fit` call
        self._offset = 0  # the same for the current epoch
        self._epoch_start = 0  # global step at the start of the current epoch
        self._saved_at = 0  # global step of the last backup
        self._stopped_in_epoch = False

    def continue_epoch(self, steps_done):
        """The next `fit` call continues an epoch of which `steps_done` batches are trained."""
        self._next_offset = steps_done

    def on_train_begin(self, logs=None):
        self._saved_at = self.state.global_step  # just restored, or just backed up

    def on_epoch_begin(self, epoch, logs=None):
        self._offset, self._next_offset = self._next_offset, 0
        self._stopped_in_epoch = False
        self.state.epoch = epoch
        self.state.step_in_epoch = self._offset
        self._epoch_start = self.state.global_step - self._offset

    def on_train_batch_end(self, batch, logs=None):
        # Keras calls this once per execution; `batch` is its last step in this call's epoch.
        self._advance(self._offset + batch + 1)
        # A callback that stops training (time budget, NaN) has run: the epoch ends here.
        self._stopped_in_epoch = self.model.stop_training
        if logs and not np.isfinite(logs.get("loss", 0.0)):
            # TerminateOnNaN stops the run: never back up diverged weights.
            if self.diverged_at is None:
                self.diverged_at, self.diverged_loss = self.state.global_step, logs["loss"]
            return
        if self.state.epoch_steps and self.state.step_in_epoch >= self.state.epoch_steps:
            return  # the epoch's last step: the end-of-epoch backup follows
        if self.every_steps and self.state.global_step - self._saved_at >= self.every_steps:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        # Keras validates and ends the epoch also when a callback stopped it mid-way: then the
        # epoch stays unfinished (its validation loss is still that of the current weights).
        if self.diverged_at is not None:
            return
        logs = logs or {}
        if self.state.epoch_steps and not self._stopped_in_epoch:
            self._advance(self.state.epoch_steps)  # the last execution may have run short
        loss = logs.get("val_loss")
        best = self.state.best_validation_loss
        if loss is not None and np.isfinite(loss) and (best is None or loss < best):
            self.state.best_epoch = epoch
            self.state.best_validation_logs = {
                name[len("val_") :]: float(value)
                for name, value in logs.items()
                if name.startswith("val_")
            }
        if not self._stopped_in_epoch:
            self.state.epoch = epoch + 1
            self.state.step_in_epoch = 0
        self.save()

    def _advance(self, step_in_epoch):
        if self.state.epoch_steps:
            step_in_epoch = min(step_in_epoch, self.state.epoch_steps)
        self.state.step_in_epoch = step_in_epoch
        self.state.global_step = self._epoch_start + step_in_epoch
        self.state.optimizer_steps = int(self.model.optimizer.iterations.numpy())

    def save(self):
        """Writes the weights, then the state naming them, then drops the older weights."""
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"step-{self.state.global_step}.weights.h5"
        save_weights_atomically(self.model, os.path.join(self.backup_dir, name))
        state_path = os.path.join(self.backup_dir, _STATE_FILE)
        previous_path = os.path.join(self.backup_dir, _PREVIOUS_STATE_FILE)
        keep = {name}
        try:
            previous = read_json(state_path, what="backup state")
        except (OSError, DamagedFileError):  # none yet, or the damaged one a resume skipped
            previous = None
        if previous is not None and previous.get("weights") != name:
            os.replace(state_path, previous_path)
            keep.add(previous.get("weights"))
        self.state.weights = name
        write_json_atomically(state_path, dataclasses.asdict(self.state))
        remove_stale_files(self.backup_dir, keep=keep)
        self._saved_at = self.state.global_step


def referenced_weights(backup_dir):
    """The weights files that the backup's state files name."""
    names = set()
    for name in (_STATE_FILE, _PREVIOUS_STATE_FILE):
        path = os.path.join(backup_dir, name)
        try:
            names.add(read_json(path, what="backup state")["weights"])
        except (OSError, KeyError, TypeError, DamagedFileError):
            continue
    return names


def remove_stale_files(backup_dir, keep):
    """Deletes weights other than those in `keep` (a name or a set of names) and temporary
    files a killed run left behind."""
    keep = {keep} if isinstance(keep, str) else set(keep)
    for path in glob.glob(os.path.join(backup_dir, "*.weights.h5")) + glob.glob(
        os.path.join(backup_dir, ".tmp-*")
    ):
        if os.path.basename(path) not in keep:
            os.remove(path)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's `EarlyStopping` on the validation loss that carries on counting across `fit`
    calls and restarts: it takes its best loss and patience count from the run's
    `TrainingState` instead of starting over. The best weights are restored by `fit_model` from
    the best checkpoint file, which also survives a restart (so `restore_best_weights` is off).
    """

    def __init__(self, state, patience):
        super().__init__(monitor="val_loss", mode="min", patience=patience)
        self.state = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.state.best_epoch is not None:
            self.best = self.state.best_validation_loss
            self.best_epoch = self.state.best_epoch
            # Keras counts epochs since the best one; `state.epoch` is the next to train.
            self.wait = self.state.epoch - 1 - self.state.best_epoch


def _sync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())
