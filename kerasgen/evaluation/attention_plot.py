"""Attention heatmaps: source tokens across, target tokens down, one panel per example."""

import os

from matplotlib.figure import Figure

from kerasgen.errors import UserInputError
from kerasgen.evaluation.translation_quality import translate_greedily

# The file written into a folder given as the plot's path.
DEFAULT_PLOT_FILE_NAME = "attention.png"


def writable_plot_path(path):
    """The file `plot_attention` will write for `path`, checked writable before any work.

    A folder (one that exists, or a path ending with a separator) gets `attention.png` inside; a
    name without an extension gets ".png", as matplotlib would add it unasked.

    Raises:
        UserInputError: for an image format matplotlib cannot write, a folder that does not
            exist, or a file that cannot be created or overwritten.
    """
    if path.endswith(os.sep) or os.path.isdir(path):
        path = os.path.join(path, DEFAULT_PLOT_FILE_NAME)
    extension = os.path.splitext(path)[1][1:].lower()
    if not extension:
        path += ".png"
    elif extension not in Figure().canvas.get_supported_filetypes():
        raise UserInputError(f"{path}: matplotlib cannot write .{extension} images")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        problem = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise UserInputError(f"{path}: {folder} {problem}")
    existed = os.path.exists(path)
    try:  # opening is the only reliable test (permissions, read-only file systems, root)
        with open(path, "ab"):
            pass
    except OSError as error:
        raise UserInputError(f"{path}: cannot be written ({error.strerror})") from None
    if not existed:
        os.remove(path)
    return path


def attention_examples(signatures, sources, *, max_new_tokens):
    """Greedy translations of `sources` with their attention, from a `translate` signature.

    Returns:
        A list of `(source_tokens, target_tokens, weights [target_len, source_len])`, padding
        removed (the end tokens shown as "</s>").
    """
    n = len(sources)
    outputs = translate_greedily(signatures, sources, max_new_tokens=max_new_tokens)
    if "attention" not in outputs:
        raise UserInputError("this model has no attention to plot (its translate has none)")
    examples = []
    for row in range(n):
        num_tokens = int(outputs["num_tokens"][row])
        source_tokens = [
            t.decode("utf-8", "replace") for t in outputs["source_tokens"][row].numpy()
        ]
        weights = outputs["attention"][row].numpy()[:num_tokens]
        # Real tokens, then the end token and the batch's padding (both ""): keep up to the end.
        real = [i for i, token in enumerate(source_tokens) if token]
        source_len = min((real[-1] + 1 if real else 0) + 1, len(source_tokens))
        target_tokens = [
            t.decode("utf-8", "replace") for t in outputs["target_tokens"][row].numpy()
        ][:num_tokens]
        source_labels = [t or "</s>" for t in source_tokens[:source_len]]
        target_labels = [t or "</s>" for t in target_tokens]
        examples.append((source_labels, target_labels, weights[:, :source_len]))
    return examples


def plot_attention(examples, path):
    """Draws one heatmap per example into `path` (any matplotlib format, e.g. .png); returns
    the path (check it first with `writable_plot_path`, which gives the one really written).

    The figure is a `matplotlib.figure.Figure` of its own, outside pyplot: no backend is chosen
    or changed, so a notebook's inline plots keep working after a call.
    """
    figure = Figure(figsize=(10, 3.2 * len(examples)))
    axes = figure.subplots(len(examples), 1, squeeze=False)
    for axis, (source_tokens, target_tokens, weights) in zip(axes[:, 0], examples, strict=True):
        axis.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
        axis.set_xticks(range(len(source_tokens)), [repr(t)[1:-1] for t in source_tokens])
        axis.set_yticks(range(len(target_tokens)), [repr(t)[1:-1] for t in target_tokens])
        axis.set_xlabel("source")
        axis.set_ylabel("target")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
