"""Loading a text corpus as train and validation documents.

Three sources, one result (`Corpus`):

- nothing given: kerasgen's own corpus, the `kerasgen_dialogue` TFDS dataset, built locally from
  a grammar (no network);
- `data_path`: any local UTF-8 text file, split by characters and then into paragraphs;
- `dataset`: any TFDS dataset with a text feature, by name (downloading it needs network).

Every problem with the data raises `CorpusError`, whose message is one line naming the file or
dataset, so the command line can print it and exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import re

import tensorflow_datasets as tfds

from kerasgen.errors import UserInputError

DEFAULT_DATASET = "kerasgen_dialogue"

# A paragraph ends at a blank line (empty or only spaces/tabs); runs of them count as one.
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")


class CorpusError(UserInputError):
    """A corpus that cannot be used; the message is one line naming the file or dataset."""


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Documents to train and validate a language model on.

    Attributes:
        name: where the text came from: a file path or a TFDS dataset name.
        train: training documents (paragraphs, scenes, or whole texts), in order.
        validation: held-out documents; no text is in both lists.
    """

    name: str
    train: list[str]
    validation: list[str]


def load_corpus(
    data_path: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    validation_fraction: float = 0.1,
) -> Corpus:
    """Loads a corpus from a text file, a TFDS dataset, or kerasgen's default dataset.

    Args:
        data_path: a local UTF-8 text file. Its first `1 - validation_fraction` of characters
            become the train part, the rest the validation part; each part is then split into
            documents at blank lines.
        dataset: a TFDS dataset name (optionally "name/config:version"). Its validation split
            is used if it has one, else `validation_fraction` of its train split.
        data_dir: where TFDS keeps prepared datasets (TFDS's default when None).
        validation_fraction: share held out for validation when the source has no split of
            its own, in (0, 1).

    Returns:
        The `Corpus`; at most one of `data_path` and `dataset` may be given, and with neither
        it is the `kerasgen_dialogue` dataset, built into `data_dir` on first use.

    Raises:
        CorpusError: the source is missing, unreadable, empty, not text, or too small to give
            both a train and a validation part.
    """
    check_source_arguments(data_path, dataset, validation_fraction, file_kind="a text file")
    if data_path is not None:
        return _load_text_file(data_path, validation_fraction)
    return _load_tfds(dataset or DEFAULT_DATASET, data_dir, validation_fraction)


def check_source_arguments(
    data_path: str | None, dataset: str | None, validation_fraction: float, file_kind: str
) -> None:
    """Checks the arguments every corpus loader takes: at most one source, and a validation
    share in (0, 1). `file_kind` names the file the loader reads, e.g. "a text file"."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if data_path is not None and dataset is not None:
        raise CorpusError(
            f"give {file_kind} or a dataset, not both (got data_path={data_path!r} and "
            f"dataset={dataset!r})"
        )


def split_paragraphs(text: str) -> list[str]:
    """Splits text into paragraphs at blank lines, keeping single newlines inside a paragraph.

    Leading and trailing newlines of each paragraph are dropped, as are paragraphs of only
    whitespace; other whitespace is kept.
    """
    paragraphs = (paragraph.strip("\n") for paragraph in _BLANK_LINES.split(text))
    return [paragraph for paragraph in paragraphs if paragraph.strip()]


def _load_text_file(path: str, validation_fraction: float) -> Corpus:
    text = read_text_file(path)
    # The cut is by characters, not paragraphs, so that a file that is one long paragraph
    # still gives a validation part.
    cut = int(len(text) * (1.0 - validation_fraction))
    train = split_paragraphs(text[:cut])
    validation = split_paragraphs(text[cut:])
    if not train or not validation:
        missing = "train" if not train else "validation"
        raise CorpusError(
            f"{path}: too small to split: the {missing} part is empty when "
            f"validation_fraction={validation_fraction} of its {len(text)} characters are held out"
        )
    return Corpus(name=path, train=train, validation=validation)


def read_text_file(path: str) -> str:
    if not os.path.exists(path):
        raise CorpusError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CorpusError(f"{path}: is a directory, expected a text file")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise CorpusError(f"{path}: cannot read: {error.strerror or error}") from error
    # UTF-8 allows NUL, but no text corpus holds one; it is the surest sign of a binary file.
    nul = data.find(b"\0")
    if nul >= 0:
        raise CorpusError(f"{path}: binary file (NUL byte at offset {nul}), expected UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{path}: not valid UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from error
    if not text.strip():
        raise CorpusError(f"{path}: empty file" if not text else f"{path}: only whitespace")
    # Windows line endings would otherwise hide blank lines from the paragraph split.
    return text.replace("\r\n", "\n")


def tfds_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    """The TFDS builder of dataset `name`, kerasgen's own datasets included.

    Raises:
        CorpusError: no such dataset, or one of kerasgen's without its package installed.
    """
    # Registers kerasgen's own datasets, so they load by name like any other.
    try:
        import kerasgen_datasets  # noqa: F401
    except ImportError as error:
        if name.split("/")[0].split(":")[0].startswith("kerasgen_"):
            raise CorpusError(
                f"{name}: needs the kerasgen_datasets package; install kerasgen (pip install -e .)"
            ) from error
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise CorpusError(unknown_dataset_message(name)) from error


def download_and_prepare(builder: tfds.core.DatasetBuilder, name: str) -> None:
    """Builds (downloading if it must) the dataset of `builder`; any failure is one line.

    Raises:
        CorpusError: the download or the build failed.
    """
    try:
        # try_download_gcs=False: only build from the builder's own sources, never fetch
        # prepared files from Google's bucket (kerasgen's datasets' sources are local code).
        with _few_download_retries():
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(try_download_gcs=False)
            )
    except Exception as error:  # noqa: BLE001 - any failure to download or build is reported
        if _is_connection_error(error):
            raise CorpusError(
                f"{name}: could not download it (no connection to its source: "
                f"{type(error).__name__}); prepare it once on a machine that is online (the same "
                "command, or `tfds build`) and point --data_dir at the prepared folder"
            ) from None
        reason = " ".join(str(error).split())  # one line, however the library wrote it
        if len(reason) > 200:
            reason = reason[:200] + "..."
        raise CorpusError(
            f"{name}: could not download and prepare the dataset ({type(error).__name__}: {reason})"
        ) from error


# Download attempts per file: TFDS's own 10 retries with exponential backoff take three and a
# half minutes to fail without a network; two retries still ride out a passing fault.
_DOWNLOAD_RETRIES = 2


@contextlib.contextmanager
def _few_download_retries():
    """TFDS's downloader with `_DOWNLOAD_RETRIES` retries while the block runs."""
    from tensorflow_datasets.core.download import downloader

    kept = downloader.MAX_RETRIES
    downloader.MAX_RETRIES = min(kept, _DOWNLOAD_RETRIES)
    try:
        yield
    finally:
        downloader.MAX_RETRIES = kept


