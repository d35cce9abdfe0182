"""The fake provider's vocabulary, for suites: scenarios and the faults they combine.

Suites import `harness` only; this module is the one door to `fake_providers`.
"""

from __future__ import annotations

from streamproof.fake_providers.faults import (
    Chop,
    CloseAfter,
    CloseDelimited,
    Coalesce,
    CutInside,
    Malformed,
    NoDone,
    RaggedAfter,
    ResetAfter,
    ResetBeforeHeaders,
    ResetInside,
    Slow,
    SplitEol,
    SplitUtf8,
    Stale,
    StallAfter,
    StallBeforeHeaders,
    Status,
    TlsRecords,
    UpstreamError,
)
from streamproof.fake_providers.scenario import PREFIX, Scenario
from streamproof.fake_providers.tls import Cert, HandshakeFault, HandshakeReset, HandshakeStall


def scenario(*tokens: str) -> Scenario:
    """A scenario from its tokens, as written in a model name: `scenario("chunks-8", "bom")`."""
    return Scenario.parse(".".join((PREFIX, *tokens)))


__all__ = [
    "Cert",
    "Chop",
    "CloseAfter",
    "CloseDelimited",
    "Coalesce",
    "CutInside",
    "HandshakeFault",
    "HandshakeReset",
    "HandshakeStall",
    "Malformed",
    "NoDone",
    "RaggedAfter",
    "ResetAfter",
    "ResetBeforeHeaders",
    "ResetInside",
    "Scenario",
    "Slow",
    "SplitEol",
    "SplitUtf8",
    "Stale",
    "StallAfter",
    "StallBeforeHeaders",
    "Status",
    "TlsRecords",
    "UpstreamError",
    "scenario",
]
