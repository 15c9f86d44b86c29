"""The kerasgen_dates dataset; importing this package registers it with TFDS."""

from .kerasgen_dates_dataset_builder import KerasgenDates

__all__ = ["KerasgenDates"]
