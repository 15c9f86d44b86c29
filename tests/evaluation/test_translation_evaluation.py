"""`python -m kerasgen.evaluate` on a translation export: sacrebleu's figures with their
signatures, exact match, and the checks done before any decoding."""

import re
import subprocess
import sys

import keras
import pytest
import tensorflow as tf
from sacrebleu.metrics import BLEU, CHRF

from kerasgen.data.translation_pipeline import translation_dataset
from kerasgen.evaluation import beam_translator, greedy_translator, translation_quality
from kerasgen.models.seq2seq import Seq2Seq
from kerasgen.serving import DecodingConfig, export_service
from kerasgen.serving.translation_service import TranslationService
from kerasgen.tokenizers import learn_tokenizer

WORDS = ["moon", "river", "lamp", "field", "bell", "road"]
# Two words swapped into a template, long enough for BLEU's 4-grams: the template is learned in
# a few dozen steps, the words less well, so BLEU is neither 0 nor 100.
PAIRS = [(f"{a} {b}", f"the {b} and the {a} .") for a in WORDS for b in WORDS if a != b]
DECODING = DecodingConfig(
    max_prompt_tokens=8, max_new_tokens_cap=40, max_new_tokens=40, temperature=0.0, num_beams=2
)
SIGNATURES = {
    "BLEU": r"BLEU\|nrefs:1\|case:mixed\|eff:no\|tok:13a\|smooth:exp\|version:2\.\d+\.\d+",
    "chrF": r"chrF2\|nrefs:1\|case:mixed\|eff:yes\|nc:6\|nw:0\|space:no\|version:2\.\d+\.\d+",
}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A word-to-SentencePiece Seq2Seq with attention, trained for a few steps, exported."""
    texts = tmp_path_factory.mktemp("tokenizers")
    source = learn_tokenizer("word", [s for s, _ in PAIRS], str(texts / "source"))
    target = learn_tokenizer("sentencepiece", [t for _, t in PAIRS], str(texts / "target"))
    tf.keras.utils.set_random_seed(0)
    model = Seq2Seq(source.vocab_size, target.vocab_size, embedding_dim=16, rnn_units=32,
                    attention="bahdanau")  # fmt: skip
    data = translation_dataset(
        PAIRS, source.tokenize, target.tokenize, batch_size=10, start_id=target.start_id,
        end_id=target.end_id, shuffle=True, repeat=True,
    )  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(data, epochs=1, steps_per_epoch=50, verbose=0)
    service = TranslationService(model, source, target, DECODING)
    return export_service(service, str(tmp_path_factory.mktemp("exports")), "swap")


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "test.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS[:12]), encoding="utf-8")
    return str(path)


def _evaluate(*flags):
    return subprocess.run(
        [sys.executable, "-m", "kerasgen.evaluate", *flags],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_prints_sacrebleu_bleu_and_chrf_with_signatures_for_greedy_and_beam(export, test_file):
    result = _evaluate(f"--export_dir={export}", f"--data_path={test_file}")
    assert result.returncode == 0, result.stderr[-3000:]

    # The same hypotheses, from the export's signatures in this process.
    signatures = tf.saved_model.load(export).signatures
    sources = [s for s, _ in PAIRS[:12]]
    references = [t for _, t in PAIRS[:12]]
    translators = {
        "greedy": greedy_translator(signatures, max_new_tokens=DECODING.max_new_tokens_cap),
        "beam (2)": beam_translator(signatures, length_penalty=0.6),
    }
    figures = []
    for decoding, translator in translators.items():
        hypotheses = translator(sources)
        bleu = BLEU(tokenize="13a")
        bleu_score = bleu.corpus_score(hypotheses, [references])
        chrf_score = CHRF().corpus_score(hypotheses, [references])
        figures += [bleu_score.score, chrf_score.score]
        # sacrebleu's own line, signature, score, n-gram precisions, brevity penalty and all.
        bleu_line = f"test.tsv, {decoding}: " + bleu_score.format(
            signature=str(bleu.get_signature())
        )
        assert bleu_line in result.stdout.splitlines()
        assert re.search(rf"^test\.tsv, {re.escape(decoding)}: {SIGNATURES['BLEU']} = ",
                         result.stdout, re.M)  # fmt: skip
        chrf = re.search(
            rf"^test\.tsv, {re.escape(decoding)}: {SIGNATURES['chrF']} = ([0-9.]+)$",
            result.stdout,
            re.M,
        )
        assert chrf, result.stdout
        assert float(chrf.group(1)) == round(chrf_score.score, 2)
        # The table keeps exact match beside BLEU and chrF.
        quality = translation_quality(hypotheses, references)
        row = (
            f"| test.tsv | {decoding} | 12 | {quality['exact_match']:.2f}% | "
            f"{quality['bleu']:.2f} | {quality['chrf']:.2f} |"
        )
        assert row in result.stdout.splitlines()
    # Guards the comparison: a few steps of training give figures strictly between 0 and 100.
    assert all(0 < figure < 100 for figure in figures), figures


def test_an_unwritable_plot_path_fails_before_any_decoding(export, test_file, tmp_path):
    result = _evaluate(
        f"--export_dir={export}",
        f"--data_path={test_file}",
        f"--plot_attention={tmp_path}/missing/attention.png",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"kerasgen.evaluate: error: {tmp_path}/missing/attention.png: "
        f"{tmp_path}/missing does not exist"
    )
    assert "greedy" not in result.stdout  # nothing was evaluated
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    result = _evaluate(
        f"--export_dir={export}",
        f"--data_path={test_file}",
        f"--plot_attention={not_a_folder}/a.png",
    )
    assert result.returncode == 1 and "is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("plot_flag", "written"),
    # The folder case runs by default; the name without an extension is the slow suite's.
    [("", "attention.png"), pytest.param("heatmaps", "heatmaps.png", marks=pytest.mark.slow)],
)
def test_the_plot_path_reported_is_the_file_written(
    export, test_file, tmp_path, plot_flag, written
):
    """A folder gets attention.png inside; a name without extension gets .png (as matplotlib
    adds it)."""
    result = _evaluate(
        f"--export_dir={export}",
        f"--data_path={test_file}",
        f"--plot_attention={tmp_path / plot_flag}",
        "--num_plots=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        result.stdout.splitlines()[-1]
        == f"Attention heatmaps of 1 examples in {tmp_path / written}"
    )
    assert (tmp_path / written).stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [written]


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_length_penalty_that_is_not_finite_is_one_line(value):
    result = _evaluate("--export_dir=unused", f"--length_penalty={value}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # TensorFlow's own start-up lines may come first; the command adds exactly one line.
    kerasgen_lines = [line for line in result.stderr.splitlines() if "kerasgen" in line]
    assert kerasgen_lines == [
        f"kerasgen.evaluate: error: --length_penalty={value}: must be a finite number"
    ]


def test_max_new_tokens_above_the_exports_cap_is_one_line(export, test_file):
    result = _evaluate(f"--export_dir={export}", f"--data_path={test_file}", "--max_new_tokens=41")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "kerasgen.evaluate: error: max_new_tokens=41 is more than this export's cap of 40 tokens"
    )
