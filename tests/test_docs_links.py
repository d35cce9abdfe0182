"""Every relative link of README.md and docs/*.md leads somewhere: a file of the
repository, and, for a link into a Markdown page (`running.md#expectations`), one of its
headings as GitHub names them. Links out (`https://…`) are not followed; links inside code
(fenced blocks, `inline code`) are not links.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
# [text](target "title") and ![alt](target): text with one level of brackets inside.
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, …


def without_fences(text: str) -> str:
    """The text with its fenced code blocks blanked (line numbers kept)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def without_code(text: str) -> str:
    """The text with fenced blocks and code spans blanked."""
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), without_fences(text))


def links(text: str) -> list[str]:
    """The targets of the inline and reference links of a Markdown text, outside code."""
    prose = without_code(text)
    return [m.group(1) for m in (*INLINE.finditer(prose), *REFERENCE.finditer(prose))]


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: the text without its Markdown, lower case,
    punctuation dropped (but `-` and `_`), each space a `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()  # html tags, code marks
    kept = "".join(
        c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LN" or c.isspace()
    )
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a page's headings; a repeated one gets -1, -2, … as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(without_fences(text)):
        name = anchor(match.group(1))
        count = seen.get(name, 0)
        seen[name] = count + 1
        found.add(name if count == 0 else f"{name}-{count}")
    return found


def problems(page: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the links of `page`, one line each (none: all resolve)."""
    found = []
    text = page.read_text(encoding="utf-8")
    for link in links(text):
        if not link or EXTERNAL.match(link):
            continue
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        name = target.relative_to(root).as_posix() if target.is_relative_to(root) else None
        if name is None:
            found.append(f"{link}: outside the repository")
        elif not target.exists():
            found.append(f"{link}: no such file ({name})")
        elif fragment and target.suffix == ".md":
            if fragment not in anchors(target.read_text(encoding="utf-8")):
                found.append(f"{link}: no heading #{fragment} in {name}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    assert problems(page) == []


def test_pages_are_found() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/running.md", "docs/targets.md"} <= names


def test_links_in_code_are_not_links() -> None:
    text = "a [page](one.md)\n\n```sh\n[not](two.md)\n```\n\n`[nor](three.md)` ![img](i.png)\n"
    assert links(text) == ["one.md", "i.png"]


def test_link_text_may_hold_brackets_and_references_count() -> None:
    text = "[2.1[chop-1]](catalogue.md#the-groups) and\n\n[ref]: docs/targets.md#offers\n"
    assert links(text) == ["catalogue.md#the-groups", "docs/targets.md#offers"]


def test_anchors_are_githubs() -> None:
    text = "# The `--fail-on` option\n## Results: `results.json`\n## Verdicts\n## Verdicts\n"
    assert anchors(text) == {
        "the---fail-on-option",
        "results-resultsjson",
        "verdicts",
        "verdicts-1",
    }


def test_broken_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# There\n## A `code` heading\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/there.md) [ok](docs/there.md#a-code-heading) [ok](#top) [out](https://x.y)\n"
        "[gone](docs/gone.md) [bad anchor](docs/there.md#nowhere) [up](../elsewhere.md)\n"
        "# Top\n"
    )
    assert problems(page, tmp_path) == [
        "docs/gone.md: no such file (docs/gone.md)",
        "docs/there.md#nowhere: no heading #nowhere in docs/there.md",
        "../elsewhere.md: outside the repository",
    ]
