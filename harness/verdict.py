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
    a client was harmed, in any case       FAIL (a failed `harm` finding; see below)
    unspecified behaviour, recorded        INFO
    a feature the target never claimed     NOT-OFFERED (and it failed honestly without it)
    the case could not apply               SKIP (with the reason)
    the harness itself broke               ERROR (a bug in streamproof, never a pass)

FAIL means a client is harmed (docs/verdicts.md): wrong data accepted as right, a client
held without an end, a secret disclosed, what the upstream said lost. A finding marked
`harm` is one of those, or a broken premise (the upstream was never asked; what it sent
never reached the client): it fails the case whatever the case's strength, so that a SHOULD
case cannot be NON-STRICT, let alone PASS, for a proxy that hangs its client. A finding
marked `premise` is a premise that did not happen through no harm to a client (a proxy that
asks the upstream for a whole answer while its client streams): the case cannot pass, and
is NON-STRICT unless a harm fails it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import pytest

from streamproof.harness.wire import ExchangeLog, Wire, Wired, bounded, capture


class Strength(enum.Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    INFO = "INFO"  # behaviour the specs leave open: we record it


class Level(enum.Enum):
    PASS = "PASS"
    NON_STRICT = "NON-STRICT"
    FAIL = "FAIL"
    INFO = "INFO"
    NOT_OFFERED = "NOT-OFFERED"
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
    harm: bool = False  # failed, it is a FAIL whatever the case's strength
    should: bool = False  # failed, it is NON-STRICT even in a MUST case (a client survives)
    # A premise that did not happen, and not to a client's harm (the target asked the
    # upstream for something else than the case set up): failed, the case cannot pass, and
    # only a harm can fail it; it is NON-STRICT otherwise.
    premise: bool = False

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'NOT OK'}: {self.said()}"

    def said(self) -> str:
        """The finding in a reason: what was expected, then what was observed."""
        return f"expected {self.check}, observed {self.observed}"


class CaseFailed(Exception):
    """A MUST-level (or harm) finding failed; the message lists the failed findings.

    Not an AssertionError: an assertion that fails inside the harness is a bug of the
    harness (ERROR), never the target's FAIL."""


class Observed(Wired, Protocol):
    """An exchange as a case saw it (`harness.sut.Exchange`)."""

    def describe(self) -> str: ...

    def axes(self) -> tuple[str, str]: ...

    def harms(self) -> list[Finding]: ...


@dataclass
class Judge:
    """Collects a case's findings while it runs; the plugin turns them into its verdict."""

    case: Case | None
    findings: list[Finding] = field(default_factory=list)
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (title, text) for reports
    axes: tuple[str, str] | None = None  # (content, ending) of the last exchange seen
    exchanges: list[ExchangeLog] = field(default_factory=list)  # wire logs, for reports
    not_offered: str | None = None  # the feature the target does not offer, if that is why
    seen: list[Observed] = field(default_factory=list)  # the exchanges shown (`saw`)

    def check(self, *findings: Finding) -> None:
        """Record findings; stop the case at once if a MUST-level or a harm one failed."""
        self.findings.extend(findings)
        strength = self.case.strength if self.case else Strength.MUST
        if self.premise_missed:
            strength = Strength.SHOULD
        failed = [f for f in findings if not f.ok and _fails(f, strength)]
        if failed:
            raise CaseFailed("; ".join(f.said() for f in failed))

    def offered(self, feature: str, *honest: Finding) -> None:
        """The case needs `feature`, which the target does not offer: it is judged on
        failing honestly without it, and ends here. Every finding held: NOT-OFFERED; a
        `should` one failed: NON-STRICT; any other: FAIL, as a harm."""
        self.check(*(f if f.should else replace(f, harm=True) for f in honest))
        if any(not f.ok for f in honest):
            raise Judged()
        self.not_offered = feature
        said = "; ".join(f.observed for f in honest)
        pytest.skip(f"not offered: {feature}; it failed honestly without: {said}")

    def attach(self, title: str, text: str) -> None:
        self.evidence.append((title, text))

    def saw(self, exchange: Observed, title: str = "exchange") -> None:
        """Keep an exchange for the report: its description, its two axes, its wire log."""
        self.attach(title, exchange.describe())
        self.axes = exchange.axes()
        self.exchanges.append(capture(exchange, title))
        self.seen.append(exchange)
        self.check(*exchange.harms())

    def judge_unseen(self, exchanges: list[Observed]) -> None:
        """The exchanges a case made but did not show are judged on their harms too: no
        case passes while its client was held or its premise never happened."""
        for exchange in exchanges:
            if not any(exchange is seen for seen in self.seen):
                self.check(*exchange.harms())

    def record_unseen(self, exchanges: list[Observed]) -> None:
        """As `judge_unseen`, for a case that has already failed: the findings are only
        recorded (its verdict is then `level`'s)."""
        for exchange in exchanges:
            if not any(exchange is seen for seen in self.seen):
                self.findings[:0] = exchange.harms()  # first: they say why it ran as it did

    @property
    def wire(self) -> Wire | None:
        """The wire logs of the exchanges seen, bounded for the case's record (None: none)."""
        return bounded(self.exchanges)

    @property
    def premise_missed(self) -> bool:
        """A premise of the case did not happen, though no client was harmed by that."""
        return any(f.premise and not f.ok for f in self.findings)

    @property
    def level(self) -> Level:
        """The verdict if the case ran to its end."""
        failed = [f for f in self.findings if not f.ok]
        if not failed:
            return Level.INFO if self.case and self.case.strength is Strength.INFO else Level.PASS
        if any(f.harm for f in failed):
            return Level.FAIL
        if self.premise_missed:
            return Level.NON_STRICT
        if all(f.should for f in failed):
            return Level.NON_STRICT
        if self.case and self.case.strength is Strength.SHOULD:
            return Level.NON_STRICT
        if self.case and self.case.strength is Strength.INFO:
            return Level.INFO
        return Level.FAIL

    @property
    def reason(self) -> str:
        failed = [f for f in self.findings if not f.ok]
        if failed:
            return "; ".join(f.said() for f in failed)
        return "; ".join(f.observed for f in self.findings)


def _fails(finding: Finding, strength: Strength) -> bool:
    """A failed finding that makes the case a FAIL (and stops it)."""
    return finding.harm or (strength is Strength.MUST and not finding.should)


class Judged(Exception):
    """The case has its verdict (NON-STRICT) and ends here; see `Judge.offered`."""


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
