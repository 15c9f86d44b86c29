"""Translation on real sentence pairs: each recipe trained by the user's command, then scored.

The benchmark of issue 13's fifth item. For each model of `--models`, one after the other:

1. **Training, as a user types it** (a subprocess, from the repository):

       python -m kerasgen.train --model=M --data_path=<data>/train.tsv \\
           --tokenizer=sentencepiece --time_budget_seconds=1800

   plus only the flags that say where files go (`--workdir` and `--export_dir` under
   `--output`) and `--verbose=2`; its output goes to `<output>/M/train.log`. The training wall
   time is from launch to exit of that command, so Python and TensorFlow start-up, reading the
   data, learning the tokenizers, the final evaluation and the export are all included.
2. **The test set**: the export is evaluated on `<data>/validation.tsv` (held out: the trainer
   validates on a split of `train.tsv`) by `kerasgen.evaluation.evaluate_export`, what
   `python -m kerasgen.evaluate --export_dir=... --data_path=<data>/validation.tsv` runs:
   sacrebleu's BLEU (13a, cased; over characters for a character-level target, as the
   evaluation does) and chrF, greedy and beam search, with sacrebleu's signature strings.
3. **BLEU against training minutes** (`--curve`, the default; `--nocurve` skips it): the run
   keeps the weights of every epoch (`checkpoints/epoch-NNN.weights.h5` in its work folder);
   each is loaded into the trained model and greedy-translates `validation.tsv` (through the
   same signatures an export serves, with greedy decoding's length limit the evaluation uses).
   An epoch's minutes are from the launch of the training command to its checkpoint file's
   modification time, so they count the start-up as the wall time does. The last checkpoint
   may be of a part epoch (where the time budget stopped the run); the export holds the kept
   (best) epoch's weights and decodes with the same limits, so its greedy BLEU is that
   epoch's point.

Usage (from the repository; about `--time_budget_seconds` per model, plus the evaluations):

    python benchmarks/translation_quality.py --data=../shared/data/multi30k_cs_en
    python benchmarks/translation_quality.py --data=... --write_notes    # into BUILD_NOTES.md
    python benchmarks/translation_quality.py --data=... --models=transformer_tiny \\
        --tokenizer=word --time_budget_seconds=20 --nocurve              # a smoke run

`--write_notes` replaces the section between `<!-- translation_quality:begin -->` and
`<!-- translation_quality:end -->` in `--notes_path` (BUILD_NOTES.md), or, without them, adds
the section "### Translation on real sentence pairs (Multi30k Czech→English)" at the end of the
notes' "Encoder-decoder" part (at the end of the file if there is none).
"""

import argparse
import datetime
import glob
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

from kerasgen.cli import quiet_tensorflow_logs, run_reporting_user_errors

quiet_tensorflow_logs()

from kerasgen.data.parallel_corpus import read_tsv_pairs  # noqa: E402
from kerasgen.evaluation.export_evaluation import evaluate_export  # noqa: E402
from kerasgen.evaluation.translation_quality import (  # noqa: E402
    evaluate_translator,
    greedy_translator,
)
from kerasgen.models import presets  # noqa: E402
from kerasgen.training import service_for  # noqa: E402
from kerasgen.training.resume import load_model_weights_only, read_finished  # noqa: E402
from kerasgen.work_folder import WorkFolder  # noqa: E402

# `notes` sits beside this file; put it on the path also when a test loads the script by path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from notes import at_the_end, write_section  # noqa: E402

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = "seq2seq_attention_large,transformer"
SECTION = "### Translation on real sentence pairs (Multi30k Czech→English)"
NOTES_NAME = "translation_quality"  # the markers <!-- translation_quality:begin/end -->
LENGTH_PENALTY = 0.6  # beam search's, as `python -m kerasgen.evaluate` ranks beams by default
# The BUILD_NOTES part the section belongs to when its markers are absent.
PART = "## Encoder-decoder"

# `checkpoints/epoch-{epoch:03d}.weights.h5` split around its epoch number.
_EPOCH_PREFIX, _EPOCH_SUFFIX = WorkFolder.EPOCH_WEIGHTS.split("{epoch:03d}")


