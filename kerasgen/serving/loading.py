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
from kerasgen.serving.exporter import existing_versions
from kerasgen.work_folder import export_metadata_path

INT32_MAX = 2**31 - 1

# An assertion's message is its first bracketed item, `assertion failed: [<message>] [<data>]...`;
# the message itself may hold brackets ("top_p must be in (0, 1] (1 means off)"), so it ends at
# the "] [" before the data, or at the end of the line when there is no data; the ".  " some
# asserts (assert_non_negative) append to it is dropped.
_ASSERTION = re.compile(r"assertion failed: \[(.*?)(?:\.  )?\](?: \[|$)", re.MULTILINE)
# The lines of an error that are the graph's trace around the cause, not the cause.
_TRACE_LINE = re.compile(r"^(\[\[|Graph execution error:|Detected at node|<stack traces)")


def invalid_argument_reason(error):
    """The export's own message from an INVALID_ARGUMENT error (it names the input), without the
    graph execution trace around it."""
    found = _ASSERTION.search(error.message)
    if found:
        return found.group(1)
    lines = [line.strip() for line in error.message.strip().splitlines()]
    causes = [line for line in lines if line and not _TRACE_LINE.match(line)]
    return (causes or lines)[-1]


def resolve_export_dir(path):
    """A SavedModel folder: `path` itself, or the highest version of a model folder that holds
    one (a version folder without `saved_model.pb`, such as an emptied one, is passed over)."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        versions = existing_versions(path)
        for version in reversed(versions):
            if os.path.exists(os.path.join(path, str(version), "saved_model.pb")):
                return os.path.join(path, str(version))
        if versions:
            raise UserInputError(
                f"{path}: no version folder holds a SavedModel (no saved_model.pb in "
                f"{', '.join(str(v) for v in versions)})"
            )
    raise UserInputError(
        f"{path}: holds no SavedModel (no saved_model.pb there nor in a numbered version folder)"
    )


def int32_vector(name, values):
    """int32 `[n]` of Python ints, or a `UserInputError` naming `name` when one does not fit:
    the signatures' int32 inputs cannot see a larger number (it fails to convert first)."""
    for value in values:
        if not -INT32_MAX - 1 <= value <= INT32_MAX:
            raise UserInputError(f"{name} must fit in int32 (at most {INT32_MAX}), got {value}")
    return tf.constant(values, tf.int32, shape=[len(values)])


class LoadedExport:
    """An export's signatures, called with Python lists and returning Python values."""

    def __init__(self, path):
        self.path = resolve_export_dir(path)
        self._signatures = tf.saved_model.load(self.path).signatures

    @property
    def signature_names(self):
        return set(self._signatures)

    def input_names(self, name):
        """The names of signature `name`'s inputs."""
        return set(self._signatures[name].structured_input_signature[1])

    def metadata(self):
        """The export's `assets/kerasgen_export.json` (how it was made), or {} if absent."""
        path = export_metadata_path(self.path)
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
            max_new_tokens=int32_vector("max_new_tokens", [max_new_tokens] * count),
            temperature=tf.fill([count], float(temperature)),
            top_k=int32_vector("top_k", [top_k] * count),
            top_p=tf.fill([count], float(top_p)),
            seed=int32_vector("seed", seeds),
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
