"""A seeded stochastic grammar that writes short play-like scenes and songs.

A document is a scene (most of them) or a song, one line per ``\\n``:

    SCENE: A muddy lane by the harbour, at dusk.
    [Enter MAREL and TOBIN.]
    MAREL: Cold is the night, and quiet is the shore.
    MAREL: Good evening, Tobin.
    TOBIN: Good evening, Marel. The rain is bitter tonight.
    ...
    ALL: Cold is the night, and quiet is the shore.

Beyond spelling and the ``NAME: line`` layout, the text has structure for a language model to
learn at several ranges:

- rhyme: a couplet ends its two lines on two words of one rhyme group (`lexicon.RHYME_GROUPS`);
- repetition: a scene's refrain opens and closes it, a song repeats its refrain after every
  stanza, and the refrain of a song names the thing in its title;
- copying: answers repeat the noun phrase of the question, greetings the other speaker's name;
- agreement across the scene: the header's time of day decides the greeting and whether the
  cast say "today" or "tonight";
- bookkeeping: only characters on stage speak; ``[Enter X.]`` and ``[Exit X.]`` change who is.

Everything is drawn from one `random.Random`, so a seed always writes the same documents.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Container

from . import lexicon

_NOUNS = [noun for group in lexicon.RHYME_GROUPS for noun in group] + list(lexicon.LONE_NOUNS)
_NOUNS_OF_KIND = {
    kind: [word for word, word_kind in _NOUNS if word_kind == kind]
    for kind in ("thing", "place", "sky", "beast")
}

# Lines that end on a noun of one kind (the `{X}` slot), for couplets. Other slots take a fresh
# random word each. A template written as a question keeps its "?".
_COUPLET_LINES = {
    "thing": (
        "beside the {place} I found {a_adj} {X}",
        "my {kin} once gave me {a_adj} {X}",
        "the {beast} came by and took my {X}",
        "I would not trade it for {a_adj} {X}",
        "so bring me back my {adj} {X}",
        "and all I carry is {a_adj} {X}",
        "who left upon the {place} this {adj} {X}?",
    ),
    "place": (
        "we walked all evening to the {X}",
        "the {beast} is sleeping by the {X}",
        "I will wait for you beside the {X}",
        "and no one knows the road back to the {X}",
        "your {kin} is singing on the {X}",
        "I left my {thing} upon the {X}",
        "the {sky} came down across the {X}",
    ),
    "sky": (
        "the lamps are lit against the {X}",
        "we sing our {adj} songs into the {X}",
        "my {kin} will come home with the {X}",
        "I sit by the {place}, waiting for the {X}",
        "there is no shelter from the {X}",
        "the {beast} is calling to the {X}",
    ),
    "beast": (
        "down by the {place} there runs {a_X}",
        "and on my {thing} there sat {a_adj} {X}",
        "I heard the calling of {a_adj} {X}",
        "you are as {adj} as {a_X}",
        "my {kin} went looking for {a_adj} {X}",
    ),
}

# A scene's refrain, spoken by the first speaker after the entrance and by ALL at the end.
_SCENE_REFRAINS = (
    "{adj} is the {sky}, and {adj} is the {place}.",
    "keep the {thing} and mind the {thing}, and we shall all come home.",
    "over the {place} and under the {place}, the {beast} goes home.",
    "the {sky} will pass, the {sky} will come, and still the {place} remains.",
    "one for the {thing}, two for the {thing}, and three for the {place}.",
)

# A song's refrain; `{X}` is the thing named in the song's title.
_SONG_REFRAINS = (
    "sing for the {kin}, and sing for the {X}.",
    "oh, the {X}, the {adj} {X}, who will carry it home?",
    "round the {place} and back again, and never lose the {X}.",
    "low and slow, the {sky} will go, but not the {X}.",
)

_SOUNDS = (
    "A bell rings, far away.",
    "Thunder.",
    "A door bangs somewhere.",
    "Music from the {place}.",
    "Footsteps on the {place}.",
)

_NEWS = (
    "the {beast} has left the {place}, and the {thing} is {adj}.",
    "the {kin} has sold the {thing} at the {place}.",
    "the {sky} is coming early this year.",
    "someone has painted the {place} {adj}.",
)

_SLOT = re.compile(r"\{(\w+)\}")


def _with_article(word: str) -> str:
    """ "an old key", "a silver key": every word in the lexicon is spelled as it sounds."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def _capitalize(text: str) -> str:
    return text[0].upper() + text[1:]