def training_flags(model, args):
    """The flags a user gives `python -m kerasgen.train`, `<data>` standing for the folder."""
    return [
        f"--model={model}",
        "--data_path=<data>/train.tsv",
        f"--tokenizer={args.tokenizer}",
        f"--time_budget_seconds={args.time_budget_seconds:g}",
    ]


def train(model, args, output):
    """Runs the training command of `model`; returns its folders, wall time and launch time.

    Returns:
        `{"workdir", "export_dir", "log", "seconds", "launched"}`; `launched` is the wall-clock
        time (`time.time()`) the command started, the origin of the curve's minutes.
    """
    folder = os.path.join(output, model)
    workdir, export_dir = os.path.join(folder, "workdir"), os.path.join(folder, "export")
    if os.path.exists(workdir):
        # A rerun would resume or reload the finished run: its time would not be a training's.
        sys.exit(f"{workdir} holds an earlier run; give another --output")
    os.makedirs(folder, exist_ok=True)
    data_path = os.path.join(os.path.abspath(args.data), "train.tsv")
    flags = [f.replace("<data>/train.tsv", data_path) for f in training_flags(model, args)]
    command = [
        args.python,
        "-m",
        "kerasgen.train",
        *flags,
        f"--workdir={workdir}",
        f"--export_dir={export_dir}",
        "--verbose=2",
    ]
    log_path = os.path.join(folder, "train.log")
    print(f"{model}: training (output in {log_path})", flush=True)
    with open(log_path, "w", encoding="utf-8") as log:
        launched, started = time.time(), time.monotonic()
        returncode = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY
        ).returncode
        seconds = time.monotonic() - started
    if returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = "".join(f.readlines()[-20:])
        sys.exit(f"{model}: training failed (exit code {returncode}); the end of its log:\n{tail}")
    return dict(workdir=workdir, export_dir=export_dir, log=log_path, seconds=seconds,
                launched=launched)  # fmt: skip


def epoch_checkpoints(workdir):
    """`[(epoch, path)]` of the run's per-epoch weights files, by epoch (from 1)."""
    pattern = os.path.join(workdir, _EPOCH_PREFIX + "*" + _EPOCH_SUFFIX)
    found = []
    for path in glob.glob(pattern):
        number = os.path.basename(path)[len(os.path.basename(_EPOCH_PREFIX)) : -len(_EPOCH_SUFFIX)]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def bleu_curve(service, workdir, pairs, *, launched, max_new_tokens, bleu_tokenize):
    """Greedy BLEU on `pairs` of each epoch's weights of the finished run in `workdir`.

    One service serves every epoch: its signatures read the model's variables, which each
    checkpoint overwrites in place (the same shapes), so nothing is traced again.

    Args:
        service: the run's `TranslationService` (`service_for(workdir)`); its model is left
            holding the last epoch's weights.
        workdir: the run's work folder.
        pairs: the (source, target) pairs translated.
        launched: the wall-clock time (`time.time()`) the run was launched: minutes count from it.
        max_new_tokens: greedy decoding's length limit.
        bleu_tokenize: sacrebleu's BLEU tokenization ("13a", or "char").

    Returns:
        `[(epoch, minutes since launch, BLEU)]`.
    """
    translator = greedy_translator(service.signatures(), max_new_tokens=max_new_tokens)
    points = []
    for epoch, path in epoch_checkpoints(workdir):
        minutes = (os.path.getmtime(path) - launched) / 60
        load_model_weights_only(service.model, path)
        quality, _ = evaluate_translator(translator, pairs, bleu_tokenize=bleu_tokenize)
        points.append((epoch, minutes, quality["bleu"]))
        print(f"  epoch {epoch} ({minutes:.1f} min): greedy BLEU {quality['bleu']:.2f}", flush=True)
    return points


