"""Command line: train a model, evaluate it, print samples and export it.

    python -m kerasgen.train                      # the default model on the embedded corpus
    python -m kerasgen.train --data_path=my.txt   # on your own UTF-8 text
    python -m kerasgen.train --dataset=tiny_shakespeare --model=text_generator_large

Thin by design: flags become a `TrainConfig`, and `kerasgen.training.train_and_evaluate` does
the work (the tests call it directly).
"""

from kerasgen.cli import quiet_tensorflow_logs, run_reporting_user_errors

quiet_tensorflow_logs()

from absl import app, flags, logging  # noqa: E402

from kerasgen.models.presets import preset_names, training_recipe  # noqa: E402
from kerasgen.serving import DecodingConfig  # noqa: E402
from kerasgen.tokenizers import TOKENIZER_LEVELS  # noqa: E402
from kerasgen.training import TrainConfig, train_and_evaluate  # noqa: E402
from kerasgen.training.distribution import STRATEGIES  # noqa: E402

_DEFAULTS = TrainConfig()

flags.DEFINE_enum("model", _DEFAULTS.model, preset_names(), "Model preset to train.")
flags.DEFINE_enum("tokenizer", _DEFAULTS.tokenizer, list(TOKENIZER_LEVELS), "Token level.")
flags.DEFINE_enum(
    "source_tokenizer",
    None,
    list(TOKENIZER_LEVELS),
    "Encoder-decoders: the source's token level (default: --tokenizer).",
)
flags.DEFINE_enum(
    "target_tokenizer",
    None,
    list(TOKENIZER_LEVELS),
    "Encoder-decoders: the target's token level (default: --tokenizer).",
)
flags.DEFINE_integer("max_vocab_size", None, "Vocabulary cap for word and subword tokenizers.")
flags.DEFINE_string(
    "data_path",
    None,
    "A local UTF-8 text file to train on (encoder-decoders: source<TAB>target lines).",
)
flags.DEFINE_string(
    "dataset",
    None,
    "A TensorFlow Datasets name to train on (needs internet "
    "unless already prepared), e.g. tiny_shakespeare.",
)
flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data folder.")
flags.DEFINE_string(
    "workdir",
    "workdir",
    "Checkpoints, TensorBoard logs and the run's "
    "configuration go here; rerunning with the same folder resumes.",
)
flags.DEFINE_string(
    "export_dir",
    _DEFAULTS.export_dir,
    "TensorFlow Serving base folder: the export lands in <export_dir>/<model>/<version>/.",
)
flags.DEFINE_boolean("export", _DEFAULTS.export, "Export a SavedModel after training.")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs.", lower_bound=1)
flags.DEFINE_integer(
    "steps_per_epoch", None, "Steps per epoch (default: one pass over the data).", lower_bound=1
)
flags.DEFINE_integer(
    "batch_size",
    _DEFAULTS.batch_size,
    "Windows per step: the GLOBAL batch, split evenly across the --strategy's replicas.",
    lower_bound=1,
)
flags.DEFINE_integer("seq_len", _DEFAULTS.seq_len, "Tokens per training window.", lower_bound=1)
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_float("clipnorm", _DEFAULTS.clipnorm, "Gradient clipping norm.", lower_bound=0.0)
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed.")
flags.DEFINE_integer(
    "num_samples", _DEFAULTS.num_samples, "Samples printed after training.", lower_bound=0
)
flags.DEFINE_enum(
    "verbose",
    "auto",
    ["auto", "0", "1", "2"],
    "Keras progress output: 1 a progress bar, 2 a line per epoch, 0 silent.",
)
flags.DEFINE_integer(
    "max_new_tokens",
    DecodingConfig.max_new_tokens,
    "Tokens the export generates by default.",
    lower_bound=0,
)
flags.DEFINE_float(
    "temperature",
    DecodingConfig.temperature,
    "Sampling temperature of the export's default signature (0 = greedy).",
    lower_bound=0.0,
)
flags.DEFINE_integer(
    "num_beams",
    DecodingConfig.num_beams,
    "Beam width of the export's beam_search signature.",
    lower_bound=1,
)

