"""Group 5 — recovery: retry before the commit point, honest errors after it.

The commit point is the first body byte sent to the client. Before it a proxy may retry
and fall back; after it, it must never replay content, and an upstream failure becomes one
in-band error event with no `[DONE]` (docs/design.md, "The commit point").
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import pytest

from streamproof.harness import Exchange, Judge, Strength, SystemUnderTest, case, checks
from streamproof.harness.targets import MAX_ATTEMPTS, tolerance
from streamproof.harness.upstream import (
    Cert,
    CloseAfter,
    CloseDelimited,
    HandshakeReset,
    HandshakeStall,
    Malformed,
    NoDone,
    RaggedAfter,
    ResetAfter,
    ResetBeforeHeaders,
    ResetInside,
    Scenario,
    Slow,
    Stale,
    StallAfter,
    StallBeforeHeaders,
    Status,
    TlsRecords,
    UpstreamError,
)
from streamproof.harness.verdict import Finding

from ._shared import without_retries

COMMIT = "streamproof policy: the commit point (docs/design.md)"
FAILURES = "streamproof policy: retry and fallback (docs/design.md)"
NEVER_ANSWERS = Scenario(chunks=4, faults=(StallBeforeHeaders(),))


def _whole_after_a_retry(x: Exchange) -> tuple[Finding, ...]:
    """The answer whole and cleanly ended, after at least one more upstream attempt."""
    return (
        checks.status_is(x.transcript, 200),
        checks.content_intact(x),
        checks.ends_with_single_done(x.transcript),
        checks.attempts_at_least(x, 2),
    )


@case(
    "5.1",
    "A reset before the response headers is retried to success",
    requirement="Before the commit point the proxy may retry; a connection reset before any "
    "byte is safe to retry.",
    source=FAILURES,
    expected="status 200, the whole answer exactly once, after a second upstream attempt",
)
def test_reset_before_headers_retried(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=8, faults=(ResetBeforeHeaders(),), first=1))
    judge.saw(x)
    without_retries(sut, judge, x)
    judge.check(*_whole_after_a_retry(x))


@case(
    "5.2",
    "Two resets in a row, then success",
    requirement="Retries are bounded but more than one: 'fail twice, then succeed' succeeds.",
    source=FAILURES,
    expected="status 200 and the whole answer exactly once after three attempts",
)
def test_two_resets_then_success(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=8, faults=(ResetBeforeHeaders(),), first=2))
    judge.saw(x)
    without_retries(sut, judge, x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.content_intact(x),
        checks.attempts_at_least(x, 3),
    )


@case(
    "5.3",
    "A 503 before the stream starts is retried",
    requirement="5xx from the upstream before the commit point is retried.",
    source=FAILURES,
    expected="status 200 and the whole answer after the upstream answered 503 twice",
)
def test_503_retried(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=8, faults=(Status(503),), first=2))
    judge.saw(x)
    without_retries(sut, judge, x)
    judge.check(checks.status_is(x.transcript, 200), checks.content_intact(x))


@case(
    "5.4",
    "A 429 is retried after its Retry-After",
    requirement="Retry-After indicates how long the client ought to wait before a follow-up "
    "request (RFC 9110 §10.2.3).",
    source="RFC 9110 §10.2.3",
    expected="status 200, and the retry no sooner than 1 s after the 429",
    strength=Strength.SHOULD,
)
def test_429_retried_after_retry_after(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=4, faults=(Status(429, 1),), first=1))
    judge.saw(x)
    without_retries(sut, judge, x, retry_after=True)
    judge.check(checks.status_is(x.transcript, 200), checks.retried_after(x, 1.0))


RESET_MID_STREAM = Scenario(chunks=8, faults=(ResetAfter(4),))
CLOSE_MID_ANSWER = Scenario(chunks=8, faults=(CloseAfter(4),))


@case(
    "5.5",
    "A reset mid-stream: nothing replayed, not dressed up as a clean finish",
    requirement="After the commit point the proxy never replays content, and a failed stream "
    "ends without [DONE] and without an invented finish_reason.",
    source=COMMIT,
    expected="a prefix of the answer; no [DONE]; no finish_reason",
)
def test_reset_mid_stream_not_replayed(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(RESET_MID_STREAM)
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.nothing_replayed(x),
        checks.not_dressed_up(x),
    )


@case(
    "5.6",
    "A reset mid-stream is reported with one in-band error event",
    requirement="After the commit point an upstream failure becomes exactly one in-band error "
    'event, `data: {"error": {...}}`, and the stream ends.',
    source=COMMIT,
    expected="one error event, as the last event",
    strength=Strength.SHOULD,
)
def test_reset_mid_stream_reported(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(RESET_MID_STREAM)
    judge.saw(x)
    judge.check(checks.single_error_event(x.transcript), checks.no_done_after_error(x.transcript))


@case(
    "5.7",
    "A clean close mid-answer is not dressed up as a clean finish",
    requirement="A stream that ends without [DONE] and without a finish_reason is a "
    "truncation, never dressed up as a clean finish.",
    source=COMMIT,
    expected="a prefix of the answer; no [DONE]; no finish_reason",
)
def test_clean_close_not_dressed_up(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(CLOSE_MID_ANSWER)
    judge.saw(x)
    judge.check(checks.nothing_replayed(x), checks.not_dressed_up(x))


@case(
    "5.8",
    "A clean close mid-answer is reported as a truncation",
    requirement="A truncation is reported as one: one in-band error event.",
    source=COMMIT,
    expected="one error event, as the last event",
    strength=Strength.SHOULD,
)
def test_clean_close_reported(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(CLOSE_MID_ANSWER)
    judge.saw(x)
    judge.check(checks.single_error_event(x.transcript), checks.no_done_after_error(x.transcript))


@case(
    "5.9",
    "A stall mid-stream ends the stream within the idle timeout",
    requirement="No idle timeout means a stalled upstream hangs the client forever; the "
    "idle timer fires while the upstream is silent.",
    source=COMMIT,
    expected="the stream is over within the declared idle timeout (with tolerance), without [DONE]",
)
def test_stall_mid_stream(sut: SystemUnderTest, judge: Judge) -> None:
    sut.waits(tolerance(sut.timeouts.bound("idle")), "the idle timer")
    x = sut.chat(Scenario(chunks=8, faults=(StallAfter(4),)))
    judge.saw(x)
    streamed = x.streamed
    last_write = (
        streamed.last_write_at if streamed and streamed.last_write_at else x.transcript.sent_at
    )
    judge.check(
        checks.ended_within(x.transcript, last_write, tolerance(sut.timeouts.bound("idle"))),
        checks.not_dressed_up(x),
        checks.nothing_replayed(x),
    )


@case(
    "5.10",
    "A malformed data line mid-stream is reported, not passed off",
    requirement="A payload that is not valid JSON is an upstream failure after the commit "
    "point: one in-band error event, no [DONE].",
    source=COMMIT,
    expected="one error event, no [DONE], nothing replayed",
    strength=Strength.SHOULD,
)
def test_malformed_mid_stream(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=8, faults=(Malformed(4),)))
    judge.saw(x)
    judge.check(
        checks.nothing_replayed(x),
        checks.single_error_event(x.transcript),
        checks.not_dressed_up(x),
    )


@case(
    "5.11",
    "A finish_reason without [DONE] is a clean end",
    requirement="Some upstreams omit [DONE] but send a finish_reason: that is a clean end, "
    "and downstream gets both.",
    source=COMMIT,
    expected="the whole answer, then [DONE]",
    strength=Strength.SHOULD,
)
def test_finish_without_done(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=6, faults=(NoDone(),)))
    judge.saw(x)
    judge.check(checks.content_intact(x), checks.ends_with_single_done(x.transcript))


@case(
    "5.12",
    "The upstream is closed when the client leaves mid-stream",
    requirement="When the client goes away, the upstream request is closed at once.",
    source=COMMIT,
    expected="the fake provider sees the proxy hang up within 0.5 s of the client, and no "
    "new attempt",
)
def test_client_leaves_mid_stream(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=40, faults=(Slow(50),)), leave_after_events=3)
    left = x.transcript.ended_at or time.perf_counter()
    released = checks.upstream_released(x, left, within=0.5, watch=0.5)
    judge.saw(x)  # after the wait, so that the report shows when the proxy hung up
    judge.check(released)


@case(
    "5.13",
    "The upstream is closed when the client leaves before the first byte",
    requirement="When the client goes away, the upstream request is closed at once, also "
    "while waiting for the first token.",
    source=COMMIT,
    expected="the fake provider sees the proxy hang up before the proxy's own first-byte "
    "timer could have fired, and no new attempt",
)
def test_client_leaves_before_first_byte(sut: SystemUnderTest, judge: Judge) -> None:
    # Leave early and judge before the proxy's own first-byte timer could have closed the
    # upstream, so that only a proxy which noticed the client can pass.
    first_byte = sut.timeouts.bound("first_byte")
    x = sut.chat(NEVER_ANSWERS, leave_before_response=first_byte * 0.2)
    left = x.transcript.ended_at or time.perf_counter()
    released = checks.upstream_released(x, left, within=first_byte * 0.5, watch=0.5)
    judge.saw(x)  # after the wait, so that the report shows when the proxy hung up
    judge.check(released)


@case(
    "5.14",
    "Persistent 500s give the client a real error status",
    requirement="If every attempt fails before the commit point, the client gets a real HTTP "
    "error status with an OpenAI-style JSON error body, never a 200.",
    source=COMMIT,
    expected="status 502 (or 500/503) with {'error': {'message': ...}}",
)
def test_persistent_500(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=4, faults=(Status(500),)))
    judge.saw(x)
    judge.check(checks.http_error(x.transcript, {500, 502, 503}))


@case(
    "5.15",
    "Persistent resets before headers give the client a 502",
    requirement="If every attempt fails before the commit point, the client gets 502 with an "
    "OpenAI-style JSON error body.",
    source=COMMIT,
    expected="status 502 with a JSON error body",
)
def test_persistent_reset(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=4, faults=(ResetBeforeHeaders(),)))
    judge.saw(x)
    judge.check(checks.http_error(x.transcript, {502}))


@case(
    "5.16",
    "An upstream that never answers gives the client an error, not a hang",
    requirement="A first-byte timeout is a timer; when every attempt times out the client "
    "gets a real error status with a JSON error body within the total timeout.",
    source=COMMIT,
    expected="a 5xx status with a JSON error body, within the declared total timeout",
)
def test_upstream_never_answers(sut: SystemUnderTest, judge: Judge) -> None:
    sut.waits(tolerance(sut.timeouts.bound("total")), "the total timer")
    x = sut.chat(NEVER_ANSWERS)
    judge.saw(x)
    judge.check(
        checks.http_error(x.transcript, set(range(500, 600))),
        checks.ended_within(
            x.transcript, x.transcript.sent_at, tolerance(sut.timeouts.bound("total"))
        ),
    )


@case(
    "5.17",
    "An upstream that never answers is reported as a timeout (504)",
    requirement="Retryable errors are reported with the right status: a timeout is 504, an "
    "upstream failure 502.",
    source=FAILURES,
    expected="status 504 with a JSON error body",
    strength=Strength.SHOULD,
)
def test_upstream_timeout_is_504(sut: SystemUnderTest, judge: Judge) -> None:
    sut.waits(tolerance(sut.timeouts.bound("total")), "the total timer")
    x = sut.chat(NEVER_ANSWERS)
    judge.saw(x)
    judge.check(checks.http_error(x.transcript, {504}))


@case(
    "5.18",
    "Any 5xx before the stream starts is retried",
    requirement="5xx from the upstream before the commit point is retried: 500, 502, 503 and "
    "529 (overloaded) alike.",
    source=FAILURES,
    expected="status 200 and the whole answer exactly once, then [DONE], after a second attempt",
)
@pytest.mark.parametrize("code", [500, 502, 529])
def test_5xx_retried(sut: SystemUnderTest, judge: Judge, code: int) -> None:
    x = sut.chat(Scenario(chunks=6, faults=(Status(code),), first=1))
    judge.saw(x)
    without_retries(sut, judge, x)
    judge.check(*_whole_after_a_retry(x))


@case(
    "5.19",
    "Retries are bounded",
    requirement="Retries are bounded: a provider that keeps failing is asked no more than the "
    "configured number of times (10 when the target declares none), then the client is told.",
    source=FAILURES,
    expected="a 5xx JSON error after at most max_attempts upstream attempts",
)
def test_retries_bounded(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=4, faults=(Status(503),)))
    judge.saw(x)
    judge.check(
        checks.http_error(x.transcript, set(range(500, 600))),
        checks.attempts_at_most(x, sut.offers.max_attempts or 10),
    )


AFTER_COMMIT = [
    pytest.param(Scenario(chunks=8, faults=(ResetAfter(4),)), id="reset"),
    pytest.param(Scenario(chunks=8, faults=(ResetInside(4),)), id="reset-inside-an-event"),
    pytest.param(Scenario(chunks=8, faults=(CloseAfter(4),)), id="close"),
    pytest.param(Scenario(chunks=8, faults=(UpstreamError(4, "object"),)), id="error-event"),
]


@case(
    "5.20",
    "No new upstream attempt after the commit point",
    requirement="After the commit point the proxy never replays content: it makes no new "
    "attempt, at this provider or at another, to patch the stream up.",
    source=COMMIT,
    expected="exactly one upstream attempt, made before the client's first byte",
)
@pytest.mark.parametrize("scenario", AFTER_COMMIT)
def test_no_attempt_after_commit(sut: SystemUnderTest, judge: Judge, scenario: Scenario) -> None:
    if "config" in sut.offers:
        scenario = replace(scenario, via="fallback")  # another provider is there to be tried
    x = sut.chat(scenario)
    judge.saw(x)
    judge.check(
        checks.no_attempt_after_commit(x),
        checks.attempts_exactly(x, 1),
        checks.not_dressed_up(x),
    )


@case(
    "5.21",
    "A reset after the response headers, before any event, is retried",
    requirement="Before the commit point every failure may be retried: a 200 whose body is "
    "reset before its first event has given the client nothing yet.",
    source=FAILURES,
    expected="status 200 and the whole answer exactly once, after a second attempt",
    strength=Strength.SHOULD,  # a pass-through that already relayed the 200 may only report it
)
def test_reset_after_headers_retried(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=6, faults=(ResetAfter(0),), first=1))
    judge.saw(x)
    without_retries(sut, judge, x)
    judge.check(*_whole_after_a_retry(x))


@case(
    "5.22",
    "A reset inside an event mid-stream: the half event is not passed on",
    requirement="After the commit point a failure becomes one in-band error event; the half "
    "of an event that arrived before the reset is not an event, and is better not passed on.",
    source=COMMIT,
    expected="the stream ends on an event boundary, with one error event last",
    strength=Strength.SHOULD,
)
def test_reset_inside_event(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=8, faults=(ResetInside(4),)))
    judge.saw(x)
    judge.check(
        checks.ends_on_event_boundary(x.transcript),
        checks.single_error_event(x.transcript),
    )


@case(
    "5.23",
    "A healthy slow stream longer than the idle timeout is never cut",
    requirement="Separate idle and total timeouts: a stream whose chunks each come within the "
    "idle timeout is healthy, however long it lasts in all.",
    source=COMMIT,
    expected="the whole answer and [DONE], though the stream lasts three idle timeouts (8 s or "
    "more when no total timer is declared)",
)
def test_slow_healthy_stream_not_cut(sut: SystemUnderTest, judge: Judge) -> None:
    # Chunks come within the idle timer (half of it, 0.4 s at most); the whole stream lasts
    # three idle timers, and at least 8 s when no total timer is declared (a total deadline
    # of a few seconds must show), but within a declared total.
    timeouts = sut.timeouts
    gap = min(timeouts.bound("idle") / 2, 0.4)
    span = 3 * timeouts.bound("idle")
    if not timeouts.declares("total"):
        span = max(span, 8.0)
    else:
        span = min(span, 0.8 * timeouts.bound("total"))
    sut.waits(span, "a healthy stream that outlasts the idle timer")
    x = sut.chat(Scenario(chunks=max(6, math.ceil(span / gap)), faults=(Slow(round(gap * 1000)),)))
    judge.saw(x)
    judge.check(checks.content_intact(x), checks.ends_with_single_done(x.transcript))


@case(
    "5.37",
    "A rate limit that outlasts the retries reaches the client with its Retry-After",
    requirement="What the upstream said is never lost: a 429 the proxy could not get past "
    "reaches the client as a 429 (or a 503) with `Retry-After` and a JSON error body, so that "
    "the client knows how long to wait (RFC 9110 §10.2.3).",
    source="RFC 9110 §10.2.3; streamproof policy (docs/verdicts.md)",
    expected="status 429 or 503 with a Retry-After header and an OpenAI-style JSON error body",
)
def test_persistent_429_keeps_retry_after(sut: SystemUnderTest, judge: Judge) -> None:
    # On a process of its own: a proxy that rightly cools the provider down for the
    # Retry-After would answer the next cases of this one 503 without asking it.
    with sut.fresh() as fresh:
        x = fresh.chat(Scenario(chunks=4, faults=(Status(429, 1),)))
        judge.saw(x)
    t = x.transcript
    judge.check(
        checks.http_error(t, {429, 503}),
        Finding(
            "retry-after" in t.headers,
            "Retry-After passed on",
            f"Retry-After: {t.headers['retry-after']}" if "retry-after" in t.headers else "none",
        ),
    )


@case(
    "5.38",
    "A provider that refuses connections: an honest error, not a hang",
    requirement="If the upstream cannot be reached, the client gets a real HTTP error status "
    "with an OpenAI-style JSON error body (502), never a 200 and never a hang. Judged on the "
    "target started again with `{upstream}` where nothing listens.",
    source=COMMIT,
    expected="status 502 (or another 5xx) with {'error': {'message': ...}}, promptly",
)
def test_upstream_refuses_connections(sut: SystemUnderTest, judge: Judge) -> None:
    with sut.upstream_down("refused") as down:
        x = down.chat(Scenario(chunks=4), asks_upstream=False)
        judge.saw(x)
    judge.check(checks.http_error(x.transcript, {502, 503}))


@case(
    "5.39",
    "A provider whose connects never complete: an error within the timers, not a hang",
    requirement="A connect that never completes is bounded by the connect timer: the client "
    "gets a real error status with a JSON error body (504 or 502) within the target's timers. "
    "Judged on the target started again with `{upstream}` where connects never complete.",
    source=COMMIT,
    expected="a 5xx with a JSON error body, within the declared total timeout (with tolerance)",
)
def test_upstream_connects_never_complete(sut: SystemUnderTest, judge: Judge) -> None:
    bound = tolerance(sut.timeouts.bound("total"))
    sut.waits(bound, "the connect and total timers")
    with sut.upstream_down("blackhole") as down:
        x = down.chat(Scenario(chunks=4), asks_upstream=False)
        judge.saw(x)
    t = x.transcript
    judge.check(checks.http_error(t, {502, 503, 504}), checks.ended_within(t, t.sent_at, bound))


TLS = "RFC 8446 §6.1 (close_notify), RFC 9112 §9.8; streamproof policy (docs/verdicts.md)"


@case(
    "5.40",
    "A TLS handshake that stalls or is reset is a connect failure: retried within the connect "
    "timer",
    requirement="A handshake that never completes, or that the server resets, is part of "
    "connecting: the connect timer bounds it (not the first-byte timer), and, before the "
    "commit point, it is retried (no request was sent). Judged on the target started again "
    "with `{upstream}` at a door of the fake whose first handshake stalls after the "
    "ClientHello (`handshake_stall-1`) or is reset there (`handshake_reset-1`), "
    "--upstream-tls.",
    source=FAILURES,
    expected="a stalled handshake given up within the connect timer (with tolerance); status "
    "200 and the whole answer, from a second connection",
)
@pytest.mark.parametrize("fault", ["stall", "reset"])
def test_tls_handshake_stall_retried(sut: SystemUnderTest, judge: Judge, fault: str) -> None:
    door = sut.door(HandshakeStall(first=1) if fault == "stall" else HandshakeReset(first=1))
    bound = tolerance(sut.timeouts.bound("connect"))
    with sut.behind(door) as behind:
        x = behind.chat(Scenario(chunks=6), asks_upstream=False)
        judge.saw(x)
        # Once the client has its answer (or gave up), the target has left the stalled
        # handshake: it retried after it, or it failed the request.
        stalls = door.wait_stalls(1, timeout=bound) if fault == "stall" else []
    t = x.transcript
    judge.check(
        Finding(door.handshakes >= 1, f"a handshake met the {fault}", f"{door.handshakes} begun")
    )
    if fault == "stall":
        judge.check(
            Finding(
                bool(stalls) and stalls[0] <= bound,
                f"the stalled handshake given up within {bound:.2f} s (the connect timer)",
                f"given up after {stalls[0]:.3f} s" if stalls else "never given up",
            )
        )
    if "retries" not in sut.offers and door.handshakes == 1:
        honest = checks.http_error(t, {502, 503, 504}), checks.ended_within(t, t.sent_at, bound)
        judge.offered("retries", *honest)
    judge.check(
        checks.status_is(t, 200),
        checks.content_intact(x),
        checks.attempts_at_least(x, 1),
        Finding(door.handshakes >= 2, "a new connection after it", f"{door.handshakes} begun"),
    )


@case(
    "5.41",
    "An upstream certificate the proxy must not trust is refused: the key is never sent",
    requirement="A proxy that does not verify the upstream's certificate sends its API key "
    "to whoever answers. A certificate from an unknown CA, for another host, or expired ends "
    "the request with a clear 502, without a retry storm, and the request (with its key) is "
    "never sent. Judged on the target started again with `{upstream}` at a door of the fake "
    "that presents that certificate (--upstream-tls).",
    source="RFC 9110 §4.3.4; RFC 6125; streamproof policy (docs/verdicts.md)",
    expected="no request reaches the untrusted server; status 502 with a JSON error body; at "
    f"most {2 * MAX_ATTEMPTS} handshakes",
)
@pytest.mark.parametrize("kind", ["unknown_ca", "wrong_host", "expired"])
def test_tls_untrusted_certificate_refused(sut: SystemUnderTest, judge: Judge, kind: str) -> None:
    door = sut.door(Cert(kind))
    with sut.behind(door) as behind:
        x = behind.chat(Scenario(chunks=4), asks_upstream=False)
        judge.saw(x)
    keyed = [a for a in x.attempts if "authorization" in a.headers or "api-key" in a.headers]
    judge.check(
        Finding(door.handshakes >= 1, "the proxy met the certificate", f"{door.handshakes} begun"),
        # The request is what carries the key: a proxy may complete the handshake and check
        # the certificate after it (nginx does), as long as it then sends nothing.
        Finding(
            not x.attempts,
            "nothing sent to the untrusted server",
            "the upstream key was sent to an untrusted server"
            if keyed
            else f"{len(x.attempts)} request(s) sent to the untrusted server"
            if x.attempts
            else "nothing sent"
            + (f" ({door.completed} handshake(s) completed, then left)" if door.completed else ""),
            harm=True,
        ),
        checks.http_error(x.transcript, {502}),
        Finding(
            door.handshakes <= 2 * MAX_ATTEMPTS,
            f"at most {2 * MAX_ATTEMPTS} handshakes",
            f"{door.handshakes} handshakes",
        ),
    )


@case(
    "5.42",
    "A TLS close without close_notify mid-answer is a truncation",
    requirement="A body whose only end is the connection's close is complete only if TLS "
    "closed it with close_notify (RFC 9112 §9.8); one cut without it, mid-answer, is a "
    "truncation, never dressed up as a clean finish.",
    source=TLS,
    expected="a prefix of the answer; no [DONE]; no finish_reason; the failure visible",
)
def test_tls_ragged_close_is_truncation(sut: SystemUnderTest, judge: Judge) -> None:
    if sut.provider.tls is None:
        pytest.skip("a TLS case: run with --upstream-tls")
    x = sut.chat(Scenario(chunks=8, faults=(CloseDelimited(), RaggedAfter(4))))
    judge.saw(x)
    judge.check(checks.nothing_replayed(x), checks.not_dressed_up(x))


@case(
    "5.43",
    "A pooled TLS connection the upstream closed is retried before the commit point",
    requirement="A server closes a kept-alive connection it let idle; a proxy that sends the "
    "next request on it before it noticed gets a close (close_notify and FIN) or a reset, and "
    "no answer. The request was never answered: before the commit point it is retried, on "
    "a new connection, not turned into the client's error (RFC 9112 §9.3.1). Judged over TLS "
    "(--upstream-tls): a first request leaves a connection in the proxy's pool; the fake "
    "closes it when the next request comes on it (`stale-close`, `stale-reset`). A target "
    "that keeps no connection to the upstream is never exposed: SKIP.",
    source=f"{FAILURES}; RFC 9112 §9.3.1",
    expected="status 200 and the whole answer exactly once, after a second upstream attempt",
)
@pytest.mark.parametrize("how", ["close", "reset"])
def test_tls_stale_pooled_connection_retried(sut: SystemUnderTest, judge: Judge, how: str) -> None:
    if sut.provider.tls is None:
        pytest.skip("a TLS case: run with --upstream-tls")
    warm = sut.chat(Scenario(chunks=2))
    judge.saw(warm, "a first request: it leaves a connection in the pool")
    judge.check(checks.status_is(warm.transcript, 200))
    x = sut.chat(Scenario(chunks=8, faults=(Stale(how),), first=1))
    judge.saw(x)
    if not any((a.ending or "").startswith("stale") for a in x.attempts):
        pytest.skip(
            "the request came on a new connection: the target keeps no connection to the "
            "upstream (or did not reuse it), so none could go stale"
        )
    without_retries(sut, judge, x)
    judge.check(*_whole_after_a_retry(x))


@case(
    "5.44",
    "TLS records split across writes at any byte change nothing the client gets",
    requirement="TLS carries the stream in records, and TCP may deliver a record in pieces "
    "cut anywhere; what the client gets is the same answer as over plain HTTP. Judged with "
    "every record of the answer written to the socket in pieces of 1, 7 or 100 bytes "
    "(`tls_records-B`, --upstream-tls).",
    source="RFC 8446 §5.1; RFC 9112 §7.1",
    expected="status 200, the whole answer, [DONE] once",
)
@pytest.mark.parametrize("size", [1, 7, 100])
def test_tls_records_split_anywhere(sut: SystemUnderTest, judge: Judge, size: int) -> None:
    if sut.provider.tls is None:
        pytest.skip("a TLS case: run with --upstream-tls")
    x = sut.chat(Scenario(chunks=8, faults=(TlsRecords(size),)))
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.content_intact(x),
        checks.ends_with_single_done(x.transcript),
    )
