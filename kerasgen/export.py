"""Command line: export a trained work folder, or check an export for TensorFlow Serving.

    python -m kerasgen.export --workdir=workdir [--version=N] [--xla] [--num_beams=4]
    python -m kerasgen.export --check=exports/text_generator/1

`--check` lists every op of the SavedModel and fails (exit 1) if one is missing from a stock
`tensorflow_model_server` (core TensorFlow plus tensorflow-text) or is a cuDNN-only kernel, or
if a variable cannot be read back from the export's variable files.
"""

from kerasgen.cli import quiet_tensorflow_logs, run_reporting_user_errors

quiet_tensorflow_logs()

from absl import app, flags  # noqa: E402

from kerasgen.serving import DecodingConfig  # noqa: E402

flags.DEFINE_string("check", None, "A SavedModel folder to check for TensorFlow Serving.")
flags.DEFINE_string("workdir", None, "A training work folder to export (uses model.keras).")
flags.DEFINE_string("export_dir", "exports", "TensorFlow Serving base folder.")
flags.DEFINE_integer(
    "version", None, "Version number, a positive integer (default: one above the latest)."
)
flags.DEFINE_boolean(
    "xla",
    False,
    "Compile the decode loops with XLA (for TensorFlow programs; "
    "TensorFlow Serving runs XLA only experimentally).",
)
flags.DEFINE_integer(
    "max_new_tokens", DecodingConfig.max_new_tokens, "Default generation length.", lower_bound=0
)
flags.DEFINE_float(
    "temperature", DecodingConfig.temperature, "Default temperature.", lower_bound=0.0
)
flags.DEFINE_integer("num_beams", DecodingConfig.num_beams, "Beam width.", lower_bound=1)

FLAGS = flags.FLAGS


def _check():
    from kerasgen.serving import check_serving_ops, check_variables

    counts = check_serving_ops(FLAGS.check)
    for op, count in sorted(counts.items()):
        print(f"{count:6d}  {op}")
    num_values = check_variables(FLAGS.check)
    print(
        f"OK: {len(counts)} op types, all available in tensorflow_model_server; "
        f"{num_values} saved values, all readable."
    )


def _export():
    from kerasgen.serving import LanguageModelService, check_version, export_service
    from kerasgen.training.workdir import load_trained

    if FLAGS.version is not None:
        check_version(FLAGS.version)  # before the minutes of loading and tracing
    model, tokenizer, config = load_trained(FLAGS.workdir)
    decoding = DecodingConfig(
        max_new_tokens=FLAGS.max_new_tokens,
        max_new_tokens_cap=max(DecodingConfig.max_new_tokens_cap, FLAGS.max_new_tokens),
        temperature=FLAGS.temperature,
        num_beams=FLAGS.num_beams,
    )
    service = LanguageModelService(
        model, tokenizer, decoding.fitted_to(model), jit_compile=FLAGS.xla
    )
    path = export_service(
        service,
        FLAGS.export_dir,
        config.model,
        version=FLAGS.version,
        metadata={"train_config": vars(config), "workdir": FLAGS.workdir},
    )
    print(f"Exported SavedModel to {path}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if bool(FLAGS.check) == bool(FLAGS.workdir):
        raise app.UsageError("Give exactly one of --check=SAVEDMODEL_DIR or --workdir=DIR.")
    run_reporting_user_errors("kerasgen.export", _check if FLAGS.check else _export)


if __name__ == "__main__":
    app.run(main)
