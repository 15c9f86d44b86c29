"""`WorkFolder`: the one place that knows the files of a training run's work folder, and where
an export keeps its metadata.

A work folder holds everything needed to continue a run or trace it:

    config.json              the resolved TrainConfig (model hyperparameters included)
    tokenizer/               a language model's tokenizer (vocabulary and tokenizer.json)
    source_tokenizer/        an encoder-decoder's source and target tokenizers
    target_tokenizer/
    checkpoints/             epoch-NNN.weights.h5 after each epoch; best.weights.h5 (lowest
                             validation loss); final.weights.h5 (a run without validation)
    backup/                  mid-epoch backups while training runs (kerasgen.training.resume)
    logs/                    TensorBoard: loss, perplexity, learning rate, samples per epoch
    training.json            written when training has finished (a rerun does not retrain)
    model.keras              the trained model, with the kept (best) weights
    .lock                    held by the process training in the folder

Every file is written through a temporary file and `os.replace`, so a kill never leaves one
half written; a file that is damaged all the same is reported in one line naming it.

This module imports no TensorFlow and nothing of kerasgen but its errors, so the exporter and
the loaders can use it too.
"""

import errno
import fcntl
import json
import math
import os
import shutil
import tempfile

from kerasgen.errors import UserInputError

# In an export (a SavedModel version folder): how it was made (`kerasgen.serving.exporter`).
EXPORT_METADATA = os.path.join("assets", "kerasgen_export.json")


def export_metadata_path(export_path):
    """The metadata file of the SavedModel version folder `export_path`."""
    return os.path.join(export_path, EXPORT_METADATA)


class DamagedFileError(UserInputError):
    """A run file cannot be read: cut short, or not what kerasgen wrote."""


class WorkFolderInUseError(UserInputError):
    """Another process is training in the work folder."""


class DiskFullError(UserInputError):
    """A file would not fit on its disk."""


# Room kept free besides a file's own size: file-system metadata, logs written meanwhile.
_FREE_SPACE_MARGIN_BYTES = 1 << 20


