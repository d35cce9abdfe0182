"""What several groups share: how a target without retries is judged, and the scenarios
and judgments of the typed-stream groups (9, the Anthropic Messages API; 10, the OpenAI
Responses API), whose cases say the same of two APIs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from streamproof.harness import Judge, SystemUnderTest, checks
from streamproof.harness.exchange import BaseExchange
from streamproof.harness.targets import tolerance
from streamproof.harness.typed import TypedExchange
from streamproof.harness.upstream import Scenario, Slow, StallBeforeHeaders, Status, scenario
from streamproof.harness.verdict import Finding

Send = Callable[..., TypedExchange]  # sut.messages or sut.responses
NEVER_ANSWERS = Scenario(chunks=4, faults=(StallBeforeHeaders(),))

# The sources the typed groups cite: the SDK model and the commit point.
TYPED = "streamproof policy: typed streams, as each SDK reads them (docs/verdicts.md)"
COMMIT = "streamproof policy: the commit point (docs/design.md)"
FAILURES = "streamproof policy: retry and fallback (docs/design.md)"


def without_retries(
    sut: SystemUnderTest, judge: Judge, x: BaseExchange, *, retry_after: bool = False
) -> None:
    """A target that does not offer retries and did not retry is judged on failing
    honestly (docs/verdicts.md): NOT-OFFERED if it did, FAIL if it did not."""
    if "retries" in sut.offers or len(x.attempts) != 1:
        return
    if x.transcript.status == 200:  # it had committed: the failure must show in the stream
        judge.offered("retries", checks.not_dressed_up(x))
    judge.offered("retries", *checks.failed_honestly(x, retry_after=retry_after))


# --- the typed groups -----------------------------------------------------------------------

# Write boundaries anywhere, line endings of every kind: the same answer (WHATWG HTML §9.2.6).
SPLITS = {
    "one-write-per-event": (),
    "all-events-in-one-write": ("coalesce",),
    "chop-1": ("chop-1",),
    "chop-2": ("chop-2",),
    "chop-7": ("chop-7",),
    "split-inside-utf8": ("split_utf8",),
    "crlf": ("eol-crlf",),
    "split-inside-crlf": ("eol-crlf", "split_eol"),
    "cr-only": ("eol-cr",),
    "cr-only-chop-1": ("eol-cr", "chop-1"),
}
# Text that stresses a relay, at the splits that matter for it.
TEXTS = {
    "emoji-split-utf8": ("text-emoji", "split_utf8"),
    "cjk-chop-1": ("text-cjk", "chop-1"),
    "combining": ("text-combining",),
    "control": ("text-control",),
}


# Reasoning and tool calls, whole and at the splits that cut inside them.
THINKING = {"one-write-per-event": (), "chop-7-split-utf8": ("chop-7", "split_utf8")}
TOOLS = {"one-write-per-event": ("chunks-0",), "chop-3": ("chunks-2", "chop-3")}


def variants(named: dict[str, tuple[str, ...]], *tokens: str) -> list[object]:
    """One parameter per name: the scenario of `tokens` and the name's own."""
    return [pytest.param(scenario(*tokens, *more), id=name) for name, more in named.items()]


# How an answer breaks after its event N: the fault's token, by the variant's name.
CUTS = {
    "reset": "reset_after",
    "reset-inside-an-event": "reset_inside",
    "close": "close_after",
    "close-inside-an-event": "cut_inside",
}


def breaks(after: int, *shapes: str, cuts: tuple[str, ...] = tuple(CUTS)) -> list[object]:
    """The ways an answer of 8 deltas breaks after its event `after` (a few deltas in):
    the `cuts` (a reset, a reset inside the next event, a clean close, a close inside the
    next event), and the upstream's own in-band errors of `shapes` in the next event."""
    cut = [pytest.param(scenario("chunks-8", f"{CUTS[name]}-{after}"), id=name) for name in cuts]
    errors = [
        pytest.param(scenario("chunks-8", f"upstream_error-{after + 1}-{shape}"), id=shape)
        for shape in shapes
    ]
    return [*cut, *errors]


