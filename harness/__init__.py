"""streamproof's harness: the independent oracle that drives a proxy and judges it.

Suites import from here only: `case` and `Strength` to declare a numbered case, `checks`
to judge an exchange, `Scenario` and the fault classes (from `harness.upstream`) to say
how the fake provider must misbehave.
"""

from __future__ import annotations

from streamproof.harness import checks
from streamproof.harness.sut import Exchange, SystemUnderTest
from streamproof.harness.transcript import Outcome, Transcript
from streamproof.harness.verdict import Case, Finding, Judge, Level, Strength, case

__all__ = [
    "Case",
    "Exchange",
    "Finding",
    "Judge",
    "Level",
    "Outcome",
    "Strength",
    "SystemUnderTest",
    "Transcript",
    "case",
    "checks",
]
