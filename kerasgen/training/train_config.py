"""`TrainConfig`: everything one training run needs, with the defaults of the default run."""

import dataclasses
import json


@dataclasses.dataclass
class TrainConfig:
    """A training run's resolved configuration; the command-line flags map onto these fields.

    The defaults train the default model on the embedded corpus in a few minutes on two CPU
    cores.
    """

    model: str = "text_generator"  # a preset name of kerasgen.models.presets
    tokenizer: str = "character"  # character, word or subword
    max_vocab_size: int | None = None  # cap for learned vocabularies; None = the level's default
    data_path: str | None = None  # a local UTF-8 text file instead of the embedded corpus
    dataset: str | None = None  # a TFDS dataset name instead of the embedded corpus
    data_dir: str | None = None  # TFDS data folder (None = TFDS's default)
    epochs: int = 10  # passes over the corpus; the default corpus is learned well by then
    steps_per_epoch: int | None = None  # None = one full pass over the training windows
    batch_size: int = 64  # windows per step
    seq_len: int = 100  # tokens per training window (backpropagation through time length)
    learning_rate: float = 3e-3  # Adam; a small char-level LSTM tolerates a brisk rate
    clipnorm: float = 1.0  # gradient clipping: recurrent nets explode without it
    seed: int = 0  # model initialisation, shuffling and sample generation
    export_dir: str = "exports"  # the TensorFlow Serving base folder the export lands in
    export: bool = True  # write a SavedModel at the end
    num_samples: int = 3  # generated samples printed after training
    verbose: int | str = "auto"  # Keras progress bars: "auto", 1 (bar), 2 (a line per epoch), 0

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))