def measure(model, args, output, test_pairs):
    """Trains `model`, evaluates its export, and (with `args.curve`) its epochs: one result."""
    run = train(model, args, output)
    print(f"{model}: trained in {run['seconds'] / 60:.1f} min; evaluating", flush=True)
    rows = evaluate_export(
        os.path.join(run["export_dir"], model),
        data_path=os.path.join(args.data, "validation.tsv"),
        max_examples=len(test_pairs),
        length_penalty=LENGTH_PENALTY,
        show_progress=False,
    )
    by_decoding = {("greedy" if decoding == "greedy" else "beam"): q for _, decoding, q, _ in rows}
    beam_label = next(decoding for _, decoding, _, _ in rows if decoding != "greedy")
    service, config = service_for(run["workdir"])
    parameters = service.model.count_params()  # before the curve loads other epochs' weights
    finished = read_finished(run["workdir"])
    curve = None
    if args.curve:
        print(f"{model}: greedy BLEU of each epoch's weights", flush=True)
        curve = bleu_curve(
            service,
            run["workdir"],
            test_pairs,
            launched=run["launched"],
            # Greedy decoding's limit in the evaluation above: the export's cap.
            max_new_tokens=service.config.max_new_tokens_cap,
            bleu_tokenize=by_decoding["greedy"]["bleu_tokenize"],
        )
    return dict(
        model=model,
        # Shown with its `<data>` placeholder, as a user reads it (not quoted for a shell).
        command="python -m kerasgen.train " + " ".join(training_flags(model, args)),
        parameters=parameters,
        minutes=run["seconds"] / 60,
        # A budget-sized run's epoch is its plan's share of the steps (`steps_per_epoch`); the
        # last may be cut short by the budget, which `finished.epochs` leaves uncounted.
        epochs=finished.global_step / config.steps_per_epoch
        if config.steps_per_epoch
        else finished.epochs,
        steps=finished.global_step,
        steps_per_epoch=config.steps_per_epoch,
        kept_epoch=None if finished.best_epoch is None else finished.best_epoch + 1,
        stopped_early=finished.stopped_early,
        greedy=by_decoding["greedy"],
        beam=by_decoding["beam"],
        beam_label=beam_label,
        curve=curve,
    )


def quality_table(results):
    """The Markdown table of the results: one row per model."""
    lines = [
        "| model | parameters | training wall time (min) | epochs trained (kept) | "
        "steps (per epoch) | BLEU greedy | chrF greedy | BLEU beam | chrF beam |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        epochs = f"{r['epochs']:.1f}" if isinstance(r["epochs"], float) else str(r["epochs"])
        kept = "last" if r["kept_epoch"] is None else str(r["kept_epoch"])
        early = ", early stop" if r["stopped_early"] else ""
        per_epoch = f"{r['steps_per_epoch']:,}" if r["steps_per_epoch"] else "a pass"
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['minutes']:.1f} | "
            f"{epochs} (kept {kept}{early}) | {r['steps']:,} ({per_epoch}) | "
            f"{r['greedy']['bleu']:.2f} | "
            f"{r['greedy']['chrf']:.2f} | {r['beam']['bleu']:.2f} | {r['beam']['chrf']:.2f} |"
        )
    return "\n".join(lines)


def curve_lines(results):
    """One line per model: greedy BLEU after each epoch, at its training minutes."""
    lines = []
    for r in results:
        if r["curve"] is None:
            continue
        if not r["curve"]:
            lines.append(f"- {r['model']}: no epoch ended, so no checkpoint to score")
            continue
        first, last = r["curve"][0][0], r["curve"][-1][0]
        points = " · ".join(f"{minutes:.1f} → {bleu:.1f}" for _, minutes, bleu in r["curve"])
        lines.append(f"- {r['model']} (epochs {first}–{last}; minutes → BLEU): {points}")
    return "\n".join(lines)


def signatures(results):
    """sacrebleu's signatures (without the scores) of the figures, each once."""
    found = []
    for r in results:
        for quality in (r["greedy"], r["beam"]):
            for report in (quality["bleu_report"], quality["chrf_report"]):
                signature = report.split(" = ")[0]
                if signature not in found:
                    found.append(signature)
    return found