def _title(name: str) -> str:
    """A cast name as written inside a line: MAREL -> Marel."""
    return name.capitalize()


_SLOT_WRITERS: dict[str, Callable[[random.Random], str]] = {
    "thing": lambda rng: rng.choice(_NOUNS_OF_KIND["thing"]),
    "place": lambda rng: rng.choice(_NOUNS_OF_KIND["place"]),
    "sky": lambda rng: rng.choice(_NOUNS_OF_KIND["sky"]),
    "beast": lambda rng: rng.choice(_NOUNS_OF_KIND["beast"]),
    "adj": lambda rng: rng.choice(lexicon.ADJECTIVES),
    "a_adj": lambda rng: _with_article(rng.choice(lexicon.ADJECTIVES)),
    "kin": lambda rng: rng.choice(lexicon.KIN),
}


def _fill(rng: random.Random, template: str, **fixed: str) -> str:
    """Fills each `{slot}` with a fresh random word, or with `fixed[slot]` when given.

    `{a_X}` is `fixed["X"]` with its article.
    """
    if "X" in fixed:
        fixed.setdefault("a_X", _with_article(fixed["X"]))

    def write(match: re.Match[str]) -> str:
        slot = match.group(1)
        return fixed[slot] if slot in fixed else _SLOT_WRITERS[slot](rng)

    return _SLOT.sub(write, template)


def _couplet(rng: random.Random) -> tuple[str, str]:
    """Two lines, without final punctuation, ending on two rhyming nouns."""
    group = rng.choice(lexicon.RHYME_GROUPS)
    (first, first_kind), (second, second_kind) = rng.sample(group, 2)
    first_template = rng.choice(_COUPLET_LINES[first_kind])
    # Two lines from one template would read as a stutter, not as verse.
    second_templates = [t for t in _COUPLET_LINES[second_kind] if t != first_template]
    second_template = rng.choice(second_templates)
    first_line = _fill(rng, first_template, X=first)
    second_line = _fill(rng, second_template, X=second)
    # A joining word makes the pair read as one sentence; a question stands alone.
    if not second_line.startswith(("and ", "so ")) and not second_line.endswith("?"):
        second_line = rng.choice(("", "", "and ", "but ", "so ")) + second_line
    return _capitalize(first_line), _capitalize(second_line)


def _end(line: str, mark: str) -> str:
    """Ends a line with `mark`, unless the line is a question."""
    return line if line.endswith("?") else line + mark


