"""The generated parallel tasks: deterministic, disjoint splits, targets that are right."""

import datetime
import random

from kerasgen_datasets.kerasgen_dates import date_formats
from kerasgen_datasets.kerasgen_dates.kerasgen_dates_dataset_builder import (
    write_splits as write_date_splits,
)
from kerasgen_datasets.kerasgen_reversal.kerasgen_reversal_dataset_builder import (
    write_pairs as write_reversal_pairs,
)


def test_every_format_renders_a_date_that_maps_to_its_iso_form():
    rng = random.Random(0)
    date = datetime.date(2021, 3, 3)
    for render in date_formats.FORMATS:
        text = render(date, rng)
        assert text and text != "2021-03-03"
    assert date_formats.ordinal_word(21) == "twenty-first"
    assert date_formats.ordinal_word(30) == "thirtieth"
    assert date_formats.ordinal_suffix(12) == "th" and date_formats.ordinal_suffix(22) == "nd"


def test_pairs_are_seeded_distinct_and_iso():
    first = date_formats.write_pairs(5, 300, exclude=set())
    assert first == date_formats.write_pairs(5, 300, exclude=set())
    assert len({source for source, _ in first}) == 300
    for _, target in first:
        parsed = datetime.date.fromisoformat(target)
        assert date_formats.FIRST_DATE <= parsed <= date_formats.LAST_DATE


def test_weekdays_and_numeric_conventions_are_consistent():
    rng = random.Random(1)
    for _ in range(200):
        source, target = date_formats.random_pair(rng)
        date = datetime.date.fromisoformat(target)
        if "/" in source and source.strip()[:4].isdigit() is False:
            month, day, _ = source.strip(" .,!").split("/")
            assert (int(month), int(day)) == (date.month, date.day)
        for weekday in date_formats.WEEKDAYS:
            if source.lower().startswith(weekday[:3].lower()):
                assert date.weekday() == date_formats.WEEKDAYS.index(weekday)


def test_date_splits_share_no_source(monkeypatch):
    from kerasgen_datasets.kerasgen_dates import kerasgen_dates_dataset_builder as builder

    monkeypatch.setattr(builder, "SPLITS", (("train", 1, 500), ("test", 3, 200)))
    splits = write_date_splits()
    assert not {s for s, _ in splits["train"]} & {s for s, _ in splits["test"]}


def test_reversal_pairs_reverse_and_respect_lengths():
    pairs = write_reversal_pairs(3, 100, [(22, 30, 1.0)], exclude=set())
    assert all(target == source[::-1] and 22 <= len(source) <= 30 for source, target in pairs)
