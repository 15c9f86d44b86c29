"""`python -m kerasgen.generate` over real exports: flags, stdin, beams, bad folders, and an
encoder-decoder's prompts translated."""

import subprocess
import sys

import pytest
import tensorflow as tf

from kerasgen.models.seq2seq import Seq2Seq
from kerasgen.serving import DecodingConfig, export_service
from kerasgen.serving.translation_service import TranslationService
from kerasgen.tokenizers import learn_tokenizer


def _generate(*flags, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "kerasgen.generate", *flags],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_prompts_from_flags_match_the_generate_signature(exported, load_saved_model):
    base, path = exported
    result = _generate(
        f"--export_dir={base}/tiny",
        "--prompt=ANNA:",
        "--prompt=",
        "--max_new_tokens=6",
        "--temperature=1.0",
        "--seed=3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = load_saved_model(path)
    expected = loaded.signatures["generate"](
        prompt=tf.constant(["ANNA:", ""]),
        max_new_tokens=tf.constant([6, 6]),
        temperature=tf.constant([1.0, 1.0]),
        top_k=tf.constant([0, 0]),
        top_p=tf.constant([1.0, 1.0]),
        seed=tf.constant([3, 4]),
    )["text"].numpy()
    blocks = result.stdout.split("\n\n")
    assert blocks[0] == "ANNA:" + expected[0].decode("utf-8", "replace")
    assert blocks[1] == expected[1].decode("utf-8", "replace")


def test_prompts_from_stdin_and_beam_search(exported):
    base, _ = exported
    result = _generate(f"--export_dir={base}/tiny", "--max_new_tokens=8", stdin="ANNA:\nBEN:\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("\n\n") == 2
    beams = _generate(f"--export_dir={base}/tiny", "--prompt=ANNA:", "--num_beams=3")
    assert beams.returncode == 0, beams.stderr[-2000:]
    assert [line[:3] for line in beams.stdout.splitlines() if line.startswith("[")][:3] == [
        "[1]",
        "[2]",
        "[3]",
    ]


def test_a_request_the_export_rejects_is_one_clear_line(exported):
    base, _ = exported
    result = _generate(f"--export_dir={base}/tiny", "--prompt=x", "--max_new_tokens=1000")
    assert result.returncode == 1
    assert "max_new_tokens must be <= 40" in result.stderr and "Traceback" not in result.stderr


def test_a_folder_without_a_saved_model_is_one_clear_line(tmp_path):
    result = _generate(f"--export_dir={tmp_path}", "--prompt=x")
    assert result.returncode == 1
    assert f"kerasgen.generate: error: {tmp_path}: holds no SavedModel" in result.stderr
    assert "Traceback" not in result.stderr


# A tiny untrained encoder-decoder, exported once for the tests below that need one.
TRANSLATION_DECODING = DecodingConfig(
    max_prompt_tokens=24, max_new_tokens_cap=8, max_new_tokens=6, temperature=0.0, num_beams=3
)


@pytest.fixture(scope="module")
def translation_export(tmp_path_factory):
    """The version folder of a tiny translation export (beam width 3)."""
    source = learn_tokenizer("character", ["March 3, 2021"], str(tmp_path_factory.mktemp("s")))
    target = learn_tokenizer("character", ["2021-03-03"], str(tmp_path_factory.mktemp("t")))
    tf.keras.utils.set_random_seed(0)
    model = Seq2Seq(source.vocab_size, target.vocab_size, embedding_dim=8, rnn_units=8,
                    attention="bahdanau")  # fmt: skip
    model.build()
    service = TranslationService(model, source, target, TRANSLATION_DECODING)
    return export_service(service, str(tmp_path_factory.mktemp("exports")), "dates")


def _one_line_error(result, *expected):
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "kerasgen.generate: error:" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    for text in expected:
        assert text in errors[0]
    return errors[0]


def test_invalid_utf8_on_stdin_is_replaced_as_the_signatures_do(exported):
    base, _ = exported
    result = subprocess.run(
        [sys.executable, "-m", "kerasgen.generate", f"--export_dir={base}/tiny",
         "--max_new_tokens=3", "--temperature=0"],
        input=b"\xffANNA:\n",
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.decode("utf-8").startswith("\ufffdANNA:")


def test_crlf_line_ends_are_stripped_from_prompts(exported):
    base, _ = exported
    flags = (f"--export_dir={base}/tiny", "--max_new_tokens=5", "--temperature=0")
    crlf = _generate(*flags, stdin="ANNA:\r\nBEN:\r\n")
    lf = _generate(*flags, stdin="ANNA:\nBEN:\n")
    assert crlf.returncode == 0 and lf.returncode == 0, crlf.stderr[-2000:]
    assert crlf.stdout == lf.stdout
    assert "\r" not in crlf.stdout and crlf.stdout.startswith("ANNA:")


def test_empty_stdin_is_an_error_saying_there_were_no_prompts(exported):
    base, _ = exported
    _one_line_error(_generate(f"--export_dir={base}/tiny", stdin=""), "no prompts")


# Each float flag once and each non-finite value once: every run is a fresh process.
@pytest.mark.parametrize(
    "flag,value", [("temperature", "nan"), ("top_p", "inf"), ("length_penalty", "-inf")]
)
def test_a_float_flag_that_is_not_finite_is_one_line(flag, value):
    result = _generate("--export_dir=unused", "--prompt=x", f"--{flag}={value}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    # Bounds absl checks itself (-inf below 0, inf above top_p's 1) it reports in its own words.
    assert f"--{flag}={value}" in result.stderr


def test_beam_width_other_than_the_exports_is_one_line_naming_it(exported, translation_export):
    base, _ = exported
    _one_line_error(
        _generate(f"--export_dir={base}/tiny", "--prompt=ANNA:", "--num_beams=2"),
        "--num_beams=2",
        "keeps 3 beams",
    )
    _one_line_error(
        _generate(f"--export_dir={translation_export}", "--prompt=March 3", "--num_beams=2"),
        "keeps 3 beams",
        "--num_beams=3",
    )


def test_a_translation_export_translates_prompts_greedily_and_by_beam(
    translation_export, load_saved_model
):
    sources = ["March 3, 2021", "3 March"]
    loaded = load_saved_model(translation_export)
    expected = loaded.signatures["translate"](
        source=tf.constant(sources),
        max_new_tokens=tf.constant([4, 4]),
        temperature=tf.constant([0.0, 0.0]),
        top_k=tf.constant([0, 0]),
        top_p=tf.constant([1.0, 1.0]),
        seed=tf.constant([-1, -1]),
    )["text"].numpy()
    greedy = _generate(
        f"--export_dir={translation_export}", "--max_new_tokens=4", "--temperature=0",
        stdin="\n".join(sources) + "\n",
    )  # fmt: skip
    assert greedy.returncode == 0, greedy.stderr[-2000:]
    # A translation is printed alone, without its source in front.
    assert greedy.stdout == "".join(f"{text.decode('utf-8')}\n\n" for text in expected)

    beams = _generate(f"--export_dir={translation_export}", "--prompt=March 3", "--num_beams=3")
    assert beams.returncode == 0, beams.stderr[-2000:]
    best = loaded.signatures["beam_search"](
        source=tf.constant(["March 3"]), length_penalty=tf.constant([0.6])
    )
    lines = beams.stdout.splitlines()
    assert [line[:3] for line in lines[:3]] == ["[1]", "[2]", "[3]"]
    score, text = float(best["scores"][0, 0]), best["texts"][0, 0].numpy().decode("utf-8")
    assert lines[0] == f"[1] ({score:.3f}) {text}"


def _controls_outputs(loaded, signature_name, **inputs):
    count = len(next(iter(inputs.values())))
    defaults = dict(
        top_k=tf.zeros([count], tf.int32),
        top_p=tf.ones([count]),
        repetition_penalty=tf.ones([count]),
        no_repeat_ngram_size=tf.zeros([count], tf.int32),
        min_new_tokens=tf.zeros([count], tf.int32),
        num_samples=tf.ones([count], tf.int32),
        top_logprobs=tf.zeros([count], tf.int32),
    )
    signature = loaded.signatures[signature_name]
    return signature(**{**defaults, **inputs})


def test_the_generation_controls_use_the_controls_signature_and_print_a_logprob_table(
    exported, load_saved_model
):
    base, path = exported
    result = _generate(
        f"--export_dir={base}/tiny", "--prompt=ANNA:", "--max_new_tokens=6", "--temperature=1",
        "--seed=3", "--stop=e", "--stop=a", "--num_samples=2", "--repetition_penalty=1.2",
        "--show_logprobs",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    expected = _controls_outputs(
        load_saved_model(path),
        "generate_with_controls",
        prompt=tf.constant(["ANNA:"]),
        max_new_tokens=tf.constant([6]),
        temperature=tf.constant([1.0]),
        seed=tf.constant([3]),
        stop_sequences=tf.constant([["e", "a"]]),
        repetition_penalty=tf.constant([1.2]),
        num_samples=tf.constant([2]),
        top_logprobs=tf.constant([DecodingConfig().max_top_logprobs]),  # the export's limit
    )
    blocks = result.stdout.split("\n\n")
    for sample in range(2):
        lines = blocks[sample].splitlines()
        text = expected["text"][0, sample].numpy().decode("utf-8", "replace")
        assert lines[0] == f"[{sample + 1}] ANNA:{text}"
        assert lines[1].split() == ["token", "log_prob", "alternatives"]
        num_tokens = int(expected["num_tokens"][0, sample])
        assert len(lines) == 2 + num_tokens
        for step, line in enumerate(lines[2:]):
            assert f"{float(expected['token_log_probs'][0, sample, step]):.3f}" in line
            alternatives = line.split("  ")[-1].split(", ")
            top = expected["top_log_probs"][0, sample, step].numpy()
            assert len(alternatives) == len(top) == DecodingConfig().max_top_logprobs
            assert [a.rsplit(" ", 1)[1] for a in alternatives] == [f"{p:.3f}" for p in top]


def test_a_stop_sequence_on_a_translation_export(translation_export, load_saved_model):
    result = _generate(
        f"--export_dir={translation_export}", "--prompt=March 3, 2021", "--max_new_tokens=6",
        "--temperature=0", "--stop=3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    expected = _controls_outputs(
        load_saved_model(translation_export),
        "translate_with_controls",
        source=tf.constant(["March 3, 2021"]),
        max_new_tokens=tf.constant([6]),
        temperature=tf.constant([0.0]),
        seed=tf.constant([-1]),
        stop_sequences=tf.constant([["3"]]),
    )
    assert result.stdout == expected["text"][0, 0].numpy().decode("utf-8") + "\n\n"


@pytest.mark.parametrize(
    "flag,message",
    [
        ("--repetition_penalty=0", "repetition_penalty must be a finite number > 0"),
        ("--repetition_penalty=nan", "repetition_penalty must be a finite number > 0"),
        ("--num_samples=9", "num_samples must be <= 8, the limit of this export"),
        ("--stop=" + "x" * 17, "stop_sequences must each be at most 16 tokens"),
    ],
)
def test_a_control_the_export_refuses_is_one_line_naming_it(exported, flag, message):
    base, _ = exported
    _one_line_error(
        _generate(f"--export_dir={base}/tiny", "--prompt=x", "--max_new_tokens=3", flag), message
    )
