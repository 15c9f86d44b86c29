"""Reading back what a training run left in its work folder."""

import os

import keras

from kerasgen import tokenizers
from kerasgen.errors import UserInputError
from kerasgen.models import TextGenerator  # noqa: F401  registers the class for load_model
from kerasgen.training.train_config import TrainConfig


def load_trained(workdir):
    """(model, tokenizer, TrainConfig) of a finished run in `workdir`."""
    config_path = os.path.join(workdir, "config.json")
    model_path = os.path.join(workdir, "model.keras")
    for path in (config_path, model_path):
        if not os.path.exists(path):
            raise UserInputError(f"{workdir}: no {os.path.basename(path)}, not a finished run")
    with open(config_path, encoding="utf-8") as f:
        config = TrainConfig.from_json(f.read())
    model = keras.models.load_model(model_path)
    tokenizer = tokenizers.load_tokenizer(os.path.join(workdir, "tokenizer"))
    return model, tokenizer, config
