"""kerasgen's own TFDS datasets, installed as the package `kerasgen_datasets`.

Importing this package registers every dataset below with TFDS, after which
`tfds.load("kerasgen_dialogue")` builds and loads it locally, without network access.
"""

from .kerasgen_dialogue import KerasgenDialogue

__all__ = ["KerasgenDialogue"]
