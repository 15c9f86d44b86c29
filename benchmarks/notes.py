"""The benchmarks' sections of BUILD_NOTES.md: each script's figures live between the markers
`<!-- NAME:begin -->` and `<!-- NAME:end -->`, and a rerun replaces only what they hold.

    write_section("BUILD_NOTES.md", "gpt_benchmark", text, add=at_the_end("### Tiny Shakespeare"))

`at_the_end` and `after` say where a section goes the first time, when its markers are missing.
"""

import os
import re


def write_section(path, name, text, *, add=None):
    """Puts `text` between the markers `<!-- {name}:begin -->` and `<!-- {name}:end -->` of the
    file at `path`, replacing what they held; where the markers are missing (or the file is),
    `add(notes, block) -> notes` places the marked block (default `at_the_end()`)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text}\n{end}"
    notes = ""
    if os.path.exists(path):
        # newline="": the file's other bytes, \r\n line ends included, are written back as read.
        with open(path, encoding="utf-8", newline="") as f:
            notes = f.read()
    # A function replacement: backslashes and `\1` in the text are kept literally.
    notes, count = re.subn(
        re.escape(begin) + ".*?" + re.escape(end), lambda _: block, notes, flags=re.S
    )
    if not count:
        notes = (add or at_the_end())(notes, block)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(notes)


def at_the_end(heading=None, *, part=None):
    """An `add` for `write_section`: the block, under `heading` if given, at the end of the
    notes, or at the end of their part whose `## ` heading line starts with `part` when the
    notes have one that another `## ` heading follows."""

    def add(notes, block):
        section = f"{heading}\n\n{block}\n" if heading else f"{block}\n"
        start = part and re.search("^" + re.escape(part) + ".*$", notes, flags=re.M)
        # The part ends at the next `## ` heading (the notes' one `# ` heading is their title).
        following = start and re.search(r"^## ", notes[start.end() :], flags=re.M)
        if following:
            at = start.end() + following.start()
            return notes[:at] + section + "\n" + notes[at:]
        notes = notes.rstrip("\n")
        return (notes + "\n\n" if notes else "") + section

    return add


def after(anchor, fallback=None):
    """An `add` for `write_section`: the block on a paragraph of its own just after the first
    `anchor` in the notes (e.g. another section's end marker), or where `fallback` (default
    `at_the_end()`) puts it when the notes lack the anchor."""

    def add(notes, block):
        if anchor not in notes:
            return (fallback or at_the_end())(notes, block)
        return notes.replace(anchor, anchor + "\n\n" + block, 1)

    return add
