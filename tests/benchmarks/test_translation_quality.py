"""benchmarks/translation_quality.py end to end at tiny sizes, and its notes section.

The end-to-end test runs the script as a user does, on ~200 generated pairs (numbers in words
to their digits), with both encoder-decoder families' tiny presets and a 45-second budget each,
then checks the table against the runs' own work folders.
"""

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import time

import pytest
import tensorflow as tf

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPOSITORY, "benchmarks", "translation_quality.py")
MODELS = ("seq2seq_attention_tiny", "transformer_tiny")

_ONES = "zero one two three four five six seven eight nine".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()


def _in_words(number):
    """English words of 10 <= number < 1000, e.g. 342 -> 'three hundred forty two'."""
    hundreds, rest = divmod(number, 100)
    words = [_ONES[hundreds], "hundred"] if hundreds else []
    if 10 <= rest < 20:
        words.append(_TEENS[rest - 10])
    elif rest:
        tens, ones = divmod(rest, 10)
        words += ([_TENS[tens]] if tens else []) + ([_ONES[ones]] if ones else [])
    return " ".join(words)


def _write_pairs(path, pairs):
    """Lines `<a in words> and <b in words><TAB><digits of a> , <digits of b>`: targets of 5
    to 7 words, so BLEU has 4-grams to count."""
    with open(path, "w", encoding="utf-8") as f:
        for a, b in pairs:
            f.write(f"{_in_words(a)} and {_in_words(b)}\t{' '.join(str(a))} , {' '.join(str(b))}\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder with `train.tsv` (200 pairs) and `validation.tsv` (40)."""
    folder = tmp_path_factory.mktemp("numbers")
    generator = random.Random(0)
    pairs = [(generator.randrange(10, 1000), generator.randrange(10, 1000)) for _ in range(240)]
    _write_pairs(folder / "train.tsv", pairs[:200])
    _write_pairs(folder / "validation.tsv", pairs[200:])
    return folder


def _load_script():
    spec = importlib.util.spec_from_file_location("translation_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numbers_in_words():
    assert [_in_words(n) for n in (10, 19, 20, 42, 100, 305, 990, 999)] == [
        "ten", "nineteen", "twenty", "forty two", "one hundred", "three hundred five",
        "nine hundred ninety", "nine hundred ninety nine",
    ]  # fmt: skip


NOTES = """# notes

## Encoder-decoder (seq2seq) with attention

Text of the part.

### Seq2seq quality

A table.

## GPT (decoder-only Transformer)

More.
"""


def test_write_notes_adds_the_section_at_the_end_of_the_encoder_decoder_part(tmp_path):
    script = _load_script()
    path = tmp_path / "BUILD_NOTES.md"
    path.write_text(NOTES, encoding="utf-8")
    script.write_notes(str(path), "first figures")
    section = (
        "### Translation on real sentence pairs (Multi30k Czech→English)\n\n"
        "<!-- translation_quality:begin -->\nfirst figures\n<!-- translation_quality:end -->\n"
    )
    assert path.read_text(encoding="utf-8") == NOTES.replace(
        "A table.\n\n## GPT", f"A table.\n\n{section}\n## GPT"
    )
    # A second run replaces the figures between the markers, wherever the lead moved them.
    script.write_notes(str(path), "second figures")
    assert path.read_text(encoding="utf-8") == NOTES.replace(
        "A table.\n\n## GPT", f"A table.\n\n{section.replace('first', 'second')}\n## GPT"
    )


def test_write_notes_without_an_encoder_decoder_part_appends_at_the_end(tmp_path):
    script = _load_script()
    path = tmp_path / "BUILD_NOTES.md"
    path.write_text("# notes\n\n## GPT\n\nMore.\n", encoding="utf-8")
    script.write_notes(str(path), "figures")
    assert path.read_text(encoding="utf-8") == (
        "# notes\n\n## GPT\n\nMore.\n\n"
        "### Translation on real sentence pairs (Multi30k Czech→English)\n\n"
        "<!-- translation_quality:begin -->\nfigures\n<!-- translation_quality:end -->\n"
    )


def _run(*flags):
    return subprocess.run(
        [sys.executable, SCRIPT, *flags], capture_output=True, text=True, cwd=REPOSITORY
    )


def test_a_data_folder_without_its_files_is_one_line(tmp_path):
    result = _run(f"--data={tmp_path}")
    assert result.returncode != 0
    # TensorFlow's start-up lines come first (its C++ logging starts before Python's).
    assert result.stderr.strip().splitlines()[-1] == (
        f"--data={tmp_path}: no train.tsv in it (source<TAB>target lines)"
    )
    assert "Traceback" not in result.stderr


def test_a_language_model_is_refused_before_any_training(data, tmp_path):
    result = _run(f"--data={data}", "--models=gpt_tiny", f"--output={tmp_path}")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "--models: gpt_tiny is a language model, not an encoder-decoder"
    )
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


def _table_rows(stdout):
    """`{model: [cells]}` of the quality table printed last."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in MODELS:
            rows[cells[0]] = cells
    return rows


def test_bleu_curve_scores_each_epochs_weights(data, tmp_path):
    """Two fixed epochs in-process (what the subprocess runs), then the curve of their
    checkpoints: the kept epoch's point is the BLEU of the trained model itself."""
    from kerasgen.data.parallel_corpus import read_tsv_pairs
    from kerasgen.evaluation.translation_quality import evaluate_translator, greedy_translator
    from kerasgen.training import TrainConfig, service_for, train_and_evaluate
    from kerasgen.training.resume import read_finished

    script = _load_script()
    workdir = str(tmp_path / "run")
    config = TrainConfig.for_model(
        "seq2seq_attention_tiny", data_path=str(data / "train.tsv"), tokenizer="word",
        epochs=2, export=False, num_samples=0, verbose=0,
    )  # fmt: skip
    launched = time.time()
    train_and_evaluate(config, workdir, log=lambda line: None)
    ended = time.time()
    pairs = read_tsv_pairs(str(data / "validation.tsv"))
    service, _ = service_for(workdir)
    max_new_tokens = service.config.max_new_tokens_cap
    translator = greedy_translator(service.signatures(), max_new_tokens=max_new_tokens)
    kept_bleu = evaluate_translator(translator, pairs)[0]["bleu"]
    assert kept_bleu > 0  # else zeroed weights below could score the same
    # Weights that translate nothing well: the curve must score the checkpoints', not these.
    for weight in service.model.weights:
        weight.assign(tf.zeros_like(weight))

    curve = script.bleu_curve(
        service, workdir, pairs, launched=launched, max_new_tokens=max_new_tokens,
        bleu_tokenize="13a",
    )  # fmt: skip

    assert [epoch for epoch, _, _ in curve] == [1, 2]
    minutes = [m for _, m, _ in curve]
    assert 0 < minutes[0] <= minutes[1] <= (ended - launched) / 60
    kept_epoch = read_finished(workdir).best_epoch + 1
    assert curve[kept_epoch - 1][2] == kept_bleu


def _result(model, **changes):
    """A `measure` result with round figures."""
    quality = dict(bleu=12.345, chrf=40.0, bleu_report="BLEU|a = 12.35", chrf_report="chrF2|b = 40")
    result = dict(
        model=model, parameters=1234567, minutes=29.96, epochs=11.5, steps=5750,
        steps_per_epoch=500, kept_epoch=9, stopped_early=False, greedy=quality,
        beam=dict(quality, bleu=13.0, chrf=41.25), beam_label="beam (4)",
        curve=[(1, 2.5, 5.0), (2, 5.04, 10.26)],
    )  # fmt: skip
    return dict(result, **changes)


def test_tables():
    script = _load_script()
    results = [
        _result("seq2seq_attention_large"),
        _result("transformer", epochs=3, steps_per_epoch=None, kept_epoch=None,
                stopped_early=True, curve=[]),
    ]  # fmt: skip
    assert script.quality_table(results).splitlines()[2:] == [
        "| seq2seq_attention_large | 1,234,567 | 30.0 | 11.5 (kept 9) | 5,750 (500) | 12.35 | 40.00 | 13.00 | 41.25 |",
        "| transformer | 1,234,567 | 30.0 | 3 (kept last, early stop) | 5,750 (a pass) | 12.35 | 40.00 | 13.00 | 41.25 |",
    ]
    assert script.curve_lines(results).splitlines() == [
        "- seq2seq_attention_large (epochs 1–2; minutes → BLEU): 2.5 → 5.0 · 5.0 → 10.3",
        "- transformer: no epoch ended, so no checkpoint to score",
    ]
    assert script.curve_lines([_result("transformer", curve=None)]) == ""  # --nocurve
    assert script.signatures(results) == ["BLEU|a", "chrF2|b"]


# Two trainings of 45 s (a budget-sized run reserves ~20 s for its evaluation and export, so a
# shorter budget ends before its first epoch), start-up and evaluations: about 3 minutes.
@pytest.mark.slow
def test_trains_evaluates_and_writes_the_notes(data, tmp_path):
    output, notes = tmp_path / "runs", tmp_path / "BUILD_NOTES.md"
    with open(os.path.join(REPOSITORY, "BUILD_NOTES.md"), encoding="utf-8") as f:
        original = f.read()
    notes.write_text(original, encoding="utf-8")
    result = _run(
        f"--data={data}",
        f"--models={','.join(MODELS)}",
        "--tokenizer=word",
        "--time_budget_seconds=45",
        f"--output={output}",
        "--write_notes",
        f"--notes_path={notes}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    from kerasgen.training import load_trained

    rows = _table_rows(result.stdout)
    assert sorted(rows) == sorted(MODELS)
    for model in MODELS:
        workdir = output / model / "workdir"
        trained, _, config = load_trained(str(workdir))
        assert config.model == model and config.tokenizer == "word"
        assert config.time_budget_seconds == 45
        with open(workdir / "training.json", encoding="utf-8") as f:
            finished = json.load(f)
        _, parameters, minutes, epochs, steps, *scores = rows[model]
        assert parameters == f"{trained.count_params():,}"
        assert 0 < float(minutes) < 5
        # A budget-sized run: its epochs are its plan's (steps per epoch in config.json).
        trained_epochs = finished["global_step"] / config.steps_per_epoch
        kept = "last" if finished["best_epoch"] is None else str(finished["best_epoch"] + 1)
        early = ", early stop" if finished["stopped_early"] else ""
        assert epochs == f"{trained_epochs:.1f} (kept {kept}{early})"
        assert steps == f"{finished['global_step']:,} ({config.steps_per_epoch:,})"
        assert len(scores) == 4 and all(0 <= float(score) <= 100 for score in scores)
        # The curve: one point per epoch checkpoint, at increasing minutes.
        checkpoints = sorted(os.listdir(workdir / "checkpoints"))
        epochs_saved = [name for name in checkpoints if name.startswith("epoch-")]
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"- {model}"))
        minutes_seen = [float(m) for m in re.findall(r"([0-9.]+) → [0-9.]+", line)]
        assert len(minutes_seen) == len(epochs_saved)
        assert minutes_seen == sorted(minutes_seen) and all(
            0 < m <= float(minutes) for m in minutes_seen
        )
        if not epochs_saved:  # a busy machine may spend the budget before an epoch ends
            assert line == f"- {model}: no epoch ended, so no checkpoint to score"
        if finished["best_epoch"] is not None:
            # The export holds the kept epoch's weights: its greedy BLEU is that epoch's point.
            point = re.search(
                rf"^  epoch {finished['best_epoch'] + 1} \([0-9.]+ min\): greedy BLEU ([0-9.]+)$",
                result.stdout.split(f"{model}: greedy BLEU of each epoch's weights")[1],
                flags=re.M,
            )
            assert point.group(1) == scores[0]
        assert (output / model / "train.log").read_text(encoding="utf-8").strip()
    assert "BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in result.stdout
    assert "chrF2|nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:" in result.stdout

    written = notes.read_text(encoding="utf-8")
    begin, end = "<!-- translation_quality:begin -->", "<!-- translation_quality:end -->"
    section = written[written.index(begin) : written.index(end)]
    assert "### Translation on real sentence pairs (Multi30k Czech→English)" in written
    assert sorted(_table_rows(section)) == sorted(MODELS)
    prose = " ".join(section.split())  # the notes' paragraphs are wrapped
    assert (
        "`python benchmarks/translation_quality.py --data=<data> "
        "--models=seq2seq_attention_tiny,transformer_tiny --tokenizer=word "
        "--time_budget_seconds=45`"
    ) in prose
    assert str(tmp_path) not in section  # no path of the machine
    # Nothing else of the notes changed.
    assert _without_section(written) == _without_section(original)


def _without_section(notes):
    """`notes` without the benchmark's section (heading, markers and what they hold)."""
    return re.sub(
        r"(### Translation on real sentence pairs \(Multi30k Czech→English\)\n\n)?"
        r"<!-- translation_quality:begin -->.*?<!-- translation_quality:end -->\n\n?",
        "",
        notes,
        flags=re.S,
    )