def relayed_whole(judge: Judge, x: TypedExchange) -> None:
    """Status 200, the answer as the upstream wrote it, read whole by the API's SDK, and
    the stream ended by the API's end event, once."""
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.typed_answer_intact(x),
        checks.typed_ends_once(x),
    )


def broke_visibly(judge: Judge, x: TypedExchange) -> None:
    """Broken after the commit point: nothing replayed, and the failure visible to the
    API's SDK with no end invented (the harm every such exchange is judged on)."""
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.typed_nothing_replayed(x),
        checks.not_dressed_up(x),
    )


def whole_after_a_retry(x: TypedExchange) -> tuple[Finding, ...]:
    """The answer whole and ended, after at least one more upstream attempt."""
    return (
        checks.status_is(x.transcript, 200),
        checks.typed_answer_intact(x),
        checks.typed_ends_once(x),
        checks.attempts_at_least(x, 2),
    )


def stall_ends_in_time(sut: SystemUnderTest, judge: Judge, send: Send, after: int) -> None:
    """A stall after event `after`: the stream over within the idle timer, visibly."""
    idle = tolerance(sut.timeouts.bound("idle"))
    sut.waits(idle, "the idle timer")
    x = send(scenario("chunks-8", f"stall_after-{after}"))
    broke_visibly(judge, x)
    streamed = x.streamed
    last = streamed.last_write_at if streamed and streamed.last_write_at else x.transcript.sent_at
    judge.check(checks.ended_within(x.transcript, last, idle))


def released_mid_stream(judge: Judge, send: Send, after: int) -> None:
    """The client leaves after `after` events of a slow answer: the upstream is closed."""
    x = send(Scenario(chunks=40, faults=(Slow(50),)), leave_after_events=after)
    left = x.transcript.ended_at or time.perf_counter()
    released = checks.upstream_released(x, left, within=0.5, watch=0.5)
    judge.saw(x)  # after the wait, so that the report shows when the target hung up
    judge.check(released)


def released_before_first_byte(sut: SystemUnderTest, judge: Judge, send: Send) -> None:
    """The client leaves before an upstream that never answers has: the upstream is closed
    before the target's own first-byte timer could have closed it."""
    first_byte = sut.timeouts.bound("first_byte")
    x = send(NEVER_ANSWERS, leave_before_response=first_byte * 0.2)
    left = x.transcript.ended_at or time.perf_counter()
    released = checks.upstream_released(x, left, within=first_byte * 0.5, watch=0.5)
    judge.saw(x)
    judge.check(released)


def retried(sut: SystemUnderTest, judge: Judge, x: TypedExchange) -> None:
    """A failure before the commit point retried to success; without the `retries` offer,
    judged on failing honestly."""
    judge.saw(x)
    without_retries(sut, judge, x)
    judge.check(*whole_after_a_retry(x))


def retried_after_429(sut: SystemUnderTest, judge: Judge, send: Send) -> None:
    """A 429 with `Retry-After: 1`: retried no sooner, or passed on with it."""
    x = send(Scenario(chunks=4, faults=(Status(429, 1),), first=1))
    judge.saw(x)
    without_retries(sut, judge, x, retry_after=True)
    judge.check(checks.status_is(x.transcript, 200), checks.retried_after(x, 1.0))


def never_answers(sut: SystemUnderTest, judge: Judge, send: Send) -> None:
    """An upstream that never answers: a 5xx with an error body, within the total timer."""
    total = tolerance(sut.timeouts.bound("total"))
    sut.waits(total, "the total timer")
    x = send(NEVER_ANSWERS)
    judge.saw(x)
    t = x.transcript
    judge.check(
        checks.http_error(t, set(range(500, 600)), x.api),
        checks.ended_within(t, t.sent_at, total),
    )
