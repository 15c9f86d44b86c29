"""Command line: generate text with any kerasgen export, through its signatures alone.

    python -m kerasgen.generate --export_dir=exports/text_generator --prompt="ANNA:" --prompt=""
    printf 'ANNA:\\nBEN:\\n' | python -m kerasgen.generate --export_dir=exports/text_generator/1
    python -m kerasgen.generate --export_dir=... --prompt="ANNA:" --num_beams=4
    echo "March 3, 2021" | python -m kerasgen.generate --export_dir=exports/seq2seq_attention

A language model continues each prompt (`generate`, `beam_search`); an encoder-decoder
translates each prompt as a source (`translate`, `beam_search`). Standard input is read as
UTF-8, one prompt per line (invalid bytes replaced by U+FFFD, a CRLF line end stripped like
LF); empty input is an error, since nothing to do is more often a mistake than a wish.

Only `tensorflow` and `tensorflow_text` are needed to run an export; this command adds flags and
printing around its signatures.
"""

from kerasgen.cli import quiet_tensorflow_logs, run_reporting_user_errors

quiet_tensorflow_logs()

import sys  # noqa: E402

from absl import app, flags  # noqa: E402

from kerasgen.config_flags import check_finite_flags, define_flags  # noqa: E402
from kerasgen.errors import UserInputError  # noqa: E402
from kerasgen.serving.decoding_config import DecodingConfig  # noqa: E402

flags.DEFINE_string(
    "export_dir",
    None,
    "A SavedModel version folder, or a model folder (its highest version is used).",
    required=True,
)
flags.DEFINE_multi_string(
    "prompt",
    None,
    "A prompt (repeatable); without it, prompts are read from standard input, one per line.",
)
# The request's decoding parameters, with DecodingConfig's defaults and documentation.
define_flags(DecodingConfig, names=["max_new_tokens", "temperature", "top_k", "top_p"])
flags.DEFINE_integer("seed", -1, "Sampling seed (row i uses seed + i); negative = fresh.")
flags.DEFINE_integer(
    "num_beams",
    1,
    "Beam search when > 1: prints the export's n-best list. Its beam width is fixed at export: "
    "give that width.",
    lower_bound=1,
)
define_flags(DecodingConfig, names=["length_penalty"])
flags.DEFINE_integer("batch_size", 32, "Prompts per call.", lower_bound=1)

FLAGS = flags.FLAGS


def read_prompts(stream):
    """Prompts from a binary stream, one per line: UTF-8 with invalid bytes replaced (as the
    signatures do), the line end (LF or CRLF) stripped.

    Raises:
        UserInputError: when the stream holds no line at all.
    """
    text = stream.read().decode("utf-8", errors="replace")
    if not text:
        raise UserInputError(
            "no prompts: standard input is empty (give --prompt, or one prompt per line)"
        )
    lines = text.split("\n")
    if lines[-1] == "":  # the final line end closes the last line, it starts none
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _prompts():
    if FLAGS.prompt is not None:
        return list(FLAGS.prompt)
    return read_prompts(sys.stdin.buffer)


def _check_beam_width(export):
    """Refuses a `--num_beams` other than the export's beam width, which is fixed at export."""
    width = export.metadata().get("decoding", {}).get("num_beams")
    if FLAGS.num_beams > 1 and width is not None and FLAGS.num_beams != width:
        raise UserInputError(
            f"--num_beams={FLAGS.num_beams}: this export's beam search keeps {width} beams, "
            f"fixed when it was exported; give --num_beams={width}, or 1 to sample"
        )


def _translation_calls(path):
    """(sample, beam_search) over a translation export's `translate` and `beam_search`, with
    the same arguments and results as `LoadedExport.generate` and `.beam_search`."""
    import tensorflow as tf

    from kerasgen.serving.loading import invalid_argument_reason

    signatures = tf.saved_model.load(path).signatures

    def call(name, **inputs):
        try:
            return signatures[name](**inputs)
        except tf.errors.InvalidArgumentError as error:
            raise UserInputError(f"{path}: {invalid_argument_reason(error)}") from None

    def texts(strings):
        return [t.decode("utf-8", errors="replace") for t in strings.numpy().tolist()]

    def sample(sources, *, max_new_tokens, temperature, top_k, top_p, seed):
        count = len(sources)
        outputs = call(
            "translate",
            source=tf.constant(sources, tf.string),
            max_new_tokens=tf.fill([count], max_new_tokens),
            temperature=tf.fill([count], float(temperature)),
            top_k=tf.fill([count], top_k),
            top_p=tf.fill([count], float(top_p)),
            seed=tf.constant([seed + i if seed >= 0 else -1 for i in range(count)], tf.int32),
        )
        return texts(outputs["text"])

    def beam_search(sources, *, length_penalty):
        count = len(sources)
        outputs = call(
            "beam_search",
            source=tf.constant(sources, tf.string),
            length_penalty=tf.fill([count], float(length_penalty)),
        )
        rows = [texts(row) for row in tf.unstack(outputs["texts"], num=count)] if count else []
        return list(zip(rows, outputs["scores"].numpy().tolist(), strict=True))

    return sample, beam_search


def _run():
    check_finite_flags(DecodingConfig, names=["temperature", "top_p", "length_penalty"])
    prompts = _prompts()  # before loading, so that empty input fails at once

    from kerasgen.serving.loading import load_export

    export = load_export(FLAGS.export_dir)
    _check_beam_width(export)
    # An encoder-decoder translates each prompt, which its output does not repeat.
    translation = "translate" in export.signature_names
    if translation:
        sample, beam_search = _translation_calls(export.path)
    else:
        sample, beam_search = export.generate, export.beam_search
    progress = None
    if len(prompts) > FLAGS.batch_size:
        import keras

        progress = keras.utils.Progbar(len(prompts), unit_name="prompt")
    for start in range(0, len(prompts), FLAGS.batch_size):
        batch = prompts[start : start + FLAGS.batch_size]
        if FLAGS.num_beams > 1:
            results = beam_search(batch, length_penalty=FLAGS.length_penalty)
            for prompt, (texts, scores) in zip(batch, results, strict=True):
                for rank, (text, score) in enumerate(zip(texts, scores, strict=True), start=1):
                    print(f"[{rank}] ({score:.3f}) {'' if translation else prompt}{text}")
                print()
        else:
            texts = sample(
                batch,
                max_new_tokens=FLAGS.max_new_tokens,
                temperature=FLAGS.temperature,
                top_k=FLAGS.top_k,
                top_p=FLAGS.top_p,
                seed=FLAGS.seed if FLAGS.seed < 0 else FLAGS.seed + start,
            )
            for prompt, text in zip(batch, texts, strict=True):
                print(f"{'' if translation else prompt}{text}")
                print()
        if progress is not None:
            progress.add(len(batch))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    run_reporting_user_errors("kerasgen.generate", _run)


if __name__ == "__main__":
    app.run(main)
