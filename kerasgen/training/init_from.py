"""Starting a run from pretrained weights: `--init_from=<work folder, checkpoint or export>`.

Four kinds of source are accepted, each with the tokenizer it was trained with:

- a training work folder (its `model.keras` and `tokenizer/`);
- a `model.keras` file inside a work folder;
- a `.weights.h5` checkpoint inside a work folder's `checkpoints/` (the preset named in the
  folder's `config.json` rebuilds the model it fits);
- a kerasgen SavedModel export (`assets/kerasgen_export.json` holds the model and tokenizer
  configurations, `assets/` the vocabulary, the SavedModel's variables the weights).

A pretrained model only makes sense with its own vocabulary, so the run adopts the source's
tokenizer (it is copied into the run's work folder) instead of learning one. Every mismatch is a
`InitFromError` with a one-line message: a missing or unrecognised path, a source of another
model family or size, another tokenizer level, or a work folder that already holds another
vocabulary.
"""

import dataclasses
import hashlib
import json
import os
import shutil

import keras
import numpy as np

from kerasgen import tokenizers
from kerasgen.errors import UserInputError
from kerasgen.work_folder import EXPORT_METADATA, WorkFolder, read_json, write_json_atomically

# Config entries that may differ between pretraining and fine-tuning.
_FREE_CONFIG_KEYS = ("name", "trainable", "dtype", "dropout")


class InitFromError(UserInputError):
    """`--init_from` names something the run cannot start from."""


@dataclasses.dataclass
class Pretrained:
    """Weights and tokenizers of a pretrained model.

    Attributes:
        path: the source, as given.
        kind: "work folder", "Keras model", "checkpoint" or "export".
        model_config: the pretrained model's `get_config()`.
        weights: its weights, as numpy arrays in `model.weights` order, or for an export its
            `ExportedVariables` (matched to the new model in `initialize_from`).
        tokenizers: `{name: (tokenizer config, vocabulary file path)}`, with the names of the
            work folder ("tokenizer", or "source_tokenizer" and "target_tokenizer").
    """

    path: str
    kind: str
    model_config: dict
    weights: list
    tokenizers: dict


def load_pretrained(path, build_preset=None):
    """Reads a pretrained source (see the module docstring).

    Args:
        path: the `--init_from` value.
        build_preset: `(preset_name, {tokenizer name: vocab_size}) -> built keras.Model`,
            needed for checkpoints (a `.weights.h5` file holds weights only).

    Raises:
        InitFromError: missing or unrecognised path, or unreadable weights.
    """
    if not os.path.exists(path):
        raise InitFromError(f"--init_from={path}: no such file or folder")
    if os.path.isdir(path) and os.path.exists(os.path.join(path, EXPORT_METADATA)):
        return _from_export(path)
    model_path = WorkFolder(path).model_path
    if os.path.isdir(path) and os.path.exists(model_path):
        return _from_keras_file(path, model_path, path, "work folder")
    if path.endswith(".keras"):
        folder = os.path.dirname(os.path.abspath(path))
        return _from_keras_file(path, path, folder, "Keras model")
    if path.endswith(".weights.h5"):
        return _from_checkpoint(path, build_preset)
    raise InitFromError(
        f"--init_from={path}: not a kerasgen work folder, model.keras, .weights.h5 checkpoint "
        "or SavedModel export"
    )


_TOKENIZER_NAMES = (WorkFolder.LANGUAGE_MODEL_TOKENIZERS, WorkFolder.TRANSLATION_TOKENIZERS)


def _tokenizer_files(path, folder):
    """`{name: (config, vocabulary path)}` of the tokenizers in work folder `folder`."""
    for names in _TOKENIZER_NAMES:
        configs = [os.path.join(folder, name, tokenizers.CONFIG_FILE_NAME) for name in names]
        if all(os.path.exists(config_path) for config_path in configs):
            found = {}
            for name, config_path in zip(names, configs, strict=True):
                config = read_json(config_path, what="tokenizer configuration")
                found[name] = (config, os.path.join(folder, name, config["vocabulary_file"]))
            return found
    raise InitFromError(
        f"--init_from={path}: no tokenizer beside it (expected "
        f"{os.path.join(folder, 'tokenizer', tokenizers.CONFIG_FILE_NAME)})"
    )


