"""Tokenizers inside SavedModels: reloaded without kerasgen and without the original files."""

import json
import os
import shutil
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from kerasgen.serving import check_serving_ops
from kerasgen.tokenizers import TOKENIZER_LEVELS, learn_tokenizer

TEXTS = [
    "The cat sat on the mat.\nThe dog sat on the log!",
    "Café au lait — très bien, pas?",
    "",
    "the zebra Ω",
    "bad \udcff byte",  # a lone surrogate: encoded below as an invalid UTF-8 byte
]
TEXT_BYTES = [text.encode("utf-8", errors="surrogateescape") for text in TEXTS]

# Runs in a fresh interpreter that imports only TensorFlow and tensorflow-text (for its ops);
# prints, for each SavedModel, the outputs of its two functions.
LOAD_AND_RUN = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401, registers the tensorflow-text ops the graphs use

paths = json.loads(sys.argv[1])
texts = tf.constant([text.encode("latin-1") for text in json.loads(sys.argv[2])])
results = {}
for name, path in paths.items():
    loaded = tf.saved_model.load(path)
    results[name] = {
        "round_trip": [text.decode("utf-8") for text in loaded.round_trip(texts).numpy()],
        "token_ids": loaded.token_ids(texts).numpy().tolist(),
    }
results["kerasgen_imported"] = any(module.startswith("kerasgen") for module in sys.modules)
print(json.dumps(results))
"""

SIGNATURE = [tf.TensorSpec([None], tf.string)]

# The levels also exported with a Keras ExportArchive, as kerasgen's serving exporter does. Only
# two, since each export and reload costs seconds: subword, whose tables sit deepest (inside
# tensorflow-text's WordpieceTokenizer), and sentencepiece, whose model is an op attribute plus
# a tracked asset rather than a lookup table.
KERAS_EXPORT_LEVELS = ("subword", "sentencepiece")

# What each level's SavedModel carries in assets/.
ASSET_FILES = {level: ["vocabulary.txt"] for level in TOKENIZER_LEVELS} | {
    "sentencepiece": ["sentencepiece.model"]
}


class TokenizerModule(tf.Module):
    """The smallest module that tracks a tokenizer and serves its two directions."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=SIGNATURE)
    def round_trip(self, texts):
        return self.tokenizer.detokenize(self.tokenizer.tokenize(texts))  # [batch]

    @tf.function(input_signature=SIGNATURE)
    def token_ids(self, texts):
        return self.tokenizer.tokenize(texts).to_tensor(self.tokenizer.pad_id)  # [batch, len]


def export_with_keras(tokenizer, path):
    """Exports as kerasgen's serving exporter does, with a Keras ExportArchive."""
    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    module = TokenizerModule(tokenizer)
    archive.add_endpoint("round_trip", module.round_trip)
    archive.add_endpoint("token_ids", module.token_ids)
    archive.write_out(path, verbose=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, corpus):
    """Saves every level, deletes the vocabularies, moves the SavedModels, reloads them in a
    fresh process.

    Returns (expected, reloaded, paths): expected outputs computed in this process, the
    outputs of the reloaded SavedModels, and the SavedModel paths, keyed by
    "<level>/<saved_model|keras_export>".
    """
    root = tmp_path_factory.mktemp("exports")
    texts = tf.constant(TEXT_BYTES)
    expected, paths = {}, {}
    for level in TOKENIZER_LEVELS:
        vocabulary_directory = str(root / f"vocabulary_{level}")
        tokenizer = learn_tokenizer(level, corpus, vocabulary_directory)
        module = TokenizerModule(tokenizer)
        outputs = {
            "round_trip": [text.decode("utf-8") for text in module.round_trip(texts).numpy()],
            "token_ids": module.token_ids(texts).numpy().tolist(),
        }
        paths[f"{level}/saved_model"] = str(root / f"saved_model_{level}")
        tf.saved_model.save(module, paths[f"{level}/saved_model"])
        expected[f"{level}/saved_model"] = outputs
        if level in KERAS_EXPORT_LEVELS:
            paths[f"{level}/keras_export"] = str(root / f"keras_export_{level}")
            export_with_keras(tokenizer, paths[f"{level}/keras_export"])
            expected[f"{level}/keras_export"] = outputs
        shutil.rmtree(vocabulary_directory)  # the SavedModels must carry their own copies
    moved = root / "moved"  # and must not depend on where they were written
    for name, path in paths.items():
        (moved / name).parent.mkdir(parents=True, exist_ok=True)
        paths[name] = shutil.move(path, str(moved / name))

    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_RUN,
            json.dumps(paths),
            json.dumps([text.decode("latin-1") for text in TEXT_BYTES]),
        ],
        capture_output=True,
        text=True,
        cwd=str(root),  # not the repository, so kerasgen is not importable
        env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    return expected, reloaded, paths


@pytest.mark.parametrize(
    "name",
    [f"{level}/saved_model" for level in TOKENIZER_LEVELS]
    + [f"{level}/keras_export" for level in KERAS_EXPORT_LEVELS],
)
def test_reloaded_tokenizer_gives_the_same_outputs_without_kerasgen(exported, name):
    expected, reloaded, paths = exported

    assert os.listdir(os.path.join(paths[name], "assets")) == ASSET_FILES[name.split("/")[0]]
    assert reloaded[name] == expected[name]
    assert reloaded["kerasgen_imported"] is False
    check_serving_ops(paths[name])  # raises unless TensorFlow Serving has every op


@pytest.mark.parametrize("level", TOKENIZER_LEVELS)
def test_expected_outputs_are_meaningful(exported, level):
    """Guards the comparison above: the in-process outputs are what each level should give."""
    expected, _, _ = exported
    outputs = expected[f"{level}/saved_model"]

    assert outputs["round_trip"][0] == TEXTS[0]  # in-vocabulary text, newline included
    assert outputs["round_trip"][2] == ""
    assert 3 in outputs["token_ids"][3]  # unknown characters or words
    unknown = "\ufffd" if level == "character" else "[UNK]"
    assert unknown in outputs["round_trip"][3]
    assert unknown in outputs["round_trip"][4]  # the invalid byte
