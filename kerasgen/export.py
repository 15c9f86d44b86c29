"""Command line: export a trained work folder, or check an export for TensorFlow Serving.

    python -m kerasgen.export --workdir=workdir [--version=N] [--xla] [--num_beams=4]
    python -m kerasgen.export --check=exports/text_generator/1

`--check` lists every op of the SavedModel and fails (exit 1) if one is missing from a stock
`tensorflow_model_server` (core TensorFlow plus tensorflow-text) or is a cuDNN-only kernel, or
if a variable cannot be read back from the export's variable files.
"""

from kerasgen.cli import quiet_tensorflow_logs, run_reporting_user_errors

quiet_tensorflow_logs()

import dataclasses  # noqa: E402

from absl import app, flags  # noqa: E402

from kerasgen.config_flags import define_flags, flag_values  # noqa: E402
from kerasgen.serving import DecodingConfig  # noqa: E402

flags.DEFINE_string("check", None, "A SavedModel folder to check for TensorFlow Serving.")
flags.DEFINE_string(
    "workdir", None, "A finished training work folder to export, of any model family."
)
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
# Without these flags the export gets its model family's decoding defaults.
_DECODING_FLAGS = ["max_new_tokens", "temperature", "num_beams", "length_ratio", "length_offset"]
define_flags(DecodingConfig, names=_DECODING_FLAGS)

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
    from kerasgen.serving import check_version, export_service
    from kerasgen.tasks import task_for
    from kerasgen.training import service_for
    from kerasgen.work_folder import WorkFolder

    if FLAGS.version is not None:
        check_version(FLAGS.version)  # before the minutes of loading and tracing
    folder = WorkFolder(FLAGS.workdir)
    folder.require_finished()
    decoding = task_for(folder.read_config().model).default_decoding()
    given = flag_values(DecodingConfig, names=_DECODING_FLAGS, only_present=True)
    if "max_new_tokens" in given:
        given["max_new_tokens_cap"] = max(decoding.max_new_tokens_cap, given["max_new_tokens"])
    service, config = service_for(
        FLAGS.workdir,
        dataclasses.replace(decoding, **given),
        jit_compile=FLAGS.xla,
        # An explicit --length_ratio wins over the run's measured limit, 0 (off) included.
        measured_limit="length_ratio" not in given,
    )
    path = export_service(
        service,
        FLAGS.export_dir,
        config.model,
        version=FLAGS.version,
        metadata={"train_config": dataclasses.asdict(config), "workdir": FLAGS.workdir},
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
