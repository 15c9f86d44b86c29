"""Writes TensorFlow Serving-ready SavedModels: `<export_base>/<model_name>/<version>/`.

The export goes through `keras.export.ExportArchive`, not a plain `tf.Module` around the Keras
model: the archive lists the model's variables at its root, which the TF1 session loader used
by TensorFlow Serving needs (a Keras 3 model inside a plain `tf.Module` reloads with
`tf.saved_model.load` but fails there with "Could not find variable"). Each version is written
to a staging folder beside its final place (`.tmp-<host>-<pid>-<random>`) and renamed in one
step, so TensorFlow Serving (which polls the model folder) never sees half a model; an
interrupted export removes its staging folder, and the next export removes those of killed
ones. Folders and files get the permissions the umask gives, so a server running as another
user can read them.
"""

import errno
import json
import os
import re
import shutil
import socket
import stat
import uuid

import keras
import numpy as np

from kerasgen.errors import UserInputError
from kerasgen.serving.batching import write_batching_parameters
from kerasgen.serving.warmup import write_warmup_requests
from kerasgen.work_folder import export_metadata_path

STAGING_PREFIX = ".tmp-"  # a version being written, beside the version folders


class ExportError(UserInputError):
    """An export cannot be written where asked."""


def existing_versions(model_dir):
    """Integer version folders of a TensorFlow Serving model folder, ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir) if re.fullmatch(r"\d+", name))


def latest_export(model_dir):
    """Path of the highest version under `model_dir`, or None."""
    versions = existing_versions(model_dir)
    return os.path.join(model_dir, str(versions[-1])) if versions else None


def write_models_config(export_base):
    """Writes `<export_base>/models.config` naming every model folder found there.

    The paths assume `export_base` is mounted at `/models`, as in the README's docker command.
    """
    names = sorted(
        name
        for name in os.listdir(export_base)
        if os.path.isdir(os.path.join(export_base, name))
        and existing_versions(os.path.join(export_base, name))
    )
    entries = "".join(
        "  config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "/models/{name}"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        for name in names
    )
    path = os.path.join(export_base, "models.config")
    # Written beside and renamed over, so concurrent exports never leave a half-written file.
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write("# TensorFlow Serving --model_config_file, with this folder mounted at /models.\n")
        f.write("model_config_list {\n" + entries + "}\n")
    os.replace(partial, path)
    return path


def check_version(version):
    """`version` as an int, refused unless it is a positive integer (TensorFlow Serving loads
    only version folders named by one).

    Raises:
        ExportError: naming the bad value.
    """
    if isinstance(version, bool) or not isinstance(version, int | np.integer) or version < 1:
        raise ExportError(f"the export version must be a positive integer, got {version!r}")
    return int(version)


def _staging_name():
    """`.tmp-<host>-<pid>-<random>`: names the writer, so that a later export can tell that a
    killed one left it behind."""
    return f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _is_stale(name):
    """Whether the staging folder `name` belongs to a process of this host that is gone.
    Folders of other hosts (a shared file system) or of another naming are never stale."""
    found = re.fullmatch(re.escape(STAGING_PREFIX) + r"(.+)-(\d+)-[0-9a-f]{8}", name)
    if not found or found.group(1) != socket.gethostname():
        return False
    try:
        os.kill(int(found.group(2)), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user's process
        return False
    return False


def remove_stale_staging(model_dir):
    """Deletes the staging folders of exports that were killed before their rename.

    Returns:
        The names of the folders removed.
    """
    stale = [name for name in sorted(os.listdir(model_dir)) if _is_stale(name)]
    for name in stale:
        shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)
    return stale


def _give_ordinary_permissions(root):
    """Sets what the umask gives a new folder or file on everything under `root`.

    `root` was made by `os.mkdir`, whose mode is 0777 minus the umask; TensorFlow creates its
    subfolders 0755 whatever the umask. An export must be readable by the TensorFlow Serving
    user when the umask allows it, like anything else its owner writes.
    """
    folder_mode = stat.S_IMODE(os.stat(root).st_mode)
    file_mode = folder_mode & 0o666
    for folder, _, files in os.walk(root):
        os.chmod(folder, folder_mode)
        for name in files:
            os.chmod(os.path.join(folder, name), file_mode)


def _publish(staging, model_dir, version, record):
    """Renames `staging` into its version folder, with `record` (completed by the version) as
    `assets/kerasgen_export.json` (written by Python, so with the umask's permissions).

    With `version` None, the version is one above the highest present when the rename is
    tried, and a rename that loses the race to a concurrent export (the folder has appeared,
    ENOTEMPTY) is tried again with the next version, so concurrent exports get distinct
    versions.

    Returns:
        The path of the version folder.
    """
    while True:
        chosen = version if version is not None else (existing_versions(model_dir) or [0])[-1] + 1
        final_path = os.path.join(model_dir, str(chosen))
        with open(export_metadata_path(staging), "w", encoding="utf-8") as f:
            json.dump({**record, "version": chosen}, f, indent=2, default=str)
        try:
            os.rename(staging, final_path)
            return final_path
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if version is not None:
                raise ExportError(
                    f"{final_path} exists already; choose another --version"
                ) from None


def export_service(service, export_base, model_name, *, version=None, metadata=None):
    """Exports a service's signatures as a new version of `model_name`.

    Args:
        service: a `GenerationService` (`LanguageModelService`, `TranslationService`): its
            `prepare_for_export()`, `tracked_resources()`, `signatures()`, `warmup_inputs()`
            and `export_record()`.
        export_base: the folder TensorFlow Serving reads (one subfolder per model).
        model_name: the model's folder and serving name.
        version: positive integer version; default one above the highest present when the
            export is complete (concurrent exports get distinct versions).
        metadata: JSON-serialisable dict stored in `assets/kerasgen_export.json` (training
            configuration, corpus, …), beside the service's `export_record()`.

    Returns:
        The path of the new version folder.

    Raises:
        ExportError: when the version is not a positive integer or exists already.
    """
    if version is not None:
        version = check_version(version)
    model_dir = os.path.join(export_base, model_name)
    os.makedirs(model_dir, exist_ok=True)
    if version is not None and os.path.exists(os.path.join(model_dir, str(version))):
        raise ExportError(
            f"{os.path.join(model_dir, str(version))} exists already; choose another --version"
        )
    remove_stale_staging(model_dir)

    service.prepare_for_export()
    archive = keras.export.ExportArchive()
    for resource in service.tracked_resources():  # the model and every tokenizer
        archive.track(resource)
    for name, function in service.signatures().items():
        archive.add_endpoint(name, function)

    staging = os.path.join(model_dir, _staging_name())
    os.mkdir(staging)  # not tempfile.mkdtemp: its 0700 would hide the export from other users
    try:
        archive.write_out(staging, verbose=False)
        write_warmup_requests(staging, model_name, service.warmup_inputs())
        _give_ordinary_permissions(staging)
        record = {"model_name": model_name, **service.export_record(), **(metadata or {})}
        final_path = _publish(staging, model_dir, version, record)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_models_config(export_base)
    write_batching_parameters(export_base)
    return final_path
