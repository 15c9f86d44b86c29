"""Command line: generate text with any kerasgen export, through its signatures alone.

    python -m kerasgen.generate --export_dir=exports/text_generator --prompt="ANNA:" --prompt=""
    printf 'ANNA:\\nBEN:\\n' | python -m kerasgen.generate --export_dir=exports/text_generator/1
    python -m kerasgen.generate --export_dir=... --prompt="ANNA:" --num_beams=4
    python -m kerasgen.generate --export_dir=... --prompt="ANNA:" --stop="BEN:" --num_samples=3 \\
        --repetition_penalty=1.2 --show_logprobs
    echo "March 3, 2021" | python -m kerasgen.generate --export_dir=exports/seq2seq_attention

A language model continues each prompt (`generate`, `beam_search`); an encoder-decoder
translates each prompt as a source (`translate`, `beam_search`); with any generation control
(`--stop`, `--repetition_penalty`, `--no_repeat_ngram_size`, `--min_new_tokens`,
`--num_samples`, `--show_logprobs`) the `*_with_controls` signature. Standard input is read as
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
# The generation controls: any of them given, the export's `*_with_controls` signature is used.
flags.DEFINE_multi_string(
    "stop", None, "A stop sequence (repeatable): the text ends before its first occurrence."
)
flags.DEFINE_float(
    "repetition_penalty", 1.0, "CTRL penalty on tokens already present (> 0); 1 = off."
)
flags.DEFINE_integer(
    "no_repeat_ngram_size", 0, "No n-gram of this size occurs twice; 0 = off.", lower_bound=0
)
flags.DEFINE_integer(
    "min_new_tokens", 0, "No end token or stop sequence before this many tokens.", lower_bound=0
)
flags.DEFINE_integer("num_samples", 1, "Samples per prompt.", lower_bound=1)
flags.DEFINE_boolean(
    "show_logprobs",
    False,
    "After each text, a table of its tokens: log-probability and the most likely alternatives.",
)

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


def _translation_calls(export):
    """(sample, beam_search) over a translation export's `translate` and `beam_search`, with
    the same arguments and results as `LoadedExport.generate` and `.beam_search`; `export` is
    the `LoadedExport` already loaded (a second load would double the start-up)."""
    import tensorflow as tf

    def call(name, **inputs):
        return export._signature(name)(**inputs)

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


def _controls_given():
    return bool(
        [stop for stop in FLAGS.stop or [] if stop]
        or FLAGS.repetition_penalty != 1.0
        or FLAGS.no_repeat_ngram_size
        or FLAGS.min_new_tokens
        or FLAGS.num_samples > 1
        or FLAGS.show_logprobs
    )


def _controls_call(export, text_input, signature_name):
    """`sample(texts, seed=...)` over the export's controls signature with the control flags:
    per text, a list of samples, each `{text, token_texts, token_log_probs, top_token_texts,
    top_log_probs}` cut to its own tokens."""
    import tensorflow as tf

    from kerasgen.serving.loading import int32_vector

    if signature_name not in export.signature_names:
        raise UserInputError(
            f"{export.path}: the export has no {signature_name!r} signature (made before the "
            "generation controls); export it again to use --stop, --num_samples, ..."
        )
    if "top_logprobs" not in export.input_names(signature_name):
        raise UserInputError(
            f"{export.path}: the export's {signature_name!r} signature has no top_logprobs "
            "input (made before it); export it again to use the generation controls"
        )
    signature = export._signature(signature_name)
    stops = [stop.encode("utf-8") for stop in FLAGS.stop or []]
    # --show_logprobs shows as many alternatives per token as the export allows.
    top = export.metadata().get("decoding", {}).get("max_top_logprobs", 0)
    top = top if FLAGS.show_logprobs else 0

    def decoded(values):
        return [v.decode("utf-8", errors="replace") for v in values.tolist()]

    def sample(texts, *, seed):
        count = len(texts)
        outputs = signature(
            **{text_input: tf.constant(texts, tf.string)},
            max_new_tokens=int32_vector("max_new_tokens", [FLAGS.max_new_tokens] * count),
            temperature=tf.fill([count], float(FLAGS.temperature)),
            top_k=int32_vector("top_k", [FLAGS.top_k] * count),
            top_p=tf.fill([count], float(FLAGS.top_p)),
            seed=int32_vector("seed", [seed + i if seed >= 0 else -1 for i in range(count)]),
            stop_sequences=tf.constant([stops] * count, tf.string, shape=[count, len(stops)]),
            repetition_penalty=tf.fill([count], float(FLAGS.repetition_penalty)),
            no_repeat_ngram_size=int32_vector(
                "no_repeat_ngram_size", [FLAGS.no_repeat_ngram_size] * count
            ),
            min_new_tokens=int32_vector("min_new_tokens", [FLAGS.min_new_tokens] * count),
            num_samples=int32_vector("num_samples", [FLAGS.num_samples] * count),
            top_logprobs=int32_vector("top_logprobs", [top] * count),
        )
        values = {key: value.numpy() for key, value in outputs.items()}
        rows = []
        for row in range(count):
            samples = []
            for i in range(FLAGS.num_samples):
                tokens = values["num_tokens"][row, i]
                samples.append(
                    {
                        "text": values["text"][row, i].decode("utf-8", errors="replace"),
                        "token_texts": decoded(values["token_texts"][row, i, :tokens]),
                        "token_log_probs": values["token_log_probs"][row, i, :tokens].tolist(),
                        "top_token_texts": [
                            decoded(top) for top in values["top_token_texts"][row, i, :tokens]
                        ],
                        "top_log_probs": values["top_log_probs"][row, i, :tokens].tolist(),
                    }
                )
            rows.append(samples)
        return rows

    return sample


def logprob_table(sample):
    """The lines of `--show_logprobs`: one per generated token (its text quoted, so spaces and
    line ends show; "" is a reserved token such as the end), its log-probability, and the most
    likely alternatives with theirs."""
    lines = [f"  {'token':<12} {'log_prob':>9}  alternatives"]
    for text, log_prob, top_texts, top_log_probs in zip(
        sample["token_texts"],
        sample["token_log_probs"],
        sample["top_token_texts"],
        sample["top_log_probs"],
        strict=True,
    ):
        alternatives = ", ".join(
            f"{t!r} {p:.3f}" for t, p in zip(top_texts, top_log_probs, strict=True)
        )
        lines.append(f"  {text!r:<12} {log_prob:>9.3f}  {alternatives}")
    return lines


def _run():
    check_finite_flags(DecodingConfig, names=["temperature", "top_p", "length_penalty"])
    prompts = _prompts()  # before loading, so that empty input fails at once

    from kerasgen.serving.loading import load_export

    export = load_export(FLAGS.export_dir)
    _check_beam_width(export)
    # An encoder-decoder translates each prompt, which its output does not repeat.
    translation = "translate" in export.signature_names
    if translation:
        sample, beam_search = _translation_calls(export)
    else:
        sample, beam_search = export.generate, export.beam_search
    controls = None
    if FLAGS.num_beams == 1 and _controls_given():
        text_input = "source" if translation else "prompt"
        signature_name = f"{'translate' if translation else 'generate'}_with_controls"
        controls = _controls_call(export, text_input, signature_name)
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
        elif controls is not None:
            rows = controls(batch, seed=FLAGS.seed if FLAGS.seed < 0 else FLAGS.seed + start)
            for prompt, samples in zip(batch, rows, strict=True):
                for number, result in enumerate(samples, start=1):
                    label = f"[{number}] " if FLAGS.num_samples > 1 else ""
                    print(f"{label}{'' if translation else prompt}{result['text']}")
                    if FLAGS.show_logprobs:
                        print("\n".join(logprob_table(result)))
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
