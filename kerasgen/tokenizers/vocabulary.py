"""Reading, writing and ranking the line-based vocabulary files of the tokenizers.

Every tokenizer keeps its vocabulary in one text file with one entry per line, and the line
number of an entry is its id. The first four lines hold the reserved ids (padding, start, end,
unknown), so real tokens start at id 4 in every tokenizer. Lookup tables read these files with
`tf.lookup.TextFileInitializer`, which is what lets a SavedModel carry them as assets.
"""

import collections
import os
from collections.abc import Iterable

# The reserved entries, in id order: pad_id = 0, start_id = 1, end_id = 2, unk_id = 3.
RESERVED_TOKENS = ("[PAD]", "[START]", "[END]", "[UNK]")

# The name of the vocabulary file inside a tokenizer's directory.
VOCABULARY_FILE_NAME = "vocabulary.txt"


def write_vocabulary_file(path: str, entries: Iterable[str | bytes]) -> None:
    """Writes one vocabulary entry per line, as UTF-8, so that line number == id.

    Args:
        path: the file to write; its folder must exist.
        entries: the entries in id order, reserved ones included. `str` entries are encoded as
            UTF-8, `bytes` entries are written as they are.

    Raises:
        ValueError: if an entry is empty or holds a line break, since either would shift the
            line numbers and so every id after it.
    """
    lines = []
    for entry in entries:
        line = entry.encode("utf-8") if isinstance(entry, str) else bytes(entry)
        if not line or b"\n" in line or b"\r" in line:
            raise ValueError(f"Vocabulary entry {entry!r} cannot be stored on one line.")
        lines.append(line)
    with open(path, "wb") as file:
        file.write(b"\n".join(lines) + b"\n")


def write_vocabulary(directory: str, entries: Iterable[str | bytes]) -> str:
    """Writes a learned vocabulary as `directory`'s vocabulary file; returns the file's path.

    Args:
        directory: the tokenizer's directory; created if missing.
        entries: as in `write_vocabulary_file`.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, VOCABULARY_FILE_NAME)
    write_vocabulary_file(path, entries)
    return path


def count_vocabulary_entries(path: str) -> int:
    """Returns the number of entries (lines) in a vocabulary file, reserved ones included.

    The tokenizers need the size as a Python int (to size embeddings) without running a
    lookup table's `size()` op.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Vocabulary file not found: {path}")
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def most_frequent(counts: collections.Counter, limit: int | None) -> list:
    """Returns the keys of `counts`, most frequent first, at most `limit` of them.

    Ties are broken by the key itself so that the same corpus always yields the same
    vocabulary, whatever order the documents came in.
    """
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if limit is not None:
        ranked = ranked[:limit]
    return [key for key, _ in ranked]


def check_max_vocab_size(max_vocab_size: int | None) -> None:
    """Raises ValueError unless `max_vocab_size` is None or leaves room for a real token."""
    if max_vocab_size is not None and max_vocab_size <= len(RESERVED_TOKENS):
        raise ValueError(
            f"max_vocab_size must be larger than the {len(RESERVED_TOKENS)} reserved ids, "
            f"got {max_vocab_size}."
        )


def batches(texts: list, batch_size: int = 1024) -> Iterable[list]:
    """Yields `texts` in slices of `batch_size` documents, to bound the memory of eager ops."""
    for start in range(0, len(texts), batch_size):
        yield texts[start : start + batch_size]
