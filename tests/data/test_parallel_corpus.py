"""Sentence pairs from TSV files, and the padded, length-bucketed pipeline."""

import numpy as np
import pytest

from kerasgen.data.corpus import CorpusError
from kerasgen.data.parallel_corpus import load_parallel_corpus, read_tsv_pairs
from kerasgen.data.translation_pipeline import translation_dataset
from kerasgen.tokenizers import learn_tokenizer


def test_bad_lines_are_skipped_and_counted_with_their_numbers(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(
        "Go.\tVa !\tCC-BY attribution\nno tab here\n\n\tempty source\nHi.\t \nRun!\tCours !\n"
    )
    warnings = []
    pairs = read_tsv_pairs(str(path), log=warnings.append)
    assert pairs == [("Go.", "Va !"), ("Run!", "Cours !")]
    assert len(warnings) == 1
    assert "skipped 3 line(s)" in warnings[0] and "line 2, 4, 5" in warnings[0]


def test_no_valid_pair_is_an_error(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("no tab\nstill none\n")
    with pytest.raises(CorpusError, match="no valid"):
        read_tsv_pairs(str(path))
    with pytest.raises(CorpusError, match="no such file"):
        read_tsv_pairs(str(tmp_path / "missing.tsv"))


def test_a_file_is_shuffled_and_split(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"s{i}\tt{i}\n" for i in range(50)))
    corpus = load_parallel_corpus(data_path=str(path), validation_fraction=0.1)
    assert len(corpus.train) == 45 and len(corpus.validation) == 5
    assert sorted(corpus.train + corpus.validation) == sorted((f"s{i}", f"t{i}") for i in range(50))
    assert corpus.train[:5] != [(f"s{i}", f"t{i}") for i in range(5)]  # Anki files are sorted


def test_pipeline_pads_buckets_and_weights_real_tokens_only(tmp_path):
    pairs = [("ab" * n, "xy" * (n % 3)) for n in range(1, 30)]
    source = learn_tokenizer("character", [s for s, _ in pairs], str(tmp_path / "s"))
    target = learn_tokenizer("character", ["xy"], str(tmp_path / "t"))
    data = translation_dataset(
        pairs, source.tokenize, target.tokenize, batch_size=4, start_id=1, end_id=2,
        shuffle=True, bucket_boundaries=(10, 30),
    )  # fmt: skip
    assert data.options().autotune.enabled is False  # see kerasgen/data/prefetching.py
    seen = 0
    for (source_ids, target_in), target_out, weights in data:
        source_ids, target_in, target_out = (
            source_ids.numpy(),
            target_in.numpy(),
            target_out.numpy(),
        )
        lengths = (source_ids != 0).sum(1)
        assert np.all(source_ids[np.arange(len(lengths)), lengths - 1] == 2)  # source + end
        assert np.all(target_in[:, 0] == 1)  # start token
        np.testing.assert_array_equal(weights.numpy(), (target_out != 0).astype(np.float32))
        np.testing.assert_array_equal(target_in != 0, target_out != 0)  # same lengths
        np.testing.assert_array_equal(
            target_in[:, 1:], np.where(target_out[:, :-1] == 2, 0, target_out[:, :-1])
        )
        assert np.all((target_out == 2).sum(1) == 1)  # one end token per row
        seen += len(source_ids)
    assert seen == len(pairs)


def test_batches_padded_to_bucket_edges_have_a_few_shapes_and_the_same_pairs(tmp_path):
    pairs = [("ab" * n, "xy" * (n % 5)) for n in range(1, 40)]
    source = learn_tokenizer("character", [s for s, _ in pairs], str(tmp_path / "s"))
    target = learn_tokenizer("character", ["xy"], str(tmp_path / "t"))

    def rows(pad_to_bucket_edges):
        data = translation_dataset(
            pairs, source.tokenize, target.tokenize, batch_size=4, start_id=1, end_id=2,
            shuffle=False, bucket_boundaries=(10, 30, 60),
            pad_to_bucket_edges=pad_to_bucket_edges,
        )  # fmt: skip
        shapes, found = set(), []
        for (source_ids, target_in), target_out, weights in data:
            shapes.add((source_ids.shape[1], target_in.shape[1], target_out.shape[1]))
            np.testing.assert_array_equal(weights.numpy(), (target_out != 0).numpy())
            for row in zip(*(t.numpy() for t in (source_ids, target_in, target_out)), strict=True):
                found.append(tuple(tuple(ids[ids != 0]) for ids in row))
        return shapes, sorted(found)

    shapes, padded = rows(True)
    # Sources of 3 to 79 tokens (source + end): the buckets' 9 and 29 and 59, and past the
    # last edge (60) a multiple of 64; source and target alike.
    assert shapes == {(9, 9, 9), (29, 29, 29), (59, 59, 59), (128, 128, 128)}
    unpadded_shapes, unpadded = rows(False)
    assert len(unpadded_shapes) > len(shapes)
    assert padded == unpadded
