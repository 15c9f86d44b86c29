"""Training runs: configuration and the `train_and_evaluate` function behind `kerasgen.train`."""

from kerasgen.training.train_config import TrainConfig
from kerasgen.training.trainer import TrainResult, WorkdirMismatchError, train_and_evaluate

__all__ = ["TrainConfig", "TrainResult", "WorkdirMismatchError", "train_and_evaluate"]
