"""Encoder-decoder quality: the default date run, and attention against none on long inputs.

    python benchmarks/seq2seq_quality.py --task=dates      # the default run, timed, evaluated
    python benchmarks/seq2seq_quality.py --task=reversal   # seq2seq vs seq2seq_attention
    python benchmarks/seq2seq_quality.py --task=reversal --write_notes   # into BUILD_NOTES.md

Every figure comes from a real training run (`train_and_evaluate`, what `python -m
kerasgen.train` calls) and from the exported SavedModel (`evaluate_export`, what `python -m
kerasgen.evaluate` calls), greedy and beam search. With `--write_notes` the task's table replaces
its block between `<!-- seq2seq_quality:begin -->` and `<!-- seq2seq_quality:end -->`.
"""

import argparse
import os
import re
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasgen.evaluation.export_evaluation import evaluate_export  # noqa: E402
from kerasgen.evaluation.translation_quality import format_quality_table  # noqa: E402
from kerasgen.training import TrainConfig, train_and_evaluate  # noqa: E402

NOTES = os.path.join(os.path.dirname(__file__), "..", "BUILD_NOTES.md")


def run(model, dataset, workdir, *, splits, epochs=None, plot=None):
    overrides = dict(dataset=dataset, export_dir=os.path.join(workdir, "exports"), verbose=2)
    if epochs is not None:
        overrides["epochs"] = epochs
    config = TrainConfig.for_model(model, **overrides)
    started = time.monotonic()
    result = train_and_evaluate(config, os.path.join(workdir, model))
    wall = time.monotonic() - started
    rows = evaluate_export(result.export_path, dataset=dataset, splits=splits, plot_path=plot)
    return config, result, wall, rows


def dates(workdir):
    config, result, wall, rows = run(
        "seq2seq_attention", "kerasgen_dates", workdir, splits=["validation", "test"]
    )
    return (
        f"Date normalization, default run: `python -m kerasgen.train --model=seq2seq_attention` "
        f"({config.epochs} epochs of batch {config.batch_size}): {result.train_seconds:.0f} s of "
        f"training, {wall:.0f} s from start to export, on this 2-core machine.\n\n"
        + format_quality_table(rows)
    )


def reversal(workdir, epochs):
    tables = []
    for model in ("seq2seq", "seq2seq_attention"):
        config, result, wall, rows = run(
            model, "kerasgen_reversal", workdir, splits=["validation", "test", "longer"],
            epochs=epochs,
        )  # fmt: skip
        tables += [(f"{model} ({label})", d, q, n) for label, d, q, n in rows]
        print(f"{model}: {result.train_seconds:.0f} s of training, {wall:.0f} s in all")
    return (
        f"Reversal (`kerasgen_reversal`; train 4–30 letters, 80% of them ≤16; `test` 22–30, "
        f"`longer` 31–40): `python -m kerasgen.train --model=<model> --dataset=kerasgen_reversal "
        f"--epochs={epochs}`, then `python -m kerasgen.evaluate`.\n\n"
        + format_quality_table(tables)
    )


def write_notes(task, text):
    with open(NOTES, encoding="utf-8") as f:
        notes = f.read()
    begin, end = "<!-- seq2seq_quality:begin -->", "<!-- seq2seq_quality:end -->"
    block = re.search(re.escape(begin) + r"(.*?)" + re.escape(end), notes, re.S)
    if block is None:
        raise SystemExit(f"{NOTES}: no {begin} ... {end} block")
    sections = dict(re.findall(r"<!-- (\w+) -->\n(.*?)\n<!-- /\1 -->", block.group(1), re.S))
    sections[task] = text
    body = "".join(
        f"\n<!-- {name} -->\n{sections[name]}\n<!-- /{name} -->\n" for name in sorted(sections)
    )
    with open(NOTES, "w", encoding="utf-8") as f:
        f.write(notes[: block.start(1)] + body + notes[block.end(1) :])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["dates", "reversal"], required=True)
    parser.add_argument("--epochs", type=int, default=3, help="reversal: epochs per model")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--write_notes", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix=f"seq2seq_{args.task}_")
    text = dates(workdir) if args.task == "dates" else reversal(workdir, args.epochs)
    print(text)
    if args.write_notes:
        write_notes(args.task, text)


if __name__ == "__main__":
    main()
