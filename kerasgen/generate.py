"""Command line: generate text with any kerasgen export, through its signatures alone.

    python -m kerasgen.generate --export_dir=exports/text_generator --prompt="ANNA:" --prompt=""
    printf 'ANNA:\\nBEN:\\n' | python -m kerasgen.generate --export_dir=exports/text_generator/1
    python -m kerasgen.generate --export_dir=... --prompt="ANNA:" --num_beams=4

Only `tensorflow` and `tensorflow_text` are needed to run an export; this command adds flags and
printing around its `generate` and `beam_search` signatures.
"""

from kerasgen.cli import quiet_tensorflow_logs, run_reporting_user_errors

quiet_tensorflow_logs()

import sys  # noqa: E402

from absl import app, flags  # noqa: E402

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
flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate per prompt.", lower_bound=0)
flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 = greedy.", lower_bound=0.0)
flags.DEFINE_integer("top_k", 0, "Keep the k most likely tokens; 0 = off.", lower_bound=0)
flags.DEFINE_float(
    "top_p", 1.0, "Nucleus sampling mass; 1 = off.", lower_bound=0.0, upper_bound=1.0
)
flags.DEFINE_integer("seed", -1, "Sampling seed (row i uses seed + i); negative = fresh.")
flags.DEFINE_integer(
    "num_beams",
    1,
    "Beam search when > 1: prints the export's n-best list (its beam width is fixed at export).",
    lower_bound=1,
)
flags.DEFINE_float("length_penalty", 0.6, "Beam search length penalty (GNMT alpha).")
flags.DEFINE_integer("batch_size", 32, "Prompts per call.", lower_bound=1)

FLAGS = flags.FLAGS


def _prompts():
    if FLAGS.prompt is not None:
        return list(FLAGS.prompt)
    return [line.rstrip("\n") for line in sys.stdin]


def _run():
    from kerasgen.serving.loading import load_export

    export = load_export(FLAGS.export_dir)
    prompts = _prompts()
    progress = None
    if len(prompts) > FLAGS.batch_size:
        import keras

        progress = keras.utils.Progbar(len(prompts), unit_name="prompt")
    for start in range(0, len(prompts), FLAGS.batch_size):
        batch = prompts[start : start + FLAGS.batch_size]
        if FLAGS.num_beams > 1:
            results = export.beam_search(batch, length_penalty=FLAGS.length_penalty)
            for prompt, (texts, scores) in zip(batch, results, strict=True):
                for rank, (text, score) in enumerate(zip(texts, scores, strict=True), start=1):
                    print(f"[{rank}] ({score:.3f}) {prompt}{text}")
                print()
        else:
            texts = export.generate(
                batch,
                max_new_tokens=FLAGS.max_new_tokens,
                temperature=FLAGS.temperature,
                top_k=FLAGS.top_k,
                top_p=FLAGS.top_p,
                seed=FLAGS.seed if FLAGS.seed < 0 else FLAGS.seed + start,
            )
            for prompt, text in zip(batch, texts, strict=True):
                print(f"{prompt}{text}")
                print()
        if progress is not None:
            progress.add(len(batch))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    run_reporting_user_errors("kerasgen.generate", _run)


if __name__ == "__main__":
    app.run(main)
