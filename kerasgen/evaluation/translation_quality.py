"""Translation quality: exact match, BLEU and chrF (sacrebleu) of greedy and beam decoding.

A *translator* is a function `list[str] -> list[str]`. `greedy_translator` and `beam_translator`
make one from a set of signatures: a `TranslationService`'s `signatures()` or a reloaded export's
`.signatures`, which both take keyword arguments, so in-process and exported models are
evaluated by the same code.
"""

import numpy as np
import tensorflow as tf
from sacrebleu.metrics import BLEU, CHRF


def _decode(strings):
    return [s.decode("utf-8", errors="replace") for s in strings.numpy().tolist()]


def translate_greedily(signatures, sources, *, max_new_tokens):
    """The `translate` signature's outputs for `sources` (a list of str) at temperature 0."""
    n = len(sources)
    return signatures["translate"](
        source=tf.constant(sources, tf.string),
        max_new_tokens=tf.fill([n], max_new_tokens),
        temperature=tf.zeros([n]),
        top_k=tf.zeros([n], tf.int32),
        top_p=tf.ones([n]),
        seed=tf.zeros([n], tf.int32),
    )


def greedy_translator(signatures, *, max_new_tokens):
    """Greedy translations through the `translate` signature (temperature 0)."""

    def translate(sources):
        outputs = translate_greedily(signatures, sources, max_new_tokens=max_new_tokens)
        return _decode(outputs["text"])

    return translate


def beam_translator(signatures, *, length_penalty=0.6):
    """The best beam of the `beam_search` signature."""

    def translate(sources):
        n = len(sources)
        outputs = signatures["beam_search"](
            source=tf.constant(sources, tf.string), length_penalty=tf.fill([n], length_penalty)
        )
        return _decode(outputs["texts"][:, 0])

    return translate


def translate_in_batches(translator, sources, batch_size=256, progress=None):
    """`translator` over `sources` in batches of `batch_size`, in order.

    `progress`: optional `keras.utils.Progbar`-like object, advanced with `add(n)` per batch.
    """
    hypotheses = []
    for start in range(0, len(sources), batch_size):
        batch = list(sources[start : start + batch_size])
        hypotheses.extend(translator(batch))
        if progress is not None:
            progress.add(len(batch))
    return hypotheses


def translation_quality(hypotheses, references, *, bleu_tokenize="13a"):
    """Exact match, BLEU and chrF of hypotheses against references, as sacrebleu reports them.

    Exact match compares whole strings after stripping surrounding spaces; BLEU and chrF are
    sacrebleu's corpus scores with its defaults (cased, one reference, exponential smoothing;
    chrF2 over character 6-grams). BLEU uses sacrebleu's `bleu_tokenize`: "13a" (its default)
    for text in words, "char" for strings without spaces (an ISO date or a reversed string is
    one 13a token, so its word BLEU is 0 unless it is exactly right).

    Returns:
        `{"exact_match": %, "bleu": BLEU, "chrf": chrF, "bleu_tokenize": str,
        "bleu_report": str, "chrf_report": str}`, the reports being sacrebleu's own lines with
        the signature that reproduces the figure elsewhere, e.g.
        `BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 27.30 58.1/...`.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    exact = np.mean([h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True)])
    bleu, chrf = BLEU(tokenize=bleu_tokenize), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "exact_match": 100.0 * float(exact) if references else 0.0,
        "bleu": bleu_score.score,
        "chrf": chrf_score.score,
        "bleu_tokenize": bleu_tokenize,
        "bleu_report": _sacrebleu_report(bleu_score, bleu.get_signature()),
        "chrf_report": _sacrebleu_report(chrf_score, chrf.get_signature()),
    }


def _sacrebleu_report(score, signature):
    """sacrebleu's command-line line: `NAME|signature = score details`."""
    return score.format(signature=str(signature))


def evaluate_translator(translator, pairs, *, batch_size=256, bleu_tokenize="13a", progress=None):
    """Quality of `translator` on (source, target) pairs, and its hypotheses."""
    sources = [source for source, _ in pairs]
    references = [target for _, target in pairs]
    hypotheses = translate_in_batches(translator, sources, batch_size, progress)
    return translation_quality(hypotheses, references, bleu_tokenize=bleu_tokenize), hypotheses


def format_quality_table(rows):
    """A Markdown table of `[(label, decoding, quality dict, examples)]` rows."""
    tokenizations = sorted({quality["bleu_tokenize"] for _, _, quality, _ in rows}) or ["13a"]
    lines = [
        f"| data | decoding | examples | exact match | BLEU ({', '.join(tokenizations)}) | chrF |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, decoding, quality, count in rows:
        lines.append(
            f"| {label} | {decoding} | {count} | {quality['exact_match']:.2f}% | "
            f"{quality['bleu']:.2f} | {quality['chrf']:.2f} |"
        )
    return "\n".join(lines)


def format_sacrebleu_reports(rows):
    """sacrebleu's BLEU and chrF lines, with signatures, of `[(label, decoding, quality, n)]`."""
    lines = []
    for label, decoding, quality, _ in rows:
        lines.append(f"{label}, {decoding}: {quality['bleu_report']}")
        lines.append(f"{label}, {decoding}: {quality['chrf_report']}")
    return "\n".join(lines)
