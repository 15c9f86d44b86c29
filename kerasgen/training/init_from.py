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
import json
import os
import shutil

import keras
import numpy as np

from kerasgen import tokenizers
from kerasgen.errors import UserInputError

_EXPORT_METADATA = os.path.join("assets", "kerasgen_export.json")
# Config entries that may differ between pretraining and fine-tuning.
_FREE_CONFIG_KEYS = ("name", "trainable", "dtype", "dropout")


class InitFromError(UserInputError):
    """`--init_from` names something the run cannot start from."""


@dataclasses.dataclass
class Pretrained:
    """Weights and tokenizer of a pretrained model.

    Attributes:
        path: the source, as given.
        kind: "work folder", "Keras model", "checkpoint" or "export".
        model_config: the pretrained model's `get_config()`.
        weights: its weights, as numpy arrays in `model.weights` order, or for an export its
            `ExportedVariables` (matched to the new model in `initialize_from`).
        tokenizer_config: the tokenizer's `get_config()`.
        vocabulary_file: path of the tokenizer's vocabulary file.
    """

    path: str
    kind: str
    model_config: dict
    weights: list
    tokenizer_config: dict
    vocabulary_file: str


def load_pretrained(path, build_preset=None):
    """Reads a pretrained source (see the module docstring).

    Args:
        path: the `--init_from` value.
        build_preset: `(preset_name, vocab_size) -> built keras.Model`, needed for checkpoints
            (a `.weights.h5` file holds weights only).

    Raises:
        InitFromError: missing or unrecognised path, or unreadable weights.
    """
    if not os.path.exists(path):
        raise InitFromError(f"--init_from={path}: no such file or folder")
    if os.path.isdir(path) and os.path.exists(os.path.join(path, _EXPORT_METADATA)):
        return _from_export(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "model.keras")):
        return _from_keras_file(path, os.path.join(path, "model.keras"), path, "work folder")
    if path.endswith(".keras"):
        folder = os.path.dirname(os.path.abspath(path))
        return _from_keras_file(path, path, folder, "Keras model")
    if path.endswith(".weights.h5"):
        return _from_checkpoint(path, build_preset)
    raise InitFromError(
        f"--init_from={path}: not a kerasgen work folder, model.keras, .weights.h5 checkpoint "
        "or SavedModel export"
    )


def _tokenizer_files(path, folder):
    config_path = os.path.join(folder, "tokenizer", tokenizers.CONFIG_FILE_NAME)
    if not os.path.exists(config_path):
        raise InitFromError(f"--init_from={path}: no tokenizer beside it (expected {config_path})")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    return config, os.path.join(folder, "tokenizer", config["vocabulary_file"])


def _from_keras_file(path, model_path, folder, kind):
    tokenizer_config, vocabulary_file = _tokenizer_files(path, folder)
    try:
        model = keras.models.load_model(model_path)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's input
        raise InitFromError(f"--init_from={path}: cannot load {model_path} ({error})") from error
    return Pretrained(
        path, kind, model.get_config(), model.get_weights(), tokenizer_config, vocabulary_file
    )


def _from_checkpoint(path, build_preset):
    # <workdir>/checkpoints/epoch-NNN.weights.h5: the run's folder is two levels up.
    folder = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    config_path = os.path.join(folder, "config.json")
    if not os.path.exists(config_path):
        raise InitFromError(
            f"--init_from={path}: a checkpoint must sit in a work folder's checkpoints/ "
            f"(no {config_path})"
        )
    tokenizer_config, vocabulary_file = _tokenizer_files(path, folder)
    with open(config_path, encoding="utf-8") as f:
        preset = json.load(f)["model"]
    vocab_size = tokenizers.load_tokenizer(os.path.join(folder, "tokenizer")).vocab_size
    model = build_preset(preset, vocab_size)
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001
        reason = " ".join(str(error).split())[:200]
        raise InitFromError(f"--init_from={path}: cannot load the checkpoint ({reason})") from error
    return Pretrained(
        path,
        "checkpoint",
        model.get_config(),
        model.get_weights(),
        tokenizer_config,
        vocabulary_file,
    )


def _from_export(path):
    import tensorflow as tf

    with open(os.path.join(path, _EXPORT_METADATA), encoding="utf-8") as f:
        metadata = json.load(f)
    loaded = tf.saved_model.load(path)
    tokenizer_config = metadata["tokenizer"]
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
        tokenizer_config,
        os.path.join(path, "assets", tokenizer_config["vocabulary_file"]),
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


def install_tokenizer(pretrained, directory, level):
    """The run's tokenizer: the pretrained one, copied into `directory`.

    Args:
        pretrained: a `Pretrained`.
        directory: the run's tokenizer folder (`<workdir>/tokenizer`).
        level: the run's `--tokenizer` level, which must be the pretrained one's.

    Raises:
        InitFromError: another level, or `directory` holds another vocabulary already (a work
            folder of another run).
    """
    theirs = pretrained.tokenizer_config["level"]
    if theirs != level:
        raise InitFromError(
            f"--init_from={pretrained.path}: its tokenizer is {theirs}-level, not {level}; "
            f"fine-tuning needs the pretrained tokenizer (use --tokenizer={theirs})"
        )
    with open(pretrained.vocabulary_file, "rb") as f:
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
    shutil.copyfile(
        pretrained.vocabulary_file,
        os.path.join(directory, pretrained.tokenizer_config["vocabulary_file"]),
    )
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(pretrained.tokenizer_config, f, indent=2)
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


def _within_model(path):
    """A weight's path without the model's name: "gpt_3/block_0/..." → "block_0/..."."""
    return path.split("/", 1)[-1]
