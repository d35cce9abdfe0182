"""OpenAI-compatible upstreams that misbehave on command, exactly and reproducibly."""

from __future__ import annotations

from fake_providers.dead import Blackhole, RefusingAddress
from fake_providers.faults import FAULTS, Fault
from fake_providers.journal import Attempt, Journal, fingerprint
from fake_providers.scenario import Scenario, ScenarioError
from fake_providers.server import FakeProvider

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
