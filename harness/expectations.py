"""Expectations: the verdicts a proxy's owners already know about, and why.

An expectations file (`--expectations FILE`) is TOML, one table per case id:

    ["5.13"]
    verdict = "FAIL"
    reason = "our proxy cannot see a client leave before it answers; tracked in #12"

A table's name selects cases as `--case` does: `5.13` is that case (every variant of it),
`2.1[chop-1]` one variant, `6` a whole group; the most specific table wins. A case whose
verdict equals its expectation is *accepted*: it no longer fails the run, and every report
says so. One whose verdict differs is listed as "not met" and follows the normal exit
rules, so a fixed bug or a new regression is never hidden.

ERROR cannot be expected: it means streamproof itself broke, and that always fails.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamproof.harness.verdict import Level

KEYS = ("verdict", "reason")
EXPECTABLE = tuple(level for level in Level if level is not Level.ERROR)


def selects(selector: str, case: str) -> bool:
    """`5` selects group 5, `2.1` every variant of 2.1, `2.1[chop-1]` just that one."""
    return case == selector or case.startswith((selector + "[", selector + "."))


@dataclass(frozen=True)
class Expectation:
    selector: str  # the table's name: a case id, a case without its variant, or a group
    verdict: Level
    reason: str


@dataclass(frozen=True)
class Miss:
    """A case whose verdict differs from its expectation."""

    case: str
    expected: Level
    got: str

    def __str__(self) -> str:
        hint = (
            "remove the expectation?" if self.got == Level.PASS.value else "update the expectation?"
        )
        return f"{self.case} expected {self.expected.value}, got {self.got} — {hint}"


class Expectations:
    """The entries of one expectations file (or none), looked up by case id."""

    def __init__(self, entries: Iterable[Expectation] = ()) -> None:
        self.entries = {entry.selector: entry for entry in entries}

    @classmethod
    def load(cls, path: Path) -> Expectations:
        """Read and check `path`; anything wrong is a `pytest.UsageError` that names it."""
        try:
            with path.open("rb") as file:
                document = tomllib.load(file)
        except FileNotFoundError:
            raise pytest.UsageError(f"expectations file {path}: no such file") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise pytest.UsageError(f"expectations file {path}: not valid TOML: {error}") from None
        return cls(_entry(path, selector, table) for selector, table in document.items())

    def __bool__(self) -> bool:
        return bool(self.entries)

    def get(self, case: str) -> Expectation | None:
        """The most specific entry that selects `case`."""
        chosen = [entry for entry in self.entries.values() if selects(entry.selector, case)]
        return max(chosen, key=lambda entry: len(entry.selector), default=None)

    def accepts(self, case: str, verdict: Level) -> str | None:
        """The expectation's reason if `verdict` is the one expected for `case`."""
        expectation = self.get(case)
        return expectation.reason if expectation and expectation.verdict is verdict else None

    def misses(self, verdicts: Mapping[str, str]) -> list[Miss]:
        """Cases (id → verdict) whose verdict differs from their expectation."""
        misses = []
        for case, verdict in verdicts.items():
            expectation = self.get(case)
            if expectation is not None and expectation.verdict.value != verdict:
                misses.append(Miss(case, expectation.verdict, verdict))
        return misses

    def unused(self, cases: Iterable[str]) -> list[str]:
        """Entries that selected none of `cases` (a `--case` selection may exclude them)."""
        cases = list(cases)
        return [s for s in self.entries if not any(selects(s, case) for case in cases)]


def _entry(path: Path, selector: str, table: object) -> Expectation:
    where = f"expectations file {path}: entry [{_quoted(selector)}]"
    example = 'e.g. ["5.13"] verdict = "FAIL" reason = "tracked in #12"'
    if not isinstance(table, dict):
        raise pytest.UsageError(f"{where} must be a table with {' and '.join(KEYS)}, {example}")
    unknown = [key for key in table if key not in KEYS]
    if unknown:
        message = f"{where} has unknown key {', '.join(map(_quoted, unknown))}; "
        message += f"accepted: {', '.join(KEYS)}"
        if any(isinstance(table[key], dict) for key in unknown):
            # `[5.13]` without quotes is a table `13` inside a table `5`.
            message += f"; write a case id in quotes ([{_quoted(f'{selector}.{unknown[0]}')}])"
        raise pytest.UsageError(message)
    verdict, reason = table.get("verdict"), table.get("reason")
    names = ", ".join(level.value for level in EXPECTABLE)
    if verdict == Level.ERROR.value:
        raise pytest.UsageError(
            f"{where}: ERROR cannot be expected (it means streamproof itself broke; please "
            f"report it); accepted verdicts: {names}"
        )
    if verdict not in {level.value for level in EXPECTABLE}:
        raise pytest.UsageError(f"{where}: verdict {verdict!r} is not one of {names}")
    if not isinstance(reason, str) or not reason.strip():
        raise pytest.UsageError(f"{where} needs a reason: a non-empty string saying why")
    return Expectation(selector, Level(verdict), reason.strip())


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
