"""Command line: how good an export is, as a table.

For a language model, perplexity through its `score` signature (on --data_path, on --dataset's
validation part, or by default on the validation part of what it was trained on). For an
encoder-decoder, translation quality: exact match, BLEU and chrF, greedy and beam, then
sacrebleu's own BLEU and chrF lines, whose signatures say how to reproduce each figure, e.g.
`BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 27.30 58.1/33.0/...`.

    python -m kerasgen.evaluate --export_dir=exports/text_generator
    python -m kerasgen.evaluate --export_dir=exports/text_generator/1 --data_path=held_out.txt

    python -m kerasgen.evaluate --export_dir=exports/seq2seq_attention/1
    python -m kerasgen.evaluate --export_dir=exports/seq2seq_attention --dataset=kerasgen_dates \
        --split=test --plot_attention=attention.png
    python -m kerasgen.evaluate --export_dir=exports/seq2seq/1 --data_path=pairs.tsv

Thin by design: `kerasgen.evaluation.evaluate_export` does the work (the tests call it too).
`--export_dir` is a version folder, or a model folder (its latest version is used).
"""

from kerasgen.cli import quiet_tensorflow_logs, run_reporting_user_errors

quiet_tensorflow_logs()


from absl import app, flags, logging  # noqa: E402

from kerasgen.config_flags import check_finite_flags, define_flags  # noqa: E402
from kerasgen.serving.decoding_config import DecodingConfig  # noqa: E402

flags.DEFINE_string("export_dir", None, "An export: a version folder or a model folder.")
flags.DEFINE_string("dataset", None, "TFDS dataset: text for a language model, (source, target) "
                    "pairs for an encoder-decoder (default: the export's training dataset, else "
                    "kerasgen_dates for an encoder-decoder).")  # fmt: skip
flags.DEFINE_string(
    "data_path",
    None,
    "A local file, all of it evaluated: text for a language "
    "model, source<TAB>target lines for an encoder-decoder.",
)
flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data folder.")
flags.DEFINE_list("split", None, "Splits of --dataset (default: every held-out split).")
flags.DEFINE_integer("max_examples", 2000, "Pairs evaluated per split.", lower_bound=1)
flags.DEFINE_integer("batch_size", 256, "Sources per request.", lower_bound=1)
define_flags(DecodingConfig, names=["length_penalty"])
flags.DEFINE_integer(
    "max_new_tokens",
    None,
    "Greedy decoding's length limit (default: the export's cap).",
    lower_bound=1,
)
flags.DEFINE_string(
    "plot_attention",
    None,
    "Draw attention heatmaps of a few examples into this image file (a folder gets "
    "attention.png; no extension means .png); checked writable before evaluating.",
)
flags.DEFINE_integer("num_plots", 3, "Examples in the attention plot.", lower_bound=1)
flags.mark_flag_as_required("export_dir")

FLAGS = flags.FLAGS


def _evaluate():
    from kerasgen.evaluation.export_evaluation import evaluate_export
    from kerasgen.evaluation.perplexity import evaluate_language_model
    from kerasgen.serving.loading import LoadedExport

    check_finite_flags(DecodingConfig, names=["length_penalty"])
    # What to evaluate on, read the same way for both families (see the flags' help).
    data = dict(
        data_path=FLAGS.data_path,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        batch_size=FLAGS.batch_size,
    )
    if "generate" in LoadedExport(FLAGS.export_dir).signature_names:  # a language model
        evaluate_language_model(FLAGS.export_dir, **data)
        return

    evaluate_export(
        FLAGS.export_dir,
        **data,
        splits=FLAGS.split,
        max_examples=FLAGS.max_examples,
        length_penalty=FLAGS.length_penalty,
        max_new_tokens=FLAGS.max_new_tokens,
        plot_path=FLAGS.plot_attention,
        num_plots=FLAGS.num_plots,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    run_reporting_user_errors("kerasgen.evaluate", _evaluate)


if __name__ == "__main__":
    app.run(main)