def report(results, args, pairs):
    """The notes' text: how it was measured, the table, the curve, the signatures."""
    flags = [f"--models={','.join(r['model'] for r in results)}"]
    flags += [
        f"--tokenizer={args.tokenizer}",
        f"--time_budget_seconds={args.time_budget_seconds:g}",
    ]
    if not args.curve:
        flags.append("--nocurve")
    load = os.getloadavg()[0]
    beams = re.search(r"\d+", results[0]["beam_label"]).group() if results else "?"
    text = (
        f"Measured {datetime.date.today()} ({os.cpu_count()} cores; load average {load:.1f} at "
        f"the end, the machine is shared) with `python benchmarks/translation_quality.py "
        f"--data=<data> {' '.join(flags)}`, `<data>` being the folder "
        f"`{os.path.basename(os.path.normpath(args.data))}` ({pairs['train']:,} training pairs "
        f"in `train.tsv`, {pairs['validation']:,} test pairs in `validation.tsv`). Each model is "
        "trained by the command a user types, e.g. "
        f"`{results[0]['command']}` (only `--workdir`, `--export_dir` and `--verbose` added); "
        "the wall time is from its launch to its exit (start-up, tokenizers and export "
        "included). Scores are on `validation.tsv`, never seen in training, by `python -m "
        f"kerasgen.evaluate`: sacrebleu's BLEU and chrF, greedy, and beam search with {beams} "
        f"beams ranked with length penalty {LENGTH_PENALTY:g}. "
        '"Kept" is the epoch whose weights the export holds (the lowest '
        "validation loss on the trainer's split of `train.tsv`)."
    )
    # Wrapped as the notes are; a table or a list item stays on its line.
    text = textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)
    text += "\n\n" + quality_table(results)
    curve = curve_lines(results)
    if curve:
        intro = (
            "Greedy BLEU on `validation.tsv` against training minutes (each epoch's checkpoint; "
            "minutes from the launch of the training command to the checkpoint file's "
            "modification time; the last may be of a part epoch stopped by the time budget):"
        )
        text += "\n\n" + textwrap.fill(intro, width=100) + "\n\n" + curve
    return (
        text + "\n\nsacrebleu signatures:\n\n" + "\n".join(f"- `{s}`" for s in signatures(results))
    )


def write_notes(path, text):
    """Replaces the text between the markers in `path`, or adds the section with them at the
    end of its "Encoder-decoder" part (the end of the file without one)."""
    write_section(path, NOTES_NAME, text, add=at_the_end(SECTION, part=PART))


def main():
    # Unreadable data or a damaged export: one line, as the commands it runs report them.
    run_reporting_user_errors("translation_quality", _main)


def _main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder with train.tsv and validation.tsv")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="encoder-decoder presets")
    parser.add_argument("--tokenizer", default="sentencepiece", help="kerasgen.train's --tokenizer")
    parser.add_argument("--time_budget_seconds", type=float, default=1800.0)
    parser.add_argument("--output", default=None, help="work folders, exports and logs (default: "
                        "a new temporary folder)")  # fmt: skip
    parser.add_argument("--curve", dest="curve", action="store_true", default=True,
                        help="BLEU of every epoch's weights (the default)")  # fmt: skip
    parser.add_argument("--nocurve", dest="curve", action="store_false")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--write_notes", action="store_true")
    parser.add_argument("--notes_path", default="BUILD_NOTES.md")
    args = parser.parse_args()
    pairs = {}
    for split in ("train", "validation"):
        path = os.path.join(args.data, f"{split}.tsv")
        if not os.path.isfile(path):
            sys.exit(f"--data={args.data}: no {split}.tsv in it (source<TAB>target lines)")
        pairs[split] = read_tsv_pairs(path)
    if args.time_budget_seconds <= 0:
        sys.exit(f"--time_budget_seconds={args.time_budget_seconds:g}: give a positive budget")
    if args.write_notes and not os.path.isfile(args.notes_path):
        sys.exit(f"--notes_path={args.notes_path}: no such file")
    models = [model for model in args.models.split(",") if model]
    for model in models:  # before the first run, which may take half an hour
        try:
            translation = presets.is_translation_model(model)
        except ValueError as error:
            sys.exit(f"--models: {error}")
        if not translation:
            sys.exit(f"--models: {model} is a language model, not an encoder-decoder")
    output = args.output or tempfile.mkdtemp(prefix="translation_quality_")
    results = [measure(model, args, output, pairs["validation"]) for model in models]
    for r in results:
        for quality in (r["greedy"], r["beam"]):
            print(f"{r['model']}: {quality['bleu_report']}\n{r['model']}: {quality['chrf_report']}")
    text = report(results, args, {split: len(p) for split, p in pairs.items()})
    print(text)
    if args.write_notes:
        write_notes(args.notes_path, text)
        print(f"wrote {args.notes_path}")


if __name__ == "__main__":
    main()
