"""Group 5 — recovery, continued: fallback to the next provider of a chain.

These cases need a target that routes a marked model to a chain of two providers (the
config the harness writes for the bundled proxy does: `via-fallback` goes to the fake
provider and then to the same fake on another route; `via-refused` to an address where
nothing listens and then the fake; `via-blackhole` to one where connects never complete
and then the fake). A target that does not offer it has these cases skipped.
"""

from __future__ import annotations

import time

import pytest

from streamproof.harness import Judge, SystemUnderTest, case, checks
from streamproof.harness.upstream import ResetBeforeHeaders, Scenario, Status

FAILURES = "streamproof policy: retry and fallback (docs/design.md)"
PRIMARY, SECONDARY = "", "secondary"  # the fake's route labels of the chain's providers


@case(
    "5.24",
    "When a provider keeps failing, the next provider in the chain answers",
    requirement="Before the commit point every failure may fall back: after the last "
    "attempt at one provider, the next provider of the chain is tried, in order.",
    source=FAILURES,
    expected="status 200 and the whole answer from the second provider, after every attempt "
    "at the first",
)
def test_fallback_to_next_provider(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("config")
    attempts = sut.offers.max_attempts or 1
    x = sut.chat(Scenario(via="fallback", chunks=6, faults=(Status(500),), first=attempts))
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.content_intact(x),
        checks.fallback_order(x, (PRIMARY, SECONDARY), answered_by=SECONDARY),
        checks.attempts_exactly(x, attempts + 1),
    )


@case(
    "5.25",
    "A reset before any byte falls back too",
    requirement="Fallback never fails to fire on a reset before the first content: before "
    "the commit point every failure may fall back.",
    source=FAILURES,
    expected="status 200 and the whole answer from the second provider",
)
def test_fallback_after_resets(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("config")
    attempts = sut.offers.max_attempts or 1
    x = sut.chat(Scenario(via="fallback", chunks=6, faults=(ResetBeforeHeaders(),), first=attempts))
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.content_intact(x),
        checks.fallback_order(x, (PRIMARY, SECONDARY), answered_by=SECONDARY),
    )


@case(
    "5.26",
    "A provider that refuses connections is passed over",
    requirement="A connect error is retryable before the commit point: the chain goes on to "
    "the next provider.",
    source=FAILURES,
    expected="status 200 and the whole answer from the next provider, in one attempt there",
)
def test_connect_refused_falls_back(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("config")
    x = sut.chat(Scenario(via="refused", chunks=6))
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.content_intact(x),
        checks.attempts_exactly(x, 1),
    )


@case(
    "5.27",
    "A provider whose connects never complete is passed over within the connect timeout",
    requirement="The connect timeout is a timer of its own: a provider that never completes "
    "the TCP handshake costs at most max_attempts connect timeouts, then the chain goes on.",
    source=FAILURES,
    expected="status 200 and the whole answer from the next provider, within max_attempts "
    "connect timeouts (with tolerance)",
)
def test_connect_timeout_falls_back(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("config")
    if "blackhole" not in sut.chains:
        pytest.skip("no blackhole address on this system (it needs Linux)")
    began = time.perf_counter()
    x = sut.chat(Scenario(via="blackhole", chunks=6))
    judge.saw(x)
    attempts = sut.offers.max_attempts or 1
    budget = attempts * sut.timeouts.bound("connect") + max(0.5, sut.timeouts.bound("connect"))
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.content_intact(x),
        checks.attempts_exactly(x, 1),
        checks.ended_within(x.transcript, began, budget),
    )
