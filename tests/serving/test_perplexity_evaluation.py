"""`python -m kerasgen.evaluate` on a language-model export: perplexity through `score`."""

import math
import re
import subprocess
import sys

from kerasgen.evaluation.perplexity import language_model_perplexity
from kerasgen.serving.loading import LoadedExport


def test_perplexity_sums_the_score_signature_over_every_document(exported):
    _, path = exported
    export = LoadedExport(path)
    documents = ["ANNA: the moon is bright tonight.", "BEN: and the river sings below.", ""]
    result = language_model_perplexity(export, documents, batch_size=2)
    scores = export.score(documents)
    total_tokens = sum(n for _, n in scores)
    # Every character and the end token of each document (the start token is given, not scored).
    assert result["num_tokens"] == total_tokens == len(documents[0]) + len(documents[1]) + 3
    expected = -sum(lp for lp, _ in scores) / total_tokens
    assert math.isclose(result["nats_per_token"], expected, rel_tol=1e-6)
    assert math.isclose(result["perplexity"], math.exp(expected), rel_tol=1e-6)


def test_evaluate_command_prints_the_perplexity_table(exported, tiny_text, tmp_path):
    base, path = exported
    held_out = tmp_path / "held_out.txt"
    held_out.write_text(tiny_text + "\n\n" + tiny_text, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kerasgen.evaluate",
            f"--export_dir={base}/tiny",
            f"--data_path={held_out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    row = re.search(r"\| held_out.txt \| 2 \| (\d+) \| ([0-9.]+) \| ([0-9.]+) \|", result.stdout)
    assert row, result.stdout
    direct = language_model_perplexity(LoadedExport(path), [tiny_text.strip("\n")] * 2)
    assert int(row.group(1)) == direct["num_tokens"]
    assert math.isclose(float(row.group(3)), direct["perplexity"], rel_tol=1e-3)
