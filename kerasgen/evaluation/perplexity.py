"""Perplexity of a language-model export on held-out text, through its `score` signature."""

import math
import os

from kerasgen.data.corpus import load_corpus, read_text_file, split_paragraphs
from kerasgen.serving.loading import LoadedExport


def language_model_perplexity(export, documents, *, batch_size=64, progress=None):
    """Scores `documents` with an export and sums over every token.

    Args:
        export: a `kerasgen.serving.loading.LoadedExport` of a language model.
        documents: list of str; each is scored with its start and end tokens.
        batch_size: documents per `score` call.
        progress: optional `keras.utils.Progbar`-like object with `add(n)`.

    Returns:
        dict with `nats_per_token`, `perplexity`, `num_tokens` and `num_documents`.
    """
    total_log_prob, total_tokens = 0.0, 0
    for start in range(0, len(documents), batch_size):
        batch = documents[start : start + batch_size]
        for log_prob, num_tokens in export.score(batch):
            total_log_prob += log_prob
            total_tokens += num_tokens
        if progress is not None:
            progress.add(len(batch))
    nats = -total_log_prob / max(total_tokens, 1)
    return {
        "nats_per_token": nats,
        "perplexity": math.exp(nats),
        "num_tokens": total_tokens,
        "num_documents": len(documents),
    }


def evaluation_documents(train_config, *, data_path=None, dataset=None, data_dir=None):
    """`(label, documents)` to measure perplexity on.

    A `data_path` is scored whole (its paragraphs are the documents); a `dataset` gives its
    validation part; with neither, the validation part of the data the export was trained on.
    """
    if data_path:
        return os.path.basename(data_path), split_paragraphs(read_text_file(data_path))
    if not dataset:
        data_path = train_config.get("data_path")
        dataset = train_config.get("dataset")
    corpus = load_corpus(data_path=data_path, dataset=dataset, data_dir=data_dir)
    return f"{corpus.name} (validation part)", corpus.validation


def evaluate_language_model(
    export_dir, *, data_path=None, dataset=None, data_dir=None, batch_size=64, log=print
):
    """What `python -m kerasgen.evaluate` prints for a language-model export."""
    import keras

    export = LoadedExport(export_dir)
    label, documents = evaluation_documents(
        export.metadata().get("train_config", {}),
        data_path=data_path,
        dataset=dataset,
        data_dir=data_dir,
    )
    result = language_model_perplexity(
        export,
        documents,
        batch_size=batch_size,
        progress=keras.utils.Progbar(len(documents), unit_name="document"),
    )
    log("| data | documents | tokens | nats per token | perplexity |")
    log("| --- | --- | --- | --- | --- |")
    log(
        f"| {label} | {result['num_documents']} | {result['num_tokens']} | "
        f"{result['nats_per_token']:.4f} | {result['perplexity']:.3f} |"
    )
    return result
