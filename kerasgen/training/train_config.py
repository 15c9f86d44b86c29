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
    # Encoder-decoders only: the source and target token levels (None = `tokenizer`).
    source_tokenizer: str | None = None  # e.g. "word" for sentences, "character" for dates
    target_tokenizer: str | None = None  # the target's own vocabulary, start/end added
    max_vocab_size: int | None = None  # cap for learned vocabularies; None = the level's default
    data_path: str | None = None  # a local UTF-8 text file instead of the embedded corpus
    dataset: str | None = None  # a TFDS dataset name instead of the embedded corpus
    data_dir: str | None = None  # TFDS data folder (None = TFDS's default)
    epochs: int = 10  # passes over the corpus; the default corpus is learned well by then
    steps_per_epoch: int | None = None  # None = one full pass over the training windows
    batch_size: int = 64  # windows per step: the GLOBAL batch, split across a strategy's replicas
    seq_len: int = 100  # tokens per training window (backpropagation through time length)
    learning_rate: float = 3e-3  # Adam; a small char-level LSTM tolerates a brisk rate
    clipnorm: float = 1.0  # gradient clipping: recurrent nets explode without it
    seed: int = 0  # model initialisation, shuffling and sample generation
    export_dir: str = "exports"  # the TensorFlow Serving base folder the export lands in
    export: bool = True  # write a SavedModel at the end
    num_samples: int = 3  # generated samples printed after training
    verbose: int | str = "auto"  # Keras progress bars: "auto", 1 (bar), 2 (a line per epoch), 0
    # Optimisation and compilation; the defaults are the recurrent models' setup, and presets
    # may bring their own (kerasgen.models.presets.TRAINING_RECIPES, see `for_model`).
    optimizer: str = "adam"  # "adam", or "adamw" (weight decay on matrices only)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    beta_2: float = 0.999  # Adam's second-moment decay
    schedule: str = "constant"  # "constant", or "cosine": linear warmup then cosine decay
    warmup_steps: int = 0  # steps of linear learning-rate warmup
    mixed_precision: str | None = None  # None, "mixed_bfloat16" (CPU, TPU), "mixed_float16" (GPU)
    jit_compile: bool | str = "auto"  # XLA train step; "auto": Keras decides (off on CPU)
    steps_per_execution: int = 1  # train steps per call into the compiled function
    time_budget_seconds: float | None = None  # stop training after this much wall time
    init_from: str | None = None  # start from a pretrained work folder, checkpoint or export
    # Surviving interruption and stopping on time (kerasgen.training.resume, .fitting).
    checkpoint_every_steps: int | None = 200  # mid-epoch backups: a rerun loses < 200 steps
    early_stopping_patience: int | None = None  # stop after N epochs without a lower val loss
    # Devices and machines (kerasgen.training.distribution); batch_size stays the global batch.
    strategy: str = "default"  # one device; or "mirrored", "multi_worker" (TF_CONFIG), "tpu"
    tpu: str | None = None  # strategy "tpu": grpc://host:port, a Cloud TPU name, or "local"

    @classmethod
    def for_model(cls, model, **explicit):
        """The configuration of a run of preset `model`: TrainConfig's defaults, then the
        preset's training recipe, then `explicit` (the user's choices) over both."""
        from kerasgen.models.presets import training_recipe

        return cls(**{**training_recipe(model), **explicit, "model": model})

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))
