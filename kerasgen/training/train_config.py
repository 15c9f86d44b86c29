"""`TrainConfig`: everything one training run needs, with the defaults of the default run.

Each field carries its documentation (the `--help` text of its flag) and its checks
(`kerasgen.config_fields.option`); where the code that accepts a value has a list of valid
values, the field asks that code (`valid_values`). `kerasgen.config_flags` turns the fields into
command-line flags, so a field is written once. `validate()` (run on construction) rejects bad
values with one line naming the field.
"""

import dataclasses
import json

from kerasgen.config_fields import check_fields, option
from kerasgen.errors import UserInputError


def _choices_of(name):
    """The valid values of field `name`, asked of the code that accepts them (imported late:
    these modules import TensorFlow and some import this one)."""
    if name == "model":
        from kerasgen.models.presets import preset_names

        return preset_names()
    if name in ("tokenizer", "source_tokenizer", "target_tokenizer"):
        from kerasgen.tokenizers import TOKENIZER_LEVELS

        return list(TOKENIZER_LEVELS)
    if name == "optimizer":
        from kerasgen.training.optimizers import OPTIMIZERS

        return list(OPTIMIZERS)
    if name == "schedule":
        from kerasgen.training.optimizers import SCHEDULES

        return list(SCHEDULES)
    if name == "mixed_precision":
        from kerasgen.training.optimizers import MIXED_PRECISION_POLICIES

        return list(MIXED_PRECISION_POLICIES)
    if name == "strategy":
        from kerasgen.training.distribution import STRATEGIES

        return list(STRATEGIES)
    raise KeyError(name)


VERBOSITIES = ("auto", 0, 1, 2)
JIT_COMPILE_CHOICES = ("auto", True, False)


