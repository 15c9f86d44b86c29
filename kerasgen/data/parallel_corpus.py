"""Loading sentence pairs (source, target) for an encoder-decoder.

Three sources, one result (`ParallelCorpus`):

- nothing given: kerasgen's own date-normalization task, the `kerasgen_dates` TFDS dataset,
  generated locally (no network);
- `data_path`: a local tab-separated file of `source<TAB>target` lines (the Anki / manythings.org
  sentence-pair format; columns after the second, such as Anki's attribution, are ignored);
- `dataset`: any TFDS dataset with `supervised_keys` (a translation dataset such as
  `ted_hrlr_translate/pt_to_en`), by name (downloading it needs network).

Every problem with the data raises `CorpusError` (one line naming the file or dataset).
"""

from __future__ import annotations

import dataclasses
import logging
import random

import tensorflow_datasets as tfds

from kerasgen.data.corpus import (
    CorpusError,
    check_source_arguments,
    download_and_prepare,
    read_text_file,
    tfds_builder,
)

DEFAULT_PARALLEL_DATASET = "kerasgen_dates"
_SHOWN_LINE_NUMBERS = 10  # bad lines named in the warning; the rest are only counted


@dataclasses.dataclass(frozen=True)
class ParallelCorpus:
    """Sentence pairs to train, validate and test an encoder-decoder.

    Attributes:
        name: where the pairs came from: a file path or a TFDS dataset name.
        train, validation: lists of (source, target) string pairs; no pair is in both.
        test: held-out pairs, per split name (a TFDS dataset's other splits, e.g. "test";
            empty for a file).
    """

    name: str
    train: list[tuple[str, str]]
    validation: list[tuple[str, str]]
    test: dict[str, list[tuple[str, str]]] = dataclasses.field(default_factory=dict)

    def split(self, name):
        """The pairs of split `name` ("train", "validation" or a test split)."""
        if name in ("train", "validation"):
            return getattr(self, name)
        if name not in self.test:
            valid = ", ".join(["train", "validation", *self.test])
            raise CorpusError(f"{self.name}: no split {name!r} (splits: {valid})")
        return self.test[name]


def load_parallel_corpus(
    data_path: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
    log=logging.warning,
) -> ParallelCorpus:
    """Loads sentence pairs from a TSV file, a TFDS dataset, or `kerasgen_dates`.

    Args:
        data_path: a UTF-8 file of `source<TAB>target` lines. Its pairs are shuffled with `seed`
            (Anki files are sorted by length) and the last `validation_fraction` held out.
        dataset: a TFDS dataset name with supervised keys (source, target). Its validation split
            is used if it has one, else `validation_fraction` of its train split; its other
            splits become `test`.
        data_dir: where TFDS keeps prepared datasets.
        validation_fraction: share held out when the source has no validation split.
        seed: the file's shuffle.
        log: receives the warning about skipped lines.

    Raises:
        CorpusError: missing or unreadable file, no valid pair, unknown dataset, or a dataset
            without supervised keys.
    """
    check_source_arguments(data_path, dataset, validation_fraction, file_kind="a TSV file")
    if data_path is not None:
        pairs = read_tsv_pairs(data_path, log=log)
        random.Random(seed).shuffle(pairs)
        held_out = max(1, round(len(pairs) * validation_fraction))
        if len(pairs) <= held_out:
            raise CorpusError(
                f"{data_path}: {len(pairs)} valid pair(s) is too few to hold out a validation part"
            )
        return ParallelCorpus(data_path, pairs[:-held_out], pairs[-held_out:])
    return _load_tfds_pairs(dataset or DEFAULT_PARALLEL_DATASET, data_dir, validation_fraction)


def read_tsv_pairs(path: str, log=logging.warning) -> list[tuple[str, str]]:
    """The (source, target) pairs of a tab-separated file, in file order.

    A line without a tab, or whose source or target is empty after stripping spaces, is
    skipped; the skipped lines are counted in one warning naming their line numbers (1-based).
    Blank lines are ignored silently.

    Raises:
        CorpusError: unreadable file, or no valid pair at all.
    """
    text = read_text_file(path)
    pairs, bad_lines = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        source = columns[0].strip()
        target = columns[1].strip() if len(columns) > 1 else ""
        if len(columns) < 2 or not source or not target:
            bad_lines.append(number)
            continue
        pairs.append((source, target))
    if bad_lines:
        shown = ", ".join(map(str, bad_lines[:_SHOWN_LINE_NUMBERS]))
        more = ", ..." if len(bad_lines) > _SHOWN_LINE_NUMBERS else ""
        message = (
            f"{path}: skipped {len(bad_lines)} line(s) without a tab or with an empty side "
            f"(line {shown}{more})"
        )
        if not pairs:
            raise CorpusError(f"{message}; no valid source<TAB>target pair remains")
        log(message)
    return pairs


def _load_tfds_pairs(name: str, data_dir: str | None, validation_fraction: float):
    builder = tfds_builder(name, data_dir)
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(key, str) for key in keys):
        raise CorpusError(f"{name}: has no (source, target) supervised keys, not a parallel corpus")
    download_and_prepare(builder, name)
    splits = builder.info.splits
    if "train" not in splits:
        raise CorpusError(f"{name}: has no train split (splits: {', '.join(sorted(splits))})")
    read = {split: _read_pairs(builder, split, keys) for split in splits}
    train = read.pop("train")
    if "validation" in read:
        validation = read.pop("validation")
    else:
        held_out = max(1, round(len(train) * validation_fraction))
        train, validation = train[:-held_out], train[-held_out:]
    if not train or not validation:
        raise CorpusError(f"{name}: too small to give both train and validation pairs")
    return ParallelCorpus(name, train, validation, read)


_READ_BATCH = 4096  # examples per batch read from a TFDS split


def _read_pairs(builder, split, keys):
    source_key, target_key = keys
    # Batches of a few thousand: one example at a time costs a Python round trip each.
    dataset = builder.as_dataset(split=split, shuffle_files=False).batch(_READ_BATCH)
    pairs = (
        (source.decode("utf-8"), target.decode("utf-8"))
        for batch in tfds.as_numpy(dataset)
        for source, target in zip(batch[source_key], batch[target_key], strict=True)
    )
    return [(s, t) for s, t in pairs if s.strip() and t.strip()]