def model_bytes(model):
    """About how many bytes the model's weights (and its optimizer's) take in a file."""
    variables = list(model.weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        variables += list(optimizer.variables)
    import tensorflow as tf

    # From shapes and dtypes: reading the values would copy every weight on each backup.
    return sum(math.prod(v.shape) * tf.as_dtype(v.dtype).size for v in variables)


def check_free_space(directory, needed_bytes, what):
    """Raises `DiskFullError` (one line) unless `directory`'s disk has room for `needed_bytes`
    plus a margin: checked before writing, because a disk that fills up midway makes h5py and
    TensorFlow fail with pages of errors (and at times a crash) instead of a message."""
    probe = directory
    while not os.path.exists(probe):
        probe = os.path.dirname(os.path.abspath(probe))
    free = shutil.disk_usage(probe).free
    if free < needed_bytes + _FREE_SPACE_MARGIN_BYTES:
        raise DiskFullError(
            f"no space left on the disk of {directory} for {what} (needs about "
            f"{(needed_bytes + _FREE_SPACE_MARGIN_BYTES) / 2**20:.1f} MB, {free / 2**20:.1f} MB "
            "free); free some space and rerun the same command: it resumes from the last backup"
        )


def write_text_atomically(path, text):
    """Writes `text` to `path` through a temporary file in the same folder and `os.replace`."""
    directory = os.path.dirname(path) or "."
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".tmp-{os.path.basename(path)}-", dir=directory
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json_atomically(path, value):
    write_text_atomically(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path, *, what="run file"):
    """The JSON value in `path`; a damaged file is a `DamagedFileError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedFileError(
            f"{path}: the {what} is damaged ({error.__class__.__name__}: {error}); restore it, "
            "or delete the work folder to start over"
        ) from None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class WorkFolder:
    """The files of one training run's work folder (see the module docstring).

    Args:
        path: the folder (created by `prepare`, not here).
    """

    CONFIG = "config.json"
    MODEL = "model.keras"
    FINISHED = "training.json"
    BACKUP = "backup"
    CHECKPOINTS = "checkpoints"
    LOGS = "logs"
    LOCK = ".lock"
    BEST_WEIGHTS = os.path.join(CHECKPOINTS, "best.weights.h5")
    FINAL_WEIGHTS = os.path.join(CHECKPOINTS, "final.weights.h5")  # when there is no validation
    EPOCH_WEIGHTS = os.path.join(CHECKPOINTS, "epoch-{epoch:03d}.weights.h5")  # Keras's format
    # The tokenizer folders of each kind of model: a language model's, an encoder-decoder's.
    LANGUAGE_MODEL_TOKENIZERS = ("tokenizer",)
    TRANSLATION_TOKENIZERS = ("source_tokenizer", "target_tokenizer")

    def __init__(self, path):
        self.path = path
        self._lock_file = None

    def __repr__(self):
        return f"WorkFolder({self.path!r})"

    def file(self, relative):
        """The path of `relative` (one of the names above) inside the folder."""
        return os.path.join(self.path, relative)

    @property
    def config_path(self):
        return self.file(self.CONFIG)

    @property
    def model_path(self):
        return self.file(self.MODEL)

    @property
    def finished_path(self):
        return self.file(self.FINISHED)

    @property
    def backup_dir(self):
        return self.file(self.BACKUP)

    @property
    def logs_dir(self):
        return self.file(self.LOGS)

    def tokenizer_dir(self, name):
        """A tokenizer's folder; `name` is "tokenizer", "source_tokenizer" or
        "target_tokenizer" (`kerasgen.tasks` say which a family has)."""
        return self.file(name)

    # Preparing and locking.

    def prepare(self):
        """Creates the folder if needed; a path that is a file or cannot be written is one
        line, before any training."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserInputError(f"--workdir={self.path} is a file, not a folder")
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as error:
            raise UserInputError(
                f"--workdir={self.path}: cannot create it ({error.strerror})"
            ) from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise UserInputError(f"--workdir={self.path} is not writable")

    def lock(self):
        """Claims the folder for this process until `unlock` (or the process ends).

        Raises:
            WorkFolderInUseError: another process holds it (its id is named).
        """
        path = self.file(self.LOCK)
        lock_file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until unlock
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            lock_file.close()
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise WorkFolderInUseError(
                    f"--workdir={self.path} is in use by another run (process {holder}); wait "
                    "for it to end or use another --workdir"
                ) from None
            raise
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(str(os.getpid()))
        lock_file.flush()
        self._lock_file = lock_file

    def unlock(self):
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # The configuration.

    def has_config(self):
        return os.path.exists(self.config_path)

    def read_config(self):
        """The recorded `TrainConfig`, or None before a run has claimed the folder."""
        from kerasgen.training.train_config import TrainConfig

        if not self.has_config():
            return None
        values = read_json(self.config_path, what="run configuration")
        try:
            return TrainConfig.from_json(json.dumps(values))
        except (TypeError, UserInputError) as error:
            raise DamagedFileError(
                f"{self.config_path}: not a kerasgen run configuration ({error})"
            ) from None

    def write_config(self, config):
        write_text_atomically(self.config_path, config.to_json())

    # Tokenizers.

    def has_tokenizer(self, name):
        from kerasgen.tokenizers import CONFIG_FILE_NAME

        return os.path.exists(os.path.join(self.tokenizer_dir(name), CONFIG_FILE_NAME))

    def load_tokenizer(self, name):
        """The tokenizer saved under `name`; a damaged one is one line naming it."""
        from kerasgen import tokenizers

        directory = self.tokenizer_dir(name)
        read_json(os.path.join(directory, tokenizers.CONFIG_FILE_NAME), what="tokenizer file")
        try:
            return tokenizers.load_tokenizer(directory)
        except (OSError, ValueError, KeyError, TypeError) as error:
            if isinstance(error, UserInputError):
                raise
            raise DamagedFileError(
                f"{directory}: the tokenizer is damaged ({error}); delete the work folder to "
                "start over"
            ) from None

    def install(self, staged_path, name):
        """Moves a folder written elsewhere (`staged_path`) into place as `name`, replacing
        what a run that failed its checks may have left there."""
        target = self.file(name)
        if os.path.exists(target):
            shutil.rmtree(target)
        shutil.move(staged_path, target)

    # The trained model.

    def load_model(self):
        """`model.keras`; a damaged file is one line naming it."""
        import keras

        from kerasgen import losses, models  # noqa: F401  register the loss and model classes

        try:
            return keras.models.load_model(self.model_path)
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise DamagedFileError(
                f"{self.model_path}: cannot load the model ({' '.join(str(error).split())[:200]})"
            ) from None

    def require_finished(self):
        """Raises a one-line error unless the folder holds a finished run."""
        for path in (self.config_path, self.model_path):
            if not os.path.exists(path):
                raise UserInputError(
                    f"{self.path}: no {os.path.basename(path)}, not a finished training run"
                )
