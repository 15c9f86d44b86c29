"""The words the kerasgen_dialogue grammar writes with.

Every word list here was written for this project; the cast names are invented. Nouns come in
rhyme groups so the grammar can end two lines on rhyming words, and each noun carries a kind
(``thing``, ``place``, ``sky`` or ``beast``) so a slot only takes nouns that make sense in it:
one carries a thing, walks to a place, waits for the sky to change and hears a beast.
"""

# Speaker names, written in capitals before the colon and in title case inside a line.
CAST = (
    "MAREL",
    "TOBIN",
    "SEVRA",
    "OLLIK",
    "FENNA",
    "BRISCO",
    "HALWEN",
    "PIM",
    "DRUSA",
    "CORVEN",
    "ISKA",
    "LOMAS",
)

# (word, kind) pairs; the words of one group rhyme with each other.
RHYME_GROUPS = (
    (("night", "sky"), ("light", "sky"), ("kite", "thing"), ("height", "place")),
    (("sea", "place"), ("tree", "place"), ("key", "thing"), ("quay", "place"), ("bee", "beast")),
    (("stone", "thing"), ("bone", "thing"), ("throne", "place"), ("cone", "thing")),
    (("bay", "place"), ("hay", "thing"), ("clay", "thing"), ("day", "sky"), ("jay", "beast")),
    (("hill", "place"), ("mill", "place"), ("sill", "place"), ("quill", "thing")),
    (
        ("rain", "sky"),
        ("lane", "place"),
        ("chain", "thing"),
        ("crane", "beast"),
        ("grain", "thing"),
    ),
    (("bell", "thing"), ("well", "place"), ("shell", "thing"), ("dell", "place")),
    (
        ("shore", "place"),
        ("door", "place"),
        ("floor", "place"),
        ("oar", "thing"),
        ("boar", "beast"),
    ),
    (("town", "place"), ("crown", "thing"), ("gown", "thing")),
    (("moon", "sky"), ("noon", "sky"), ("spoon", "thing"), ("dune", "place"), ("loon", "beast")),
    (("dark", "sky"), ("spark", "thing"), ("lark", "beast"), ("park", "place")),
    (("bread", "thing"), ("thread", "thing"), ("bed", "place"), ("shed", "place")),
    (("ring", "thing"), ("string", "thing"), ("wing", "thing"), ("spring", "sky")),
    (("gate", "place"), ("slate", "thing"), ("plate", "thing"), ("crate", "thing")),
    (("snow", "sky"), ("crow", "beast"), ("bow", "thing")),
    (("fire", "place"), ("wire", "thing"), ("spire", "place"), ("lyre", "thing")),
    (("rock", "place"), ("dock", "place"), ("lock", "thing"), ("clock", "thing")),
    (("sail", "thing"), ("pail", "thing"), ("nail", "thing"), ("gale", "sky"), ("whale", "beast")),
    (("pier", "place"), ("spear", "thing"), ("deer", "beast"), ("year", "sky"), ("weir", "place")),
    (("sand", "place"), ("land", "place"), ("strand", "place"), ("band", "thing")),
    (("fox", "beast"), ("box", "thing"), ("ox", "beast")),
    (("goat", "beast"), ("boat", "thing"), ("coat", "thing"), ("moat", "place")),
    (("stream", "place"), ("beam", "thing"), ("cream", "thing")),
    (("mound", "place"), ("hound", "beast"), ("ground", "place")),
    (("mist", "sky"), ("list", "thing"), ("wrist", "thing")),
)

# Nouns that rhyme with nothing else here; they widen the slots but never end a couplet.
LONE_NOUNS = (
    ("lantern", "thing"),
    ("ladder", "thing"),
    ("kettle", "thing"),
    ("basket", "thing"),
    ("letter", "thing"),
    ("compass", "thing"),
    ("blanket", "thing"),
    ("candle", "thing"),
    ("hammer", "thing"),
    ("ribbon", "thing"),
    ("mirror", "thing"),
    ("harbour", "place"),
    ("orchard", "place"),
    ("market", "place"),
    ("chapel", "place"),
    ("bridge", "place"),
    ("kitchen", "place"),
    ("garden", "place"),
    ("cellar", "place"),
    ("morning", "sky"),
    ("evening", "sky"),
    ("thunder", "sky"),
    ("winter", "sky"),
    ("summer", "sky"),
    ("otter", "beast"),
    ("heron", "beast"),
    ("badger", "beast"),
    ("rabbit", "beast"),
    ("owl", "beast"),
)

ADJECTIVES = (
    "old",
    "young",
    "silver",
    "golden",
    "quiet",
    "bitter",
    "small",
    "tall",
    "hollow",
    "broken",
    "cold",
    "warm",
    "grey",
    "green",
    "blue",
    "red",
    "bright",
    "dim",
    "crooked",
    "gentle",
    "heavy",
    "lonely",
    "salty",
    "sleepy",
    "wild",
    "empty",
    "hidden",
    "narrow",
    "rusty",
    "wooden",
    "muddy",
    "little",
    "strange",
    "borrowed",
    "painted",
    "patient",
    "restless",
    "tired",
    "clever",
    "proud",
)

# Family and trades: "my mother", "the miller's lantern".
KIN = (
    "mother",
    "father",
    "sister",
    "brother",
    "uncle",
    "aunt",
    "grandmother",
    "cousin",
    "neighbour",
    "captain",
    "baker",
    "miller",
    "ferryman",
    "weaver",
    "keeper",
)

# (base, past) forms of verbs that take a thing as their object.
VERBS = (
    ("take", "took"),
    ("steal", "stole"),
    ("hide", "hid"),
    ("break", "broke"),
    ("sell", "sold"),
    ("lose", "lost"),
    ("find", "found"),
    ("mend", "mended"),
    ("paint", "painted"),
    ("bury", "buried"),
    ("move", "moved"),
    ("wash", "washed"),
    ("carry", "carried"),
    ("drop", "dropped"),
    ("borrow", "borrowed"),
    ("polish", "polished"),
    ("count", "counted"),
    ("buy", "bought"),
    ("keep", "kept"),
    ("bring", "brought"),
)

# Where a thing can be, relative to a place.
PREPOSITIONS = ("under", "behind", "beside", "near", "on", "inside", "past", "below")

# (scene time, greeting, "today" or "tonight"): the header's time of day decides how the cast
# greet each other and which adverb they use, a dependency that spans the whole scene.
TIMES = (
    ("at dawn", "Good morning", "today"),
    ("in the morning", "Good morning", "today"),
    ("at noon", "Good day", "today"),
    ("in the afternoon", "Good day", "today"),
    ("at dusk", "Good evening", "tonight"),
    ("late at night", "Good evening", "tonight"),
)

# When something happened, for answers to "who" questions.
WHEN = (
    "yesterday",
    "last winter",
    "an hour ago",
    "before the rain",
    "while you slept",
    "at first light",
    "on market day",
    "long ago",
)
