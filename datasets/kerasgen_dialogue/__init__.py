"""The kerasgen_dialogue dataset; importing this package registers it with TFDS."""

from .kerasgen_dialogue_dataset_builder import KerasgenDialogue

__all__ = ["KerasgenDialogue"]