def _from_keras_file(path, model_path, folder, kind):
    tokenizer_files = _tokenizer_files(path, folder)
    try:
        model = keras.models.load_model(model_path)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's input
        reason = " ".join(str(error).split())[:200]
        raise InitFromError(f"--init_from={path}: cannot load {model_path} ({reason})") from None
    return Pretrained(path, kind, model.get_config(), model.get_weights(), tokenizer_files)


def _from_checkpoint(path, build_preset):
    # <workdir>/checkpoints/epoch-NNN.weights.h5: the run's folder is two levels up.
    folder = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    config_path = WorkFolder(folder).config_path
    if not os.path.exists(config_path):
        raise InitFromError(
            f"--init_from={path}: a checkpoint must sit in a work folder's checkpoints/ "
            f"(no {config_path})"
        )
    tokenizer_files = _tokenizer_files(path, folder)
    preset = read_json(config_path, what="run configuration")["model"]
    vocab_sizes = {
        name: tokenizers.load_tokenizer(os.path.join(folder, name)).vocab_size
        for name in tokenizer_files
    }
    model = build_preset(preset, vocab_sizes)
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001
        reason = " ".join(str(error).split())[:200]
        raise InitFromError(f"--init_from={path}: cannot load the checkpoint ({reason})") from error
    return Pretrained(path, "checkpoint", model.get_config(), model.get_weights(), tokenizer_files)


def _from_export(path):
    import tensorflow as tf

    with open(os.path.join(path, EXPORT_METADATA), encoding="utf-8") as f:
        metadata = json.load(f)
    loaded = tf.saved_model.load(path)
    names = _TOKENIZER_NAMES[1] if "source_tokenizer" in metadata else _TOKENIZER_NAMES[0]
    digests = metadata.get("vocabulary_sha256", {})
    tokenizer_files = {
        name: (metadata[name], _asset_file(path, metadata[name], digests.get(name)))
        for name in names
    }
    return Pretrained(
        path,
        "export",
        metadata["model_config"],
        # The archive's variable list, in its order: resolved against the new model's variables
        # in `initialize_from` (by path, else by position).
        ExportedVariables(
            [v.name.rsplit(":", 1)[0] for v in loaded.variables],
            [np.asarray(v.numpy()) for v in loaded.variables],
        ),
        tokenizer_files,
    )


@dataclasses.dataclass
class ExportedVariables:
    """The variables of a SavedModel export, as `tf.saved_model.load(...).variables` lists them.

    The exporter's `keras.export.ExportArchive` tracks the model first, so the list starts with
    the model's `variables` in their order (then those of the tokenizers, if any). Their names
    are the Keras paths (`gpt/block_0/.../kernel`) for models whose layers are built inside
    their name scopes, but for recurrent models they are flattened and repeated
    (`text_generator/kernel` for the recurrent kernel and the projection alike).

    Attributes:
        names: the variables' names, without ":0".
        arrays: their values, numpy arrays.
    """

    names: list
    arrays: list

    def values_for(self, model, source):
        """The values of `model.weights`, matched by path where the names are unique paths of
        the model, else by position (the tracked order, each name and shape checked).

        Raises:
            InitFromError: neither way matches every weight.
        """
        paths = [_within_model(name) for name in self.names]
        unique = {p: a for p, a in zip(paths, self.arrays, strict=True) if paths.count(p) == 1}
        if all(_within_model(w.path) in unique for w in model.weights):
            return [unique[_within_model(w.path)] for w in model.weights]
        ours = model.variables  # the order the archive tracked them in
        theirs = list(zip(self.names, self.arrays, strict=True))[: len(ours)]
        if len(theirs) == len(ours) and all(
            name.rsplit("/", 1)[-1] == variable.name and array.shape == tuple(variable.shape)
            for (name, array), variable in zip(theirs, ours, strict=True)
        ):
            by_variable = {id(v): array for v, (_, array) in zip(ours, theirs, strict=True)}
            return [by_variable[id(w)] for w in model.weights]
        described = ", ".join(
            f"{n} {list(a.shape)}" for n, a in zip(self.names, self.arrays, strict=True)
        )
        raise InitFromError(
            f"--init_from={source}: the export's variables do not match the model's, neither by "
            f"path nor in order ({len(self.names)} variables: {described[:200]})"
        )


