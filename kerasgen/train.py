"""Command line: train a model, evaluate it, print samples and export it.

    python -m kerasgen.train                      # the default model on the embedded corpus
    python -m kerasgen.train --data_path=my.txt   # on your own UTF-8 text
    python -m kerasgen.train --model=seq2seq_attention --model_config='{"rnn_units": 512}'

Thin by design: the flags are generated from `TrainConfig`'s fields (and the export's from
`DecodingConfig`'s), become a `TrainConfig`, and `kerasgen.training.train_and_evaluate` does the
work (the tests call it directly).
"""

import dataclasses

from kerasgen.cli import quiet_tensorflow_logs, run_reporting_user_errors

quiet_tensorflow_logs()

from absl import app, flags, logging  # noqa: E402

from kerasgen.config_flags import define_flags, flag_values  # noqa: E402
from kerasgen.serving import DecodingConfig  # noqa: E402
from kerasgen.tasks import task_for  # noqa: E402
from kerasgen.training import TrainConfig, train_and_evaluate  # noqa: E402

define_flags(TrainConfig)
define_flags(
    DecodingConfig,
    names=["max_new_tokens", "temperature", "num_beams"],
    helps={
        "max_new_tokens": "Tokens the export generates by default (default: the model family's).",
        "temperature": "Temperature of the export's default signature (0 = greedy; default: the "
        "model family's).",
    },
)
flags.DEFINE_string(
    "workdir",
    "workdir",
    "Checkpoints, TensorBoard logs and the run's configuration go here; rerunning with the "
    "same folder resumes.",
)
FLAGS = flags.FLAGS


def _decoding(model):
    """The export's decoding: the model family's defaults, with the flags given over them."""
    given = flag_values(
        DecodingConfig, names=["max_new_tokens", "temperature", "num_beams"], only_present=True
    )
    decoding = task_for(model).default_decoding()
    if "max_new_tokens" in given:
        given["max_new_tokens_cap"] = max(decoding.max_new_tokens_cap, given["max_new_tokens"])
    return dataclasses.replace(decoding, **given)


def _run():
    # A preset's training recipe stands in for the defaults of the flags not given.
    given = flag_values(TrainConfig, only_present=True)
    given.pop("model", None)
    config = TrainConfig.for_model(FLAGS.model, **given)
    return train_and_evaluate(config, FLAGS.workdir, decoding=_decoding(config.model))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # TensorFlow Datasets logs every file it reads
    run_reporting_user_errors("kerasgen.train", _run)


if __name__ == "__main__":
    app.run(main)
