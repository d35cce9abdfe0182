"""Group 2 — chunk integrity: the content arrives whole, in order, once, at every split."""

from __future__ import annotations

import pytest

from streamproof.harness import Judge, SystemUnderTest, case, checks
from streamproof.harness.upstream import Chop, Coalesce, Scenario, Slow, SplitEol, SplitUtf8

POLICY = "streamproof policy (docs/design.md)"

SPLITS = [
    pytest.param(Scenario(chunks=16), id="one-write-per-event"),
    pytest.param(Scenario(chunks=16, faults=(Coalesce(),)), id="all-events-in-one-write"),
    pytest.param(Scenario(chunks=16, faults=(Chop(1),)), id="chop-1"),
    pytest.param(Scenario(chunks=16, faults=(Chop(2),)), id="chop-2"),
    pytest.param(Scenario(chunks=16, faults=(Chop(3),)), id="chop-3"),
    pytest.param(Scenario(chunks=16, faults=(Chop(7),)), id="chop-7"),
    pytest.param(Scenario(chunks=16, faults=(Chop(64),)), id="chop-64"),
    pytest.param(Scenario(chunks=16, faults=(SplitUtf8(),)), id="split-inside-utf8"),
    pytest.param(Scenario(chunks=16, eol="crlf"), id="crlf"),
    pytest.param(Scenario(chunks=16, eol="crlf", faults=(SplitEol(),)), id="split-inside-crlf"),
    pytest.param(Scenario(chunks=16, eol="cr"), id="cr-only"),
    pytest.param(Scenario(chunks=16, eol="cr", faults=(Chop(1),)), id="cr-only-chop-1"),
]


@case(
    "2.1",
    "The assembled content equals the upstream's at every split point",
    requirement="Lines end at CRLF, LF or CR, also when the CR and LF arrive in different "
    "reads; a multi-byte character split across reads is decoded whole (WHATWG HTML §9.2.6).",
    source="WHATWG HTML §9.2.6",
    expected="the same content and a clean end, whatever the write boundaries",
)
@pytest.mark.parametrize("scenario", SPLITS)
def test_content_intact_at_every_split(
    sut: SystemUnderTest, judge: Judge, scenario: Scenario
) -> None:
    x = sut.chat(scenario)
    judge.saw(x)
    judge.check(checks.content_intact(x), checks.ends_with_single_done(x.transcript))


@case(
    "2.2",
    "Nothing is lost or duplicated over a long stream",
    requirement="Every chunk the upstream sends reaches the client once, in order.",
    source=POLICY,
    expected="500 deltas assembled exactly",
)
def test_long_stream_intact(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=500))
    judge.saw(x)
    judge.check(checks.content_intact(x), checks.ends_with_single_done(x.transcript))


@case(
    "2.3",
    "The finish_reason reaches the client",
    requirement="The last chunk of a choice carries its finish_reason.",
    source="OpenAI chat completions streaming contract",
    expected='finish_reason "stop" seen once',
)
def test_finish_reason_forwarded(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=3))
    judge.check(checks.finish_reasons_are(x.transcript, ["stop"]))


@case(
    "2.4",
    "A healthy slow stream is not cut",
    requirement="Timeouts are separate; a stream whose chunks come more often than the idle "
    "timeout is never cut by it.",
    source=POLICY,
    expected="a stream with 60 ms between chunks arrives whole and ends with [DONE]",
)
def test_slow_stream_not_cut(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=6, faults=(Slow(60),)))
    judge.saw(x)
    judge.check(checks.content_intact(x), checks.ends_with_single_done(x.transcript))
