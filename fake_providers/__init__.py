"""OpenAI-compatible upstreams that misbehave on command, exactly and reproducibly."""

from __future__ import annotations

from streamproof.fake_providers.dead import Blackhole, RefusingAddress
from streamproof.fake_providers.faults import FAULTS, Fault
from streamproof.fake_providers.journal import Attempt, Journal, fingerprint
from streamproof.fake_providers.scenario import Scenario, ScenarioError
from streamproof.fake_providers.server import FakeProvider

__all__ = [
    "FAULTS",
    "Attempt",
    "Blackhole",
    "FakeProvider",
    "Fault",
    "Journal",
    "RefusingAddress",
    "Scenario",
    "ScenarioError",
    "fingerprint",
]
