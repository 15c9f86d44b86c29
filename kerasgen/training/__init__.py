"""Training runs: configuration and the `train_and_evaluate` function behind `kerasgen.train`."""

from kerasgen.training.run import (
    TrainResult,
    WorkdirMismatchError,
    load_trained,
    service_for,
    train_and_evaluate,
)
from kerasgen.training.train_config import TrainConfig

__all__ = [
    "TrainConfig",
    "TrainResult",
    "WorkdirMismatchError",
    "load_trained",
    "service_for",
    "train_and_evaluate",
]
