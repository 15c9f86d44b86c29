"""Writes TensorFlow Serving-ready SavedModels: `<export_base>/<model_name>/<version>/`.

The export goes through `keras.export.ExportArchive`, not a plain `tf.Module` around the Keras
model: the archive lists the model's variables at its root, which the TF1 session loader used
by TensorFlow Serving needs (a Keras 3 model inside a plain `tf.Module` reloads with
`tf.saved_model.load` but fails there with "Could not find variable"). Each version is written
to a temporary folder beside its final place and renamed in one step, so TensorFlow Serving (which
polls the model folder) never sees half a model and an interrupted export leaves nothing behind.
"""

import json
import os
import re
import shutil
import tempfile

import keras

from kerasgen.errors import UserInputError
from kerasgen.serving.warmup import write_warmup_requests

METADATA_FILE = "kerasgen_export.json"  # in assets/: how the export was made


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
    with open(path, "w", encoding="utf-8") as f:
        f.write("# TensorFlow Serving --model_config_file, with this folder mounted at /models.\n")
        f.write("model_config_list {\n" + entries + "}\n")
    return path


def export_service(service, export_base, model_name, *, version=None, metadata=None):
    """Exports a service's signatures as a new version of `model_name`.

    Args:
        service: a `LanguageModelService` or `TranslationService`: its `signatures()`,
            `tracked_resources()` (the model and its tokenizers), `warmup_inputs()`, `model`,
            `config` and `jit_compile`.
        export_base: the folder TensorFlow Serving reads (one subfolder per model).
        model_name: the model's folder and serving name.
        version: integer version; default one above the highest present.
        metadata: JSON-serialisable dict stored in `assets/kerasgen_export.json` (training
            configuration, corpus, …), beside the decoding configuration and the XLA flag.

    Returns:
        The path of the new version folder.

    Raises:
        ExportError: when the version exists already.
    """
    model_dir = os.path.join(export_base, model_name)
    os.makedirs(model_dir, exist_ok=True)
    if version is None:
        version = (existing_versions(model_dir) or [0])[-1] + 1
    final_path = os.path.join(model_dir, str(int(version)))
    if os.path.exists(final_path):
        raise ExportError(f"{final_path} exists already; choose another --version")

    # A model traced on a GPU would bake CudnnRNN ops into the graph, which a CPU server lacks.
    if hasattr(service.model, "disable_cudnn"):
        service.model.disable_cudnn()

    archive = keras.export.ExportArchive()
    for resource in service.tracked_resources():  # the model and every tokenizer
        archive.track(resource)
    signatures = service.signatures()
    for name, function in signatures.items():
        archive.add_endpoint(name, function)

    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir)
    try:
        archive.write_out(staging, verbose=False)
        write_warmup_requests(staging, model_name, service.warmup_inputs())
        record = {
            "model_name": model_name,
            "version": int(version),
            "xla": bool(service.jit_compile),
            "decoding": vars(service.config),
            "model_config": service.model.get_config(),
            "tokenizer": service.tokenizer.get_config(),
            "signatures": sorted(signatures),
            **(metadata or {}),
        }
        with open(os.path.join(staging, "assets", METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, default=str)
        os.rename(staging, final_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_models_config(export_base)
    return final_path
