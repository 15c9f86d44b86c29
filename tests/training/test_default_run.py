"""The Quickstart's main job, exactly as a user runs it (slow: a few minutes on two cores)."""

import re
import subprocess
import sys

import pytest
import tensorflow as tf


@pytest.mark.slow
def test_default_command_trains_prints_samples_and_exports(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kerasgen.train", "--verbose=2", f"--data_dir={tmp_path / 'tfds'}"],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loss = float(re.search(r"Validation loss ([0-9.]+) nats/token", result.stdout).group(1))
    assert loss < 0.8  # the grammar is learned: a uniform guess over 62 ids is 4.1
    assert result.stdout.count("--- sample") == 3
    loaded = tf.saved_model.load(str(tmp_path / "exports" / "text_generator" / "1"))
    text = loaded.signatures["serving_default"](prompt=tf.constant(["", "ANNA:"]))["text"]
    assert text.shape == (2,) and all(len(t) > 0 for t in text.numpy())
