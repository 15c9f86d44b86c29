"""`evaluate_export`: what `python -m kerasgen.evaluate` does, callable from tests."""

import os

import keras
import tensorflow as tf

from kerasgen.data.parallel_corpus import (
    DEFAULT_PARALLEL_DATASET,
    ParallelCorpus,
    load_parallel_corpus,
    read_tsv_pairs,
)
from kerasgen.errors import UserInputError
from kerasgen.evaluation.translation_quality import (
    beam_translator,
    evaluate_translator,
    format_quality_table,
    format_sacrebleu_reports,
    greedy_translator,
)
from kerasgen.serving.loading import LoadedExport, invalid_argument_reason


def load_export(export_dir):
    """(the loaded SavedModel, its metadata dict); `export_dir` is a version or model folder."""
    export = LoadedExport(export_dir)
    if "translate" not in export.signature_names:
        raise UserInputError(f"{export.path}: not a translation export (no translate signature)")
    return tf.saved_model.load(export.path), export.metadata()


def _evaluation_splits(metadata, *, dataset, data_path, data_dir, splits):
    """`{label: pairs}` to evaluate."""
    if data_path:
        return {os.path.basename(data_path): read_tsv_pairs(data_path)}
    train_config = metadata.get("train_config", {})
    if not dataset and train_config.get("data_path"):
        raise UserInputError(
            "the export was trained on a file; give --data_path (or --dataset) to evaluate on"
        )
    dataset = dataset or train_config.get("dataset") or DEFAULT_PARALLEL_DATASET
    corpus: ParallelCorpus = load_parallel_corpus(dataset=dataset, data_dir=data_dir)
    names = splits or (list(corpus.test) or ["validation"])
    return {f"{dataset} {name}": corpus.split(name) for name in names}


# Greedy decoding's length limit for an export that does not record its cap.
_DEFAULT_MAX_NEW_TOKENS = 128


def _checked_max_new_tokens(max_new_tokens, metadata):
    """`max_new_tokens`, or the export's cap if None; refused above the cap before any work."""
    cap = metadata.get("decoding", {}).get("max_new_tokens_cap")
    if max_new_tokens is None:
        return cap or _DEFAULT_MAX_NEW_TOKENS
    if cap is not None and max_new_tokens > cap:
        raise UserInputError(
            f"max_new_tokens={max_new_tokens} is more than this export's cap of {cap} tokens"
        )
    return max_new_tokens


def _one_line_errors(translator, export_dir):
    """`translator` with the export's INVALID_ARGUMENT errors as one-line `UserInputError`s."""

    def translate(sources):
        try:
            return translator(sources)
        except tf.errors.InvalidArgumentError as error:
            raise UserInputError(f"{export_dir}: {invalid_argument_reason(error)}") from None

    return translate


def evaluate_export(
    export_dir,
    *,
    dataset=None,
    data_path=None,
    data_dir=None,
    splits=None,
    max_examples=2000,
    batch_size=256,
    length_penalty=0.6,
    max_new_tokens=None,
    plot_path=None,
    num_plots=3,
    show_progress=True,
    log=print,
):
    """Evaluates an export's greedy (`translate`, temperature 0) and beam (`beam_search`, best
    hypothesis) translations: exact match, BLEU and chrF per split, printed as a table, then
    sacrebleu's own BLEU and chrF lines with their signatures (so that a figure can be
    reproduced elsewhere), with a progress bar per split and decoding unless `show_progress` is
    False. A `plot_path` is checked (attention outputs, writable file) before any decoding.
    `max_new_tokens` (greedy decoding's length limit) defaults to the export's cap.

    Returns:
        The rows `[(split label, "greedy" | "beam (n)", quality dict, examples)]`.
    """
    loaded, metadata = load_export(export_dir)
    signatures = loaded.signatures
    max_new_tokens = _checked_max_new_tokens(max_new_tokens, metadata)
    if plot_path:
        from kerasgen.evaluation.attention_plot import writable_plot_path

        if "attention" not in signatures["translate"].structured_outputs:
            raise UserInputError(
                f"{export_dir}: this model has no attention to plot (its translate has none)"
            )
        plot_path = writable_plot_path(plot_path)
    data = _evaluation_splits(
        metadata, dataset=dataset, data_path=data_path, data_dir=data_dir, splits=splits
    )
    translators = {
        "greedy": greedy_translator(signatures, max_new_tokens=max_new_tokens),
        f"beam ({metadata.get('decoding', {}).get('num_beams', '?')})": beam_translator(
            signatures, length_penalty=length_penalty
        ),
    }
    translators = {name: _one_line_errors(t, export_dir) for name, t in translators.items()}
    # Character-level targets have no spaces to split words at: BLEU over characters.
    level = metadata.get("tokenizer", {}).get("level")
    bleu_tokenize = "char" if level == "character" else "13a"
    rows = []
    for label, pairs in data.items():
        pairs = pairs[:max_examples]
        for decoding, translator in translators.items():
            log(f"{label}, {decoding}:")
            quality, _ = evaluate_translator(
                translator,
                pairs,
                batch_size=batch_size,
                bleu_tokenize=bleu_tokenize,
                progress=keras.utils.Progbar(len(pairs), unit_name="pair")
                if show_progress
                else None,
            )
            rows.append((label, decoding, quality, len(pairs)))
    log(format_quality_table(rows))
    log(format_sacrebleu_reports(rows))
    if plot_path:
        from kerasgen.evaluation.attention_plot import attention_examples, plot_attention

        first = next(iter(data.values()))
        sources = [source for source, _ in first[:num_plots]]
        plot_attention(attention_examples(signatures, sources, max_new_tokens=max_new_tokens),
                       plot_path)  # fmt: skip
        log(f"Attention heatmaps of {len(sources)} examples in {plot_path}")
    return rows
