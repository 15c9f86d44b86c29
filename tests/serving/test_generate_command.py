"""`python -m kerasgen.generate` over a real export: flags, stdin, beams, bad folders."""

import subprocess
import sys

import tensorflow as tf


def _generate(*flags, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "kerasgen.generate", *flags],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_prompts_from_flags_match_the_generate_signature(exported):
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
    loaded = tf.saved_model.load(path)
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
