"""The kerasgen_dialogue TFDS dataset: kerasgen's own default corpus, written by a grammar.

Nothing is downloaded: `_split_generators` runs the seeded grammar in `grammar.py`, so every
build of version 1.0.0 holds the same documents. Build it with

    tfds build datasets/kerasgen_dialogue

or load it after `import kerasgen_datasets` with `tfds.load("kerasgen_dialogue")`.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from . import grammar


@dataclasses.dataclass(frozen=True)
class _SplitSpec:
    name: str
    seed: int  # each split has its own seed, so splits differ by more than their order
    num_chars: int  # the split stops at the first document that reaches this many characters


# Train is sized for a small character LSTM to learn in a couple of minutes on two CPU cores;
# validation and test are a tenth of it each, enough for a stable loss estimate.
_SPLITS = (
    _SplitSpec("train", seed=1, num_chars=400_000),
    _SplitSpec("validation", seed=2, num_chars=40_000),
    _SplitSpec("test", seed=3, num_chars=40_000),
)


def write_splits() -> dict[str, list[str]]:
    """Writes every split's documents; no document appears twice, within or across splits.

    Returns:
        Split name -> documents (each a scene or song, lines joined by "\\n").
    """
    splits: dict[str, list[str]] = {}
    written: set[str] = set()
    # Later splits skip what earlier ones wrote, so train never changes when another split does.
    for spec in _SPLITS:
        documents = grammar.write_documents(spec.seed, spec.num_chars, exclude=written)
        written.update(documents)
        splits[spec.name] = documents
    return splits


class KerasgenDialogue(tfds.core.GeneratorBasedBuilder):
    """Short play-like scenes and songs, written by kerasgen's own seeded grammar."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: about 400k characters of train text."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Play-like dialogue scenes and songs written by a small stochastic grammar "
                "(seeded, about four hundred invented words, rhyme, refrains, speaker names in "
                "capitals). One example is one document, its lines separated by newlines. "
                "The text is kerasgen's own; nothing is downloaded."
            ),
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # the text is written here, not downloaded
        return {
            name: self._generate_examples(documents) for name, documents in write_splits().items()
        }

    def _generate_examples(self, documents: list[str]):
        for index, document in enumerate(documents):
            yield index, {"text": document}