flags.DEFINE_enum(
    "optimizer", _DEFAULTS.optimizer, ["adam", "adamw"], "adamw decays matrices only."
)
flags.DEFINE_float("weight_decay", _DEFAULTS.weight_decay, "AdamW weight decay.", lower_bound=0.0)
flags.DEFINE_float("beta_2", _DEFAULTS.beta_2, "Adam's second-moment decay.", lower_bound=0.0)
flags.DEFINE_enum(
    "schedule",
    _DEFAULTS.schedule,
    ["constant", "cosine"],
    "Learning rate: constant, or linear warmup then cosine decay to a tenth.",
)
flags.DEFINE_integer("warmup_steps", _DEFAULTS.warmup_steps, "Linear warmup steps.", lower_bound=0)
flags.DEFINE_enum(
    "mixed_precision",
    None,
    ["mixed_bfloat16", "mixed_float16"],
    "Mixed precision: mixed_bfloat16 (CPU, TPU) or mixed_float16 with loss scaling (GPU).",
)
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA-compile the train step.")
flags.DEFINE_integer(
    "steps_per_execution",
    _DEFAULTS.steps_per_execution,
    "Train steps per call into the compiled function.",
    lower_bound=1,
)
flags.DEFINE_float(
    "time_budget_seconds",
    None,
    "Stop training after this much wall time; a cosine schedule then decays by the clock too.",
    lower_bound=0.0,
)
flags.DEFINE_string(
    "init_from",
    None,
    "Start from pretrained weights: a work folder, its model.keras or a checkpoint, or an "
    "export; the run uses the pretrained tokenizer.",
)
flags.DEFINE_integer(
    "checkpoint_every_steps",
    _DEFAULTS.checkpoint_every_steps,
    "Back the run up every this many steps (and at every epoch end); rerunning the same "
    "command resumes from the last backup. 0: epoch ends only.",
    lower_bound=0,
)
flags.DEFINE_integer(
    "early_stopping_patience",
    None,
    "Stop after this many epochs without a lower validation loss (default: never); the run "
    "keeps the weights of the lowest validation loss either way.",
    lower_bound=0,
)

flags.DEFINE_enum(
    "strategy",
    _DEFAULTS.strategy,
    list(STRATEGIES),
    "tf.distribute strategy: default (one device), mirrored (this machine's GPUs or logical "
    "CPUs), multi_worker (the machines of the TF_CONFIG environment variable; the chief alone "
    "writes the work folder and the export), tpu (with --tpu).",
)
flags.DEFINE_string(
    "tpu", None, "--strategy=tpu: the TPU, as grpc://host:port, a Cloud TPU name, or local."
)

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # TensorFlow Datasets logs every file it reads
    values = dict(
        tokenizer=FLAGS.tokenizer,
        source_tokenizer=FLAGS.source_tokenizer,
        target_tokenizer=FLAGS.target_tokenizer,
        max_vocab_size=FLAGS.max_vocab_size,
        data_path=FLAGS.data_path,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch,
        batch_size=FLAGS.batch_size,
        seq_len=FLAGS.seq_len,
        learning_rate=FLAGS.learning_rate,
        clipnorm=FLAGS.clipnorm,
        seed=FLAGS.seed,
        export_dir=FLAGS.export_dir,
        export=FLAGS.export,
        num_samples=FLAGS.num_samples,
        verbose=FLAGS.verbose if FLAGS.verbose == "auto" else int(FLAGS.verbose),
        optimizer=FLAGS.optimizer,
        weight_decay=FLAGS.weight_decay,
        beta_2=FLAGS.beta_2,
        schedule=FLAGS.schedule,
        warmup_steps=FLAGS.warmup_steps,
        mixed_precision=FLAGS.mixed_precision,
        jit_compile={"auto": "auto", "true": True, "false": False}[FLAGS.jit_compile],
        steps_per_execution=FLAGS.steps_per_execution,
        time_budget_seconds=FLAGS.time_budget_seconds,
        init_from=FLAGS.init_from,
        checkpoint_every_steps=FLAGS.checkpoint_every_steps,
        early_stopping_patience=FLAGS.early_stopping_patience,
        strategy=FLAGS.strategy,
        tpu=FLAGS.tpu,
    )
    # The preset's training recipe stands in for the defaults of the flags not given.
    recipe = training_recipe(FLAGS.model)
    config = TrainConfig.for_model(
        FLAGS.model,
        **{k: v for k, v in values.items() if k not in recipe or FLAGS[k].present},
    )
    decoding = DecodingConfig(
        max_new_tokens=FLAGS.max_new_tokens,
        max_new_tokens_cap=max(DecodingConfig.max_new_tokens_cap, FLAGS.max_new_tokens),
        temperature=FLAGS.temperature,
        num_beams=FLAGS.num_beams,
    )
    # Without decoding flags, each model family uses its own defaults (translation: greedy).
    if not any(FLAGS[name].present for name in ("max_new_tokens", "temperature", "num_beams")):
        decoding = None
    run_reporting_user_errors(
        "kerasgen.train", lambda: train_and_evaluate(config, FLAGS.workdir, decoding=decoding)
    )


if __name__ == "__main__":
    app.run(main)
