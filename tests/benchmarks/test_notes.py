"""benchmarks/notes.py: the benchmarks' marked sections of BUILD_NOTES.md."""

import importlib.util
import os

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPOSITORY, "benchmarks", "notes.py")

NOTES = (
    "# notes\n\n## Figures\n\nBefore.\n\n"
    "<!-- speed:begin -->\nold figures\n<!-- speed:end -->\n\n"
    "After, with a trailing space \n\n## Other\n\nMore.\n"
)


@pytest.fixture(scope="module")
def notes():
    spec = importlib.util.spec_from_file_location("notes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replacing_a_section_leaves_every_other_byte(notes, tmp_path):
    path = tmp_path / "BUILD_NOTES.md"
    path.write_bytes(NOTES.encode("utf-8"))
    notes.write_section(str(path), "speed", "new\nfigures")
    expected = NOTES.replace("old figures", "new\nfigures")
    assert path.read_bytes() == expected.encode("utf-8")


def test_a_second_write_replaces_the_first(notes, tmp_path):
    path = tmp_path / "BUILD_NOTES.md"
    path.write_text(NOTES, encoding="utf-8")
    notes.write_section(str(path), "speed", "first")
    notes.write_section(str(path), "speed", "second")
    assert path.read_text(encoding="utf-8") == NOTES.replace("old figures", "second")


def test_backslashes_are_kept_literally(notes, tmp_path):
    path = tmp_path / "BUILD_NOTES.md"
    path.write_text(NOTES, encoding="utf-8")
    text = r"a \1 group, \g<0>, a \n and C:\path\\"
    notes.write_section(str(path), "speed", text)
    assert path.read_text(encoding="utf-8") == NOTES.replace("old figures", text)
    notes.write_section(str(path), "speed", text)  # and again, now in the file
    assert path.read_text(encoding="utf-8") == NOTES.replace("old figures", text)


def test_a_missing_section_is_appended_by_default(notes, tmp_path):
    path = tmp_path / "BUILD_NOTES.md"
    path.write_text("# notes\n\nText.\n\n", encoding="utf-8")
    notes.write_section(str(path), "size", "figures")
    assert path.read_text(encoding="utf-8") == (
        "# notes\n\nText.\n\n<!-- size:begin -->\nfigures\n<!-- size:end -->\n"
    )


def test_a_missing_section_is_appended_under_a_heading(notes, tmp_path):
    path = tmp_path / "BUILD_NOTES.md"
    path.write_text("# notes\n\nText.\n", encoding="utf-8")
    notes.write_section(str(path), "size", "figures", add=notes.at_the_end("### Size"))
    assert path.read_text(encoding="utf-8") == (
        "# notes\n\nText.\n\n### Size\n\n<!-- size:begin -->\nfigures\n<!-- size:end -->\n"
    )


def test_a_missing_section_goes_at_the_end_of_its_part(notes, tmp_path):
    path = tmp_path / "BUILD_NOTES.md"
    path.write_text(NOTES, encoding="utf-8")
    add = notes.at_the_end("### Size", part="## Figures")
    notes.write_section(str(path), "size", "figures", add=add)
    section = "### Size\n\n<!-- size:begin -->\nfigures\n<!-- size:end -->\n\n"
    assert path.read_text(encoding="utf-8") == NOTES.replace("## Other", section + "## Other")


def test_a_missing_section_goes_after_its_anchor(notes, tmp_path):
    path = tmp_path / "BUILD_NOTES.md"
    path.write_text(NOTES, encoding="utf-8")
    notes.write_section(str(path), "size", "figures", add=notes.after("<!-- speed:end -->"))
    block = "<!-- size:begin -->\nfigures\n<!-- size:end -->"
    expected = NOTES.replace("<!-- speed:end -->", "<!-- speed:end -->\n\n" + block)
    assert path.read_text(encoding="utf-8") == expected
    # Without the anchor, at the end.
    path.write_text("# notes\n", encoding="utf-8")
    notes.write_section(str(path), "size", "figures", add=notes.after("<!-- speed:end -->"))
    assert path.read_text(encoding="utf-8") == "# notes\n\n" + block + "\n"


def test_a_missing_file_is_created(notes, tmp_path):
    path = tmp_path / "BUILD_NOTES.md"
    notes.write_section(str(path), "size", "figures")
    assert path.read_text(encoding="utf-8") == "<!-- size:begin -->\nfigures\n<!-- size:end -->\n"
    notes.write_section(str(path), "size", "again")
    assert path.read_text(encoding="utf-8") == "<!-- size:begin -->\nagain\n<!-- size:end -->\n"