@dataclasses.dataclass
class TrainConfig:
    """A training run's resolved configuration; the command-line flags map onto these fields.

    The defaults train the default model on the embedded corpus in a few minutes on two CPU
    cores. Presets may bring their own training recipe (`for_model`).
    """

    model: str = option(
        "text_generator", "Model preset to train (kerasgen.models.presets).", choices=True
    )
    model_config: dict | None = option(
        None,
        "Overrides of the preset's hyperparameters: a JSON object or the path of a .json file, "
        'e.g. \'{"rnn_units": 512, "dropout": 0.3}\'. The run records the resolved values.',
    )
    tokenizer: str = option("character", "Token level.", choices=True)
    source_tokenizer: str | None = option(
        None, "Encoder-decoders: the source's token level (default: --tokenizer).", choices=True
    )
    target_tokenizer: str | None = option(
        None, "Encoder-decoders: the target's token level (default: --tokenizer).", choices=True
    )
    max_vocab_size: int | None = option(
        None,
        "Vocabulary cap of learned vocabularies (default: the level's own).",
        minimum=5,  # the 4 reserved ids and one token
    )
    data_path: str | None = option(
        None,
        "A local UTF-8 text file to train on (encoder-decoders: source<TAB>target lines).",
    )
    dataset: str | None = option(
        None,
        "A TensorFlow Datasets name to train on (needs internet unless already prepared), "
        "e.g. tiny_shakespeare.",
    )
    data_dir: str | None = option(None, "TensorFlow Datasets data folder.")
    epochs: int = option(10, "Training epochs.", minimum=1)
    steps_per_epoch: int | None = option(
        None, "Steps per epoch (default: one pass over the data).", minimum=1
    )
    batch_size: int = option(
        64,
        "Windows per step: the GLOBAL batch, split evenly across the --strategy's replicas.",
        minimum=1,
    )
    seq_len: int = option(100, "Tokens per training window (language models).", minimum=1)
    learning_rate: float = option(3e-3, "Peak learning rate.", minimum=0.0)
    clipnorm: float = option(1.0, "Per-variable gradient clipping norm (0: off).", minimum=0.0)
    seed: int = option(
        0, "Random seed of initialisation, shuffling and samples.", minimum=0, maximum=2**31 - 1
    )
    export_dir: str = option(
        "exports",
        "TensorFlow Serving base folder: the export lands in <export_dir>/<model>/<version>/.",
    )
    export: bool = option(True, "Export a SavedModel after training.")
    num_samples: int = option(3, "Samples printed after training (0: none).", minimum=0)
    verbose: int | str = option(
        "auto",
        "Keras progress output: 1 a progress bar, 2 a line per epoch, 0 silent.",
        choices=VERBOSITIES,
    )
    optimizer: str = option("adam", "adamw decays matrices only.", choices=True)
    weight_decay: float = option(0.0, "AdamW weight decay.", minimum=0.0)
    label_smoothing: float = option(
        0.0,
        "Target probability mass spread over the vocabulary by the loss, in [0, 1).",
        minimum=0.0,
    )
    beta_2: float = option(0.999, "Adam's second-moment decay.", minimum=0.0)
    schedule: str = option(
        "constant",
        "Learning rate: constant, or linear warmup then cosine decay to a tenth.",
        choices=True,
    )
    warmup_steps: int = option(0, "Linear warmup steps.", minimum=0)
    mixed_precision: str | None = option(
        None,
        "Mixed precision: mixed_bfloat16 (CPU, TPU) or mixed_float16 with loss scaling (GPU).",
        choices=True,
    )
    jit_compile: bool | str = option(
        "auto",
        "XLA-compile the train step (auto: Keras decides, off on CPU).",
        choices=JIT_COMPILE_CHOICES,
    )
    steps_per_execution: int = option(
        1, "Train steps per call into the compiled function.", minimum=1
    )
    time_budget_seconds: float | None = option(
        None,
        "Stop training after this much wall time; a cosine schedule then decays by the clock too.",
        minimum=0.0,
    )
    init_from: str | None = option(
        None,
        "Start from pretrained weights: a work folder, its model.keras or a checkpoint, or an "
        "export; the run uses the pretrained tokenizers.",
    )
    checkpoint_every_steps: int | None = option(
        200,
        "Back the run up every this many steps (and at every epoch end); rerunning the same "
        "command resumes from the last backup. 0: epoch ends only.",
        minimum=0,
    )
    early_stopping_patience: int | None = option(
        None,
        "Stop after this many epochs without a lower validation loss (default: never); the run "
        "keeps the weights of the lowest validation loss either way.",
        minimum=0,
    )
    strategy: str = option(
        "default",
        "tf.distribute strategy: default (one device), mirrored (this machine's GPUs or logical "
        "CPUs), multi_worker (the machines of the TF_CONFIG environment variable; the chief "
        "alone writes the work folder and the export), tpu (with --tpu).",
        choices=True,
    )
    tpu: str | None = option(
        None, "--strategy=tpu: the TPU, as grpc://host:port, a Cloud TPU name, or local."
    )

    # Written by the run, not given: the schedule as laid out for the run's length
    # (`total_steps`, `warmup_steps`), recorded in config.json.
    plan: dict | None = option(None, "The run's schedule plan.", flag=False)
    # Written by an encoder-decoder's run: the decoding length limit measured on its training
    # pairs (`{"ratio": r, "offset": b}`: at most ceil(r * source tokens) + b new tokens), which
    # every export of the run applies (`kerasgen.tasks.TranslationTask.length_limit`).
    length_limit: dict | None = option(None, "The measured decoding length limit.", flag=False)
    # Written by `for_model`: the fields the user gave (the command line's flags), so a run can
    # tell them from the preset recipe's values and the defaults (`is_given`). None: a config
    # built directly, whose fields count as given where they differ from the defaults.
    given_fields: list | None = option(None, "The fields the user gave.", flag=False)

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raises `UserInputError` naming the first field whose value is invalid."""
        check_fields(self)
        if not self.label_smoothing < 1:
            raise UserInputError(f"label_smoothing must be below 1, got {self.label_smoothing}")
        if not self.beta_2 < 1:
            raise UserInputError(f"beta_2 must be below 1, got {self.beta_2}")
        if self.time_budget_seconds is not None and self.time_budget_seconds <= 0:
            raise UserInputError(
                f"time_budget_seconds must be positive, got {self.time_budget_seconds} "
                "(leave it out for no budget)"
            )
        if self.model_config is not None and not isinstance(self.model_config, dict):
            raise UserInputError(
                f"model_config must be a JSON object of hyperparameters, not {self.model_config!r}"
            )

    @staticmethod
    def valid_values(name):
        """The valid values of field `name`, from the code that accepts them."""
        return _choices_of(name)

    def is_given(self, name):
        """Whether the user chose field `name`'s value: named to `for_model` (a flag on the
        command line), not the preset recipe's nor the default. A config built directly has
        no recipe: there a field is given when it differs from TrainConfig's default."""
        if self.given_fields is not None:
            return name in self.given_fields
        field = next(field for field in dataclasses.fields(self) if field.name == name)
        return getattr(self, name) != field.default

    def trains_with_xla(self):
        """Whether Keras will XLA-compile the train step: `jit_compile`, with "auto" resolved
        as Keras resolves it (on when the machine has a device other than the CPU)."""
        if self.jit_compile != "auto":
            return bool(self.jit_compile)
        import tensorflow as tf

        return any(device.device_type != "CPU" for device in tf.config.list_physical_devices())

    @classmethod
    def for_model(cls, model, **explicit):
        """The configuration of a run of preset `model`: TrainConfig's defaults, then the
        preset's training recipe, then `explicit` (the user's choices) over both; records the
        names of `explicit` in `given_fields`."""
        from kerasgen.models.presets import training_recipe

        return cls(
            **{**training_recipe(model), **explicit, "model": model},
            given_fields=sorted(explicit),
        )

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """The configuration of a `to_json` text; keys of fields this version does not have
        are ignored, so an older or newer record still reads."""
        values = json.loads(text)
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})