def install_tokenizer(pretrained, directory, level, *, name="tokenizer"):
    """The run's tokenizer `name`: the pretrained one, copied into `directory`.

    Args:
        pretrained: a `Pretrained`.
        directory: the folder to copy it to (the run's, or a staging folder).
        level: the run's token level for it, which must be the pretrained one's.
        name: "tokenizer", "source_tokenizer" or "target_tokenizer".

    Raises:
        InitFromError: another level, or `directory` holds another vocabulary already (a work
            folder of another run).
    """
    if name not in pretrained.tokenizers:
        raise InitFromError(
            f"--init_from={pretrained.path}: a source of another model family (it has no "
            f"{name.replace('_', ' ')})"
        )
    tokenizer_config, vocabulary_file = pretrained.tokenizers[name]
    theirs = tokenizer_config["level"]
    if theirs != level:
        flag = "--tokenizer" if name == "tokenizer" else f"--{name}"
        raise InitFromError(
            f"--init_from={pretrained.path}: its {name.replace('_', ' ')} is {theirs}-level, "
            f"not {level}; fine-tuning needs the pretrained tokenizer (use {flag}={theirs})"
        )
    with open(vocabulary_file, "rb") as f:
        vocabulary = f.read()
    config_path = os.path.join(directory, tokenizers.CONFIG_FILE_NAME)
    if os.path.exists(config_path):
        existing = tokenizers.load_tokenizer(directory)
        with open(existing.vocabulary_file, "rb") as f:
            if f.read() != vocabulary:
                raise InitFromError(
                    f"--init_from={pretrained.path}: its vocabulary differs from the one already "
                    f"in {directory}; use a fresh --workdir"
                )
        return existing
    os.makedirs(directory, exist_ok=True)
    shutil.copyfile(vocabulary_file, os.path.join(directory, tokenizer_config["vocabulary_file"]))
    write_json_atomically(config_path, tokenizer_config)
    return tokenizers.load_tokenizer(directory)


def initialize_from(model, pretrained, model_name):
    """Copies the pretrained weights into `model` (built, same family and sizes).

    Raises:
        InitFromError: the source is another model family, size or vocabulary.
    """
    ours = {k: v for k, v in model.get_config().items() if k not in _FREE_CONFIG_KEYS}
    theirs = {k: v for k, v in pretrained.model_config.items() if k not in _FREE_CONFIG_KEYS}
    if ours != theirs:
        differences = sorted(
            f"{key}={theirs.get(key, '-')!r} (not {ours.get(key, '-')!r})"
            for key in set(ours) | set(theirs)
            if ours.get(key) != theirs.get(key)
        )
        what = "vocabulary" if [d.split("=")[0] for d in differences] == ["vocab_size"] else "model"
        raise InitFromError(
            f"--init_from={pretrained.path}: a {pretrained.kind} of another {what} than "
            f"--model={model_name}: {', '.join(differences)}"
        )
    weights = pretrained.weights
    if isinstance(weights, ExportedVariables):
        weights = weights.values_for(model, pretrained.path)
    model.set_weights(weights)


def _asset_file(export_path, tokenizer_config, digest):
    """The export's copy of a tokenizer's vocabulary file. The SavedModel writer renames assets
    of the same name (`vocabulary.txt`, `vocabulary.txt_1`, ...), so the file is found by the
    digest the export recorded; exports without one keep the file's own name."""
    assets = os.path.join(export_path, "assets")
    if digest is not None:
        for name in sorted(os.listdir(assets)):
            candidate = os.path.join(assets, name)
            with open(candidate, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() == digest:
                    return candidate
        raise InitFromError(f"--init_from={export_path}: its tokenizer files are missing")
    return os.path.join(assets, tokenizer_config["vocabulary_file"])


def _within_model(path):
    """A weight's path without the model's name: "gpt_3/block_0/..." → "block_0/..."."""
    return path.split("/", 1)[-1]
