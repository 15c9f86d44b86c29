"""Every notebook runs top to bottom in a real kernel; any cell error fails the test."""

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "..", "notebooks")


def _run(name, tmp_path):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return notebook


def _outputs(notebook):
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]


def test_quickstart_notebook_trains_plots_and_generates(tmp_path):
    notebook = _run("quickstart.ipynb", tmp_path)
    outputs = _outputs(notebook)
    assert any("image/png" in output.get("data", {}) for output in outputs)  # a real figure
    text = "".join(output.get("text", "") for output in outputs)
    assert "--- temperature 1.5" in text and "validation perplexity" in text


def test_serving_notebook_builds_and_runs_requests(tmp_path):
    notebook = _run("serving.ipynb", tmp_path)
    text = "".join(output.get("text", "") for output in _outputs(notebook))
    assert "SignatureDef contains the following input(s)" in text and " -> {'" in text


@pytest.mark.slow  # a minute of training; run with `pytest -m slow`
def test_translation_notebook_compares_greedy_and_beam_and_plots_attention(tmp_path):
    notebook = _run("translation.ipynb", tmp_path)
    outputs = _outputs(notebook)
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 2  # training curves and attention heatmaps
    text = "".join(output.get("text", "") for output in outputs)
    greedy = float(re.search(r"greedy exact match: ([\d.]+)%", text).group(1))
    beam = float(re.search(r"beam exact match: +([\d.]+)%", text).group(1))
    assert greedy >= 50 and beam >= 50, (greedy, beam)  # the short run gets most dates right


@pytest.mark.slow  # a minute of training; run with `pytest -m slow`
def test_gpt_notebook_fine_tunes_below_scratch_and_generates(tmp_path):
    notebook = _run("gpt.ipynb", tmp_path)
    outputs = _outputs(notebook)
    assert any("image/png" in output.get("data", {}) for output in outputs)  # the loss curves
    text = "".join(output.get("text", "") for output in outputs)
    tuned = float(re.search(r"fine-tuned validation loss: ([\d.]+)", text).group(1))
    scratch = float(re.search(r"from-scratch validation loss: ([\d.]+)", text).group(1))
    assert tuned < scratch, (tuned, scratch)
    strategies = ["greedy", "temperature 0.8", "top-k 5", "top-p 0.9", "beam 1"]
    assert all(f"--- {name}" in text for name in strategies), text


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb")))
def test_every_notebook_starts_with_its_install_cell(name):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "%pip install" in first_code.source and 'find_spec("kerasgen")' in first_code.source
