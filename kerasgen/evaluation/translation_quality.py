"""Translation quality: exact match, BLEU and chrF (sacrebleu) of greedy and beam decoding.

A *translator* is a function `list[str] -> list[str]`. `greedy_translator` and `beam_translator`
make one from a set of signatures: a `TranslationService`'s `signatures()` or a reloaded export's
`.signatures`, which both take keyword arguments, so in-process and exported models are
evaluated by the same code.
"""

import numpy as np
import sacrebleu
import tensorflow as tf


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
    """`{"exact_match": %, "bleu": BLEU, "chrf": chrF}` of hypotheses against references.

    Exact match compares whole strings after stripping surrounding spaces; BLEU and chrF are
    sacrebleu's corpus scores. BLEU uses sacrebleu's `bleu_tokenize`: "13a" (its default) for
    text in words, "char" for strings without spaces (an ISO date or a reversed string is one
    13a token, so its word BLEU is 0 unless it is exactly right).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    exact = np.mean([h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True)])
    return {
        "exact_match": 100.0 * float(exact) if references else 0.0,
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references], tokenize=bleu_tokenize).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
        "bleu_tokenize": bleu_tokenize,
    }


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