def _is_connection_error(error):
    """Whether `error` (or what caused it) is a failure to reach the network."""
    import requests

    while error is not None:
        if isinstance(error, requests.exceptions.ConnectionError | ConnectionError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _load_tfds(name: str, data_dir: str | None, validation_fraction: float) -> Corpus:
    builder = tfds_builder(name, data_dir)
    text_feature = _text_feature(name, builder.info.features)
    download_and_prepare(builder, name)
    splits = builder.info.splits  # read after preparing: only then are they known for sure

    if "train" not in splits:
        raise CorpusError(f"{name}: has no train split (splits: {', '.join(sorted(splits))})")
    train = _read_documents(builder, "train", text_feature)
    if "validation" in splits:
        validation = _read_documents(builder, "validation", text_feature)
    else:
        train, validation = _hold_out(train, validation_fraction)
    if not train or not validation:
        raise CorpusError(f"{name}: too small to give both train and validation documents")
    return Corpus(name=name, train=train, validation=validation)


def _text_feature(name: str, features: tfds.features.FeaturesDict) -> str:
    """The key of the dataset's text: its only `Text` feature, or the one called "text"."""
    text_keys = [
        key for key, feature in features.items() if isinstance(feature, tfds.features.Text)
    ]
    if len(text_keys) == 1:
        return text_keys[0]
    if "text" in text_keys:
        return "text"
    if not text_keys:
        raise CorpusError(f"{name}: has no text feature (features: {', '.join(features)})")
    raise CorpusError(
        f"{name}: has several text features and none is called 'text' ({', '.join(text_keys)})"
    )


def _read_documents(builder: tfds.core.DatasetBuilder, split: str, key: str) -> list[str]:
    """The split's texts in stored order, less empty ones (some datasets keep blank lines)."""
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    texts = (example[key].decode("utf-8") for example in tfds.as_numpy(dataset))
    return [text for text in texts if text.strip()]


def _hold_out(documents: list[str], validation_fraction: float) -> tuple[list[str], list[str]]:
    """Holds out the last share of documents; a single document is cut by characters."""
    if len(documents) == 1:
        (text,) = documents
        cut = int(len(text) * (1.0 - validation_fraction))
        train, validation = text[:cut], text[cut:]
        return [train] if train.strip() else [], [validation] if validation.strip() else []
    held_out = max(1, round(len(documents) * validation_fraction))
    return documents[:-held_out], documents[-held_out:]


def unknown_dataset_message(name: str) -> str:
    known = tfds.list_builders(with_community_datasets=False)
    close = difflib.get_close_matches(name.split("/")[0].split(":")[0], known, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"{name}: no such TFDS dataset; {hint}e.g. {DEFAULT_DATASET}, tiny_shakespeare, "
        "wikitext/wikitext-2-raw-v1 (see tfds.list_builders())"
    )
