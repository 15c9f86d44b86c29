"""kerasgen's own TFDS datasets, installed as the package `kerasgen_datasets`.

Importing this package registers every dataset below with TFDS, after which
`tfds.load("kerasgen_dialogue")` builds and loads it locally, without network access.
"""

from .kerasgen_dialogue import KerasgenDialogue

__all__ = ["KerasgenDialogue"]

from .kerasgen_dates import KerasgenDates  # noqa: E402
from .kerasgen_reversal import KerasgenReversal  # noqa: E402

__all__ += ["KerasgenDates", "KerasgenReversal"]
