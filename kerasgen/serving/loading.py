"""Loading an export and calling its signatures from Python, with plain values in and out.

Used by the `generate` command; works on any kerasgen export with `tensorflow` and
`tensorflow_text` alone (kerasgen itself is not needed by the SavedModel).
"""

import json
import os
import re

import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops exports use

from kerasgen.errors import UserInputError
from kerasgen.serving.exporter import METADATA_FILE, latest_export


def invalid_argument_reason(error):
    """The export's own message from an INVALID_ARGUMENT error (it names the input), without the
    graph execution trace around it."""
    found = re.search(r"assertion failed: \[(.*?)\]", error.message)
    return found.group(1) if found else error.message.strip().splitlines()[-1]


def resolve_export_dir(path):
    """A SavedModel folder: `path` itself, or the highest version of a model folder."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        latest = latest_export(path)
        if latest and os.path.exists(os.path.join(latest, "saved_model.pb")):
            return latest
    raise UserInputError(
        f"{path}: holds no SavedModel (no saved_model.pb there nor in a numbered version folder)"
    )


class LoadedExport:
    """An export's signatures, called with Python lists and returning Python values."""

    def __init__(self, path):
        self.path = resolve_export_dir(path)
        self._signatures = tf.saved_model.load(self.path).signatures

    @property
    def signature_names(self):
        return set(self._signatures)

    def metadata(self):
        """The export's `assets/kerasgen_export.json` (how it was made), or {} if absent."""
        path = os.path.join(self.path, "assets", METADATA_FILE)
        if not os.path.exists(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def _signature(self, name):
        if name not in self._signatures:
            raise UserInputError(f"{self.path}: the export has no {name!r} signature")
        signature = self._signatures[name]

        def call(**inputs):
            try:
                return signature(**inputs)
            except tf.errors.InvalidArgumentError as error:
                raise UserInputError(f"{self.path}: {invalid_argument_reason(error)}") from None

        return call

    def generate(self, prompts, *, max_new_tokens, temperature, top_k, top_p, seed):
        """Continuations (str) of `prompts`; row i samples with `seed + i` (negative = fresh)."""
        count = len(prompts)
        seeds = [seed + i if seed >= 0 else -1 for i in range(count)]
        outputs = self._signature("generate")(
            prompt=tf.constant(prompts, tf.string),
            max_new_tokens=tf.fill([count], max_new_tokens),
            temperature=tf.fill([count], float(temperature)),
            top_k=tf.fill([count], top_k),
            top_p=tf.fill([count], float(top_p)),
            seed=tf.constant(seeds, tf.int32),
        )
        return [t.decode("utf-8", errors="replace") for t in outputs["text"].numpy()]

    def beam_search(self, prompts, *, length_penalty):
        """Per prompt, the n-best list as (texts, scores), best first."""
        count = len(prompts)
        outputs = self._signature("beam_search")(
            prompt=tf.constant(prompts, tf.string),
            length_penalty=tf.fill([count], float(length_penalty)),
        )
        texts = [
            [t.decode("utf-8", errors="replace") for t in row] for row in outputs["texts"].numpy()
        ]
        return list(zip(texts, outputs["scores"].numpy().tolist(), strict=True))

    def score(self, texts):
        """(log_prob, num_tokens) per text."""
        outputs = self._signature("score")(text=tf.constant(texts, tf.string))
        return list(
            zip(
                outputs["log_prob"].numpy().tolist(),
                outputs["num_tokens"].numpy().tolist(),
                strict=True,
            )
        )


def load_export(path):
    """`LoadedExport` of a version folder or of a model folder's highest version."""
    return LoadedExport(path)
