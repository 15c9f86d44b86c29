"""The kerasgen_reversal dataset; importing this package registers it with TFDS."""

from .kerasgen_reversal_dataset_builder import KerasgenReversal

__all__ = ["KerasgenReversal"]
