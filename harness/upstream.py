"""The fake provider's vocabulary, for suites: scenarios and the faults they combine.

Suites import `harness` only; this module is the one door to `fake_providers`.
"""

from __future__ import annotations

from fake_providers.faults import (
    Chop,
    CloseAfter,
    Coalesce,
    Malformed,
    NoDone,
    ResetAfter,
    ResetBeforeHeaders,
    Slow,
    SplitEol,
    SplitUtf8,
    StallAfter,
    StallBeforeHeaders,
    Status,
)
from fake_providers.scenario import Scenario

__all__ = [
    "Chop",
    "CloseAfter",
    "Coalesce",
    "Malformed",
    "NoDone",
    "ResetAfter",
    "ResetBeforeHeaders",
    "Scenario",
    "Slow",
    "SplitEol",
    "SplitUtf8",
    "StallAfter",
    "StallBeforeHeaders",
    "Status",
]
