"""Human-written dates and their ISO form: the generator behind `kerasgen_dates`.

Each format is a function `(date, rng) -> str`. The numeric formats follow one convention per
separator so that no string has two readings: `/` is month/day/year (US), `.` is
day.month.year (European), `-` and plain digits are year first. Two-digit years are 1950–2049
(`yy >= 50` means 19yy), the range every split draws from.
"""

from __future__ import annotations

import datetime
import random

FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)

MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_ONES = [
    "", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
    "seventeenth", "eighteenth", "nineteenth",
]  # fmt: skip


def ordinal_suffix(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def ordinal_word(day: int) -> str:
    """1 → "first", 21 → "twenty-first", 30 → "thirtieth"."""
    if day < 20:
        return _ONES[day]
    tens = {2: "twenty", 3: "thirty"}[day // 10]
    if day % 10 == 0:
        return {2: "twentieth", 3: "thirtieth"}[day // 10]
    return f"{tens}-{_ONES[day % 10]}"


def _month(date, rng):
    name = MONTHS[date.month - 1]
    return rng.choice([name, name[:3], name[:3] + "."]) if name != "May" else name


def _day(date, rng):
    return rng.choice([str(date.day), f"{date.day}{ordinal_suffix(date.day)}"])


def _weekday(date, rng):
    name = WEEKDAYS[date.weekday()]
    return rng.choice([name, name[:3]])


FORMATS = [
    lambda d, r: f"{_month(d, r)} {_day(d, r)}, {d.year}",  # March 3rd, 2021
    lambda d, r: f"{_day(d, r)} {_month(d, r)} {d.year}",  # 3 March 2021
    lambda d, r: f"{d.day} {_month(d, r)}, {d.year}",  # 3 Mar, 2021
    lambda d, r: f"{_weekday(d, r)}, {_month(d, r)} {_day(d, r)}, {d.year}",  # Wed, March 3, 2021
    lambda d, r: f"{_weekday(d, r)} {_day(d, r)} {_month(d, r)} {d.year}",  # Wed 3 March 2021
    lambda d, r: f"the {ordinal_word(d.day)} of {MONTHS[d.month - 1]} {d.year}",  # spelled day
    lambda d, r: f"{MONTHS[d.month - 1]} the {ordinal_word(d.day)}, {d.year}",
    lambda d, r: f"{d.month}/{d.day}/{d.year}",  # 3/3/2021 (US: month first)
    lambda d, r: f"{d.month:02d}/{d.day:02d}/{d.year}",  # 03/03/2021
    lambda d, r: f"{d.month}/{d.day}/{d.year % 100:02d}",  # 3/3/21
    lambda d, r: f"{d.day}.{d.month}.{d.year}",  # 3.3.2021 (European: day first)
    lambda d, r: f"{d.day:02d}.{d.month:02d}.{d.year}",  # 03.03.2021
    lambda d, r: f"{d.year}-{d.month}-{d.day}",  # 2021-3-3
    lambda d, r: f"{d.year}{d.month:02d}{d.day:02d}",  # 20210303
    lambda d, r: f"{d.year}/{d.month:02d}/{d.day:02d}",  # 2021/03/03 (year first: unambiguous)
    lambda d, r: f"{_month(d, r)} {d.year}, {_day(d, r)}",  # March 2021, 3rd
    lambda d, r: f"{_day(d, r)} of {_month(d, r)}, {d.year}",  # 3rd of March, 2021
    lambda d, r: f"{_month(d, r)} {d.day} '{d.year % 100:02d}",  # March 3 '21
]


def add_noise(text: str, rng: random.Random) -> str:
    """Case changes and stray spaces or punctuation, none of which changes the date."""
    choice = rng.random()
    if choice < 0.15:
        text = text.lower()
    elif choice < 0.25:
        text = text.upper()
    if rng.random() < 0.15:
        text = text.replace(" ", "  ", 1)
    if rng.random() < 0.1:
        text = " " + text if rng.random() < 0.5 else text + " "
    if rng.random() < 0.1:
        text = text + rng.choice([".", ",", "!"])
    return text


def random_pair(rng: random.Random) -> tuple[str, str]:
    """One (human date, ISO date) pair, noise applied to a fifth of the human forms."""
    span = (LAST_DATE - FIRST_DATE).days
    date = FIRST_DATE + datetime.timedelta(days=rng.randrange(span + 1))
    text = rng.choice(FORMATS)(date, rng)
    if rng.random() < 0.2:
        text = add_noise(text, rng)
    return text, date.isoformat()


def write_pairs(seed: int, count: int, exclude: set[str]) -> list[tuple[str, str]]:
    """`count` pairs whose human forms are distinct and not in `exclude`."""
    rng = random.Random(seed)
    pairs, seen = [], set(exclude)
    while len(pairs) < count:
        source, target = random_pair(rng)
        if source not in seen:
            seen.add(source)
            pairs.append((source, target))
    return pairs
