"""Evaluating translation services and exports: exact match, BLEU, chrF, attention plots."""

from kerasgen.evaluation.translation_quality import (
    beam_translator,
    evaluate_translator,
    format_quality_table,
    format_sacrebleu_reports,
    greedy_translator,
    translation_quality,
)

__all__ = [
    "beam_translator",
    "evaluate_translator",
    "format_quality_table",
    "format_sacrebleu_reports",
    "greedy_translator",
    "translation_quality",
]