class _Scene:
    """The state of one scene being written: who is on stage, the time of day, the lines."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        cast = rng.sample(lexicon.CAST, 5)
        first_count = 2 if rng.random() < 0.7 else 3
        self.on_stage = cast[:first_count]
        self.off_stage = cast[first_count:]
        self.time, self.greeting, self.adverb = rng.choice(lexicon.TIMES)
        self.lines: list[str] = []

    def say(self, speaker: str, text: str) -> None:
        self.lines.append(f"{speaker}: {_capitalize(text)}")

    def direct(self, text: str) -> None:
        self.lines.append(f"[{text}]")

    def fill(self, template: str, **fixed: str) -> str:
        return _fill(self.rng, template, **fixed)

    def pair(self) -> tuple[str, str]:
        first, second = self.rng.sample(self.on_stage, 2)
        return first, second

    # Each exchange below is a few lines between two (sometimes three) characters on stage.

    def greet(self) -> None:
        a, b = self.pair()
        self.say(a, f"{self.greeting}, {_title(b)}.")
        if self.rng.random() < 0.5:
            self.say(
                b, self.fill(f"{self.greeting}, {_title(a)}. The {{sky}} is {{adj}} {self.adverb}.")
            )
        else:
            place = self.fill("{place}")
            self.say(b, f"{self.greeting}, {_title(a)}. Have you come from the {place}?")
            self.say(a, f"Yes, straight from the {place}.")

    def ask_where(self) -> None:
        a, b = self.pair()
        thing = self.fill("{adj} {thing}")
        place = self.fill("{place}")
        preposition = self.rng.choice(lexicon.PREPOSITIONS)
        question = self.rng.choice(("where is the {}?", "have you seen the {}?"))
        self.say(a, question.format(thing))
        if self.rng.random() < 0.5:
            self.say(b, f"the {thing} is {preposition} the {place}.")
        else:
            when = self.rng.choice(lexicon.WHEN)
            self.say(b, f"I saw the {thing} {preposition} the {place}, {when}.")
        follow_up = self.rng.random()
        if follow_up < 0.4:
            self.say(a, f"then I will go to the {place}.")
        elif follow_up < 0.7:
            self.say(a, f"{preposition} the {place}? Are you sure?")
            self.say(b, f"I am sure, {_title(a)}.")

    def ask_who(self) -> None:
        a, b = self.pair()
        culprit = _title(self.rng.choice([n for n in lexicon.CAST if n not in (a, b)]))
        base, past = self.rng.choice(lexicon.VERBS)
        thing = self.fill("{thing}")
        when = self.rng.choice(lexicon.WHEN)
        self.say(a, f"who {past} the {thing}?")
        self.say(b, f"{culprit} {past} the {thing}, {when}.")
        follow_up = self.rng.random()
        if follow_up < 0.35:
            self.say(a, f"then {culprit} must bring it back.")
        elif follow_up < 0.7:
            self.say(a, f"why would {culprit} {base} the {thing}?")
            self.say(b, self.fill(f"because {culprit} wanted {{a_adj}} {thing} of their own."))
        else:
            self.say(a, f"{culprit}? I do not believe it.")

    def command(self) -> None:
        a, b = self.pair()
        base, past = self.rng.choice(lexicon.VERBS)
        thing = self.fill("{thing}")
        self.say(a, f"{base} the {thing}, {_title(b)}!")
        answer = self.rng.random()
        if answer < 0.35:
            self.say(b, self.fill(f"I will {base} the {thing} when the {{sky}} comes."))
        elif answer < 0.6:
            self.say(b, f"I {past} the {thing} {self.rng.choice(lexicon.WHEN)}.")
        else:
            self.say(b, f"why must I {base} the {thing}?")
            self.say(a, self.fill(f"because the {{sky}} is coming, and the {thing} is {{adj}}."))

    def echo(self) -> None:
        a, b = self.pair()
        sky = self.fill("{sky}")
        adjective = self.fill("{adj}")
        self.say(a, f"the {sky} is {adjective} {self.adverb}.")
        if self.rng.random() < 0.6:
            self.say(
                b,
                self.fill(
                    f"{adjective}, you say? The {sky} is as {adjective} as {{a_adj}} {{thing}}."
                ),
            )
        else:
            self.say(b, self.fill(f"{adjective}, and {{adj}} too."))

    def rhyme(self) -> None:
        a, b = self.pair()
        first, second = _couplet(self.rng)
        self.say(a, _end(first, "."))
        self.say(b, _end(second, self.rng.choice((".", ".", "!"))))

    def recite(self) -> None:
        speaker = self.rng.choice(self.on_stage)
        first, second = _couplet(self.rng)
        self.say(speaker, _end(first, ","))
        self.say(speaker, _end(second, "."))

    def listen(self) -> None:
        a, b = self.pair()
        self.direct(self.fill(self.rng.choice(_SOUNDS)))
        preposition = self.rng.choice(lexicon.PREPOSITIONS)
        self.say(a, self.fill(f"listen! That is the {{beast}} {preposition} the {{place}}."))
        self.say(b, self.fill(f"no, {_title(a)}. It is only the {{sky}} on the {{place}}."))

    def plan(self) -> None:
        a, b = self.pair()
        (first_verb, _), (second_verb, _) = self.rng.sample(lexicon.VERBS, 2)
        when = "tomorrow" if self.adverb == "tonight" else "this evening"
        self.say(
            a,
            self.fill(
                f"{when} we will {first_verb} the {{thing}} and {second_verb} the {{thing}}."
            ),
        )
        self.say(b, "and after that?")
        self.say(
            a,
            self.fill(
                self.rng.choice(("after that, we rest.", "after that, we go to the {place}."))
            ),
        )

    def enter(self) -> None:
        newcomer = self.rng.choice(self.off_stage)
        self.off_stage.remove(newcomer)
        self.on_stage.append(newcomer)
        self.direct(f"Enter {newcomer}.")
        self.say(newcomer, self.fill(f"{self.greeting}, all. I bring news from the {{place}}."))
        asker = self.rng.choice([n for n in self.on_stage if n != newcomer])
        self.say(asker, f"what news, {_title(newcomer)}?")
        self.say(newcomer, self.fill(self.rng.choice(_NEWS)))

    def exit(self) -> None:
        leaver = self.rng.choice(self.on_stage)
        self.say(
            leaver,
            self.fill(
                self.rng.choice(("I must go.", "farewell, all.", "I must go to the {place}."))
            ),
        )
        self.on_stage.remove(leaver)
        self.off_stage.append(leaver)
        self.direct(f"Exit {leaver}.")

    def write(self) -> str:
        header = self.fill("{a_adj} {place} by the {place}")
        self.lines.append(f"SCENE: {_capitalize(header)}, {self.time}.")
        self.direct(f"Enter {', '.join(self.on_stage[:-1])} and {self.on_stage[-1]}.")
        refrain = _capitalize(self.fill(self.rng.choice(_SCENE_REFRAINS)))
        self.say(self.on_stage[0], refrain)
        if self.rng.random() < 0.7:
            self.greet()
        talk = (
            self.ask_where,
            self.ask_who,
            self.command,
            self.echo,
            self.rhyme,
            self.recite,
            self.listen,
            self.plan,
        )
        weights = (3, 3, 3, 2, 4, 2, 1, 1)
        for _ in range(self.rng.randint(3, 6)):
            if len(self.on_stage) < 3 and self.off_stage and self.rng.random() < 0.12:
                self.enter()
            elif len(self.on_stage) > 2 and self.rng.random() < 0.12:
                self.exit()
            else:
                self.rng.choices(talk, weights)[0]()
        self.say("ALL", refrain)
        return "\n".join(self.lines)


def write_scene(rng: random.Random) -> str:
    """One scene: header, entrance, refrain, a few exchanges, the refrain again by ALL."""
    return _Scene(rng).write()


def write_song(rng: random.Random) -> str:
    """One song: a title, then two or three stanzas of couplets, each closed by the refrain."""
    kin = rng.choice(lexicon.KIN)
    thing = rng.choice(_NOUNS_OF_KIND["thing"])
    singer = rng.choice(lexicon.CAST)
    refrain = _capitalize(_fill(rng, rng.choice(_SONG_REFRAINS), X=thing))
    lines = [f"SONG: The {_capitalize(kin)}'s {_capitalize(thing)}.", f"[{singer} sings.]"]
    for _ in range(rng.randint(2, 3)):
        for _ in range(rng.randint(1, 2)):
            first, second = _couplet(rng)
            lines.append(f"{singer}: {_end(first, ',')}")
            lines.append(f"{singer}: {_end(second, '.')}")
        lines.append(f"ALL: {refrain}")
    return "\n".join(lines)


def write_document(rng: random.Random) -> str:
    """A scene (four times in five) or a song, its lines joined by "\\n"."""
    return write_scene(rng) if rng.random() < 0.8 else write_song(rng)


def write_documents(seed: int, num_chars: int, exclude: Container[str] = ()) -> list[str]:
    """Writes documents until they hold at least `num_chars` characters.

    Args:
        seed: seeds the `random.Random` every choice is drawn from.
        num_chars: stop once the documents' lengths add up to this many characters.
        exclude: documents not to repeat (e.g. another split's), also never repeated within
            the returned list.

    Returns:
        The documents, in the order written; the same arguments always give the same list.
    """
    rng = random.Random(seed)
    documents: list[str] = []
    seen: set[str] = set()
    total = 0
    while total < num_chars:
        document = write_document(rng)
        if document in seen or document in exclude:
            continue
        seen.add(document)
        documents.append(document)
        total += len(document)
    return documents
