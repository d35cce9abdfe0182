"""Cases, findings and verdicts.

A *case* is a numbered claim about a proxy: an id that never changes once published, a
title, the requirement it checks (quoted, with its source), what a correct proxy does,
and how binding the requirement is (MUST, SHOULD, or unspecified).

A *check* (see `checks.py`) compares what the client saw with what the fake provider
journaled and returns a `Finding`: did it hold, and what was observed, in words.

The *verdict* of a case follows from its findings and its strength:

    every finding held                     PASS
    a finding failed, requirement MUST     FAIL
    a finding failed, requirement SHOULD   NON-STRICT
    unspecified behaviour, recorded        INFO
    the case could not apply               SKIP (with the reason)
    the harness itself broke               ERROR (a bug in streamproof, never a pass)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pytest

from harness.wire import ExchangeLog, Wire, Wired, bounded, capture


class Strength(enum.Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    INFO = "INFO"  # behaviour the specs leave open: we record it


class Level(enum.Enum):
    PASS = "PASS"
    NON_STRICT = "NON-STRICT"
    FAIL = "FAIL"
    INFO = "INFO"
    SKIP = "SKIP"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    requirement: str
    source: str
    expected: str
    strength: Strength = Strength.MUST


@dataclass(frozen=True)
class Finding:
    ok: bool
    check: str  # what was checked, in a few words
    observed: str  # what was seen, in words

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'NOT OK'}: {self.check}: {self.observed}"


class CaseFailed(AssertionError):
    """A MUST-level finding failed; the message lists the failed findings."""


class Observed(Wired, Protocol):
    """An exchange as a case saw it (`harness.sut.Exchange`)."""

    def describe(self) -> str: ...

    def axes(self) -> tuple[str, str]: ...


@dataclass
class Judge:
    """Collects a case's findings while it runs; the plugin turns them into its verdict."""

    case: Case | None
    findings: list[Finding] = field(default_factory=list)
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (title, text) for reports
    axes: tuple[str, str] | None = None  # (content, ending) of the last exchange seen
    exchanges: list[ExchangeLog] = field(default_factory=list)  # wire logs, for reports

    def check(self, *findings: Finding) -> None:
        """Record findings; stop the case at once if a MUST-level one failed."""
        self.findings.extend(findings)
        failed = [f for f in findings if not f.ok]
        strength = self.case.strength if self.case else Strength.MUST
        if failed and strength is Strength.MUST:
            raise CaseFailed("; ".join(f"{f.check}: {f.observed}" for f in failed))

    def attach(self, title: str, text: str) -> None:
        self.evidence.append((title, text))

    def saw(self, exchange: Observed, title: str = "exchange") -> None:
        """Keep an exchange for the report: its description, its two axes, its wire log."""
        self.attach(title, exchange.describe())
        self.axes = exchange.axes()
        self.exchanges.append(capture(exchange, title))

    @property
    def wire(self) -> Wire | None:
        """The wire logs of the exchanges seen, bounded for the case's record (None: none)."""
        return bounded(self.exchanges)

    @property
    def level(self) -> Level:
        """The verdict if the case ran to its end."""
        failed = [f for f in self.findings if not f.ok]
        if not failed:
            return Level.INFO if self.case and self.case.strength is Strength.INFO else Level.PASS
        if self.case and self.case.strength is Strength.SHOULD:
            return Level.NON_STRICT
        if self.case and self.case.strength is Strength.INFO:
            return Level.INFO
        return Level.FAIL

    @property
    def reason(self) -> str:
        failed = [f for f in self.findings if not f.ok]
        if failed:
            return "; ".join(f"{f.check}: {f.observed}" for f in failed)
        return "; ".join(f.observed for f in self.findings)


F = TypeVar("F", bound=Callable[..., Any])


def case(
    id: str,
    title: str,
    *,
    requirement: str,
    source: str,
    expected: str,
    strength: Strength = Strength.MUST,
) -> Callable[[F], F]:
    """Declare the test below to be conformance case `id`."""
    mark = pytest.mark.case(
        Case(
            id=id,
            title=title,
            requirement=requirement,
            source=source,
            expected=expected,
            strength=strength,
        )
    )

    def decorate(function: F) -> F:
        return mark(function)  # type: ignore[no-any-return]

    return decorate
