"""Attention heatmaps: source tokens across, target tokens down, one panel per example."""

from matplotlib.figure import Figure

from kerasgen.evaluation.translation_quality import translate_greedily


def attention_examples(signatures, sources, *, max_new_tokens):
    """Greedy translations of `sources` with their attention, from a `translate` signature.

    Returns:
        A list of `(source_tokens, target_tokens, weights [target_len, source_len])`, padding
        removed (the end tokens shown as "</s>").
    """
    n = len(sources)
    outputs = translate_greedily(signatures, sources, max_new_tokens=max_new_tokens)
    if "attention" not in outputs:
        raise ValueError("this model has no attention to plot (its translate has no attention)")
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
    """Draws one heatmap per example into `path` (any matplotlib format, e.g. .png).

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
