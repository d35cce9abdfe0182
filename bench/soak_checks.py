"""The chaos soak's checks (`bench/soak.py`): the per-stream verdicts, from what the client
received and what the fake journaled, the health counters against what the clients saw, and
the limits the global checks hold the proxy to."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.soak_client import Stream
from streamproof.fake_providers import Attempt, Journal, chat
from streamproof.harness.sut import finish_reasons
from streamproof.harness.targets import MAX_ATTEMPTS
from streamproof.harness.transcript import DONE, Outcome, Transcript, Transport

STALL_LIMIT = 10.0  # the fake ends a stall by itself after this: a stall the proxy never cut
RSS_LIMIT_MIB = 20.0
CANDIDATES = 10  # streams named by a violation of a global check
# Upstream connections the proxy may keep open, idle, for reuse: httpx's default keep-alive
# pool (max_keepalive_connections), which the reference proxy does not change. Whether a
# connection is idle is the journal's to say: every attempt made on it is over.
KEEPALIVE_BOUND = 20
# Upstream attempts for one request past which a target that does not say how many it makes
# (the `config` offer does: MAX_ATTEMPTS) is storming its upstream.
STORM = 5
SHAPES = 2  # the first fault stage that only cuts or paces the writes (fake_providers.faults)

# What each check means by the verdict rule (docs/verdicts.md). A harm is a violation for
# every target: wrong data accepted as right, a client held, a leak. What a careful proxy
# does (one in-band error event, a JSON error body, bounded attempts, every upstream
# attempt closed) is a violation in a strict run — the bundled proxy, which promises it, or
# a `--proxy-cmd` on its config — and otherwise a note: reported, never a failed soak.
HARMS = frozenset(
    {
        "no-end",
        "not-an-event-stream",
        "silent-truncation",
        "truncated-as-done",
        "content-duplicated",
        "content-differs",
        "content-not-prefix",
        "finish-reason",
        "finish-invented",
        "fds-not-back",
        "premise",
    }
)
SHOULDS = frozenset(
    {
        "attempts-mixed",
        "done-count",
        "events-after-done",
        "error-and-done",
        "error-count",
        "events-after-error",
        "error-body",
        "error-status",
        "connection-broken",
        "no-response",
        "no-done",
        "no-upstream-attempt",
        "too-many-attempts",
        "attempt-after-commit",
        "upstream-held-open",
        "upstream-not-closed",
        "rss-growth",
    }
)


def settle_severity(stream: Stream, strict: bool) -> None:
    """Outside a strict run, move what a careful proxy does from problems to notes."""
    if strict:
        return
    stream.notes.extend(p for p in stream.problems if p[0] in SHOULDS)
    stream.problems[:] = [p for p in stream.problems if p[0] not in SHOULDS]


def _chunk_attempts(t: Transcript, nonce: str) -> set[int | None]:
    """The attempt numbers in the chunks' ids (`chatcmpl-<nonce>-<k>`); None for another."""
    prefix = f"chatcmpl-{nonce}-"
    found: set[int | None] = set()
    for _, chunk in t.chat_chunks:
        ident = chunk.get("id")
        tail = ident[len(prefix) :] if isinstance(ident, str) and ident.startswith(prefix) else ""
        found.add(int(tail) if tail.isdigit() else None)
    return found


def _attempt(journal: Journal, number: int | None) -> Attempt | None:
    return next((a for a in journal.attempts if a.number == number), None)


def judge(stream: Stream) -> None:
    """The stream's result, and its problems, from what the client saw (see bench/soak.py)."""
    s, t = stream.schedule, stream.transcript
    problems = stream.problems
    attempts = _chunk_attempts(t, s.scenario.nonce)
    if len(attempts) > 1:
        shown = sorted(str(a) for a in attempts)
        problems.append(("attempts-mixed", f"chunks from attempts {', '.join(shown)}"))
    stream.attempt = next(iter(attempts)) if len(attempts) == 1 else None
    if stream.left:
        stream.result = "left"
        return
    outcome = t.outcome
    kind = t.headers.get("content-type", "")
    if t.transport is Transport.TIMED_OUT:  # whatever its status: the client had to give up
        stream.result = "broken"
        detail = (
            f"status {t.status}, {len(t.events)} events, {len(t.content(0))} characters; "
            f"{t.transport_error}"
        )
        problems.append(("no-end", detail))
    elif t.status == 200 and not kind.startswith("text/event-stream"):
        stream.result = "broken"
        problems.append(("not-an-event-stream", f"status 200 with content-type {kind!r}"))
    elif outcome in (Outcome.RESET, Outcome.NO_RESPONSE):
        # An aborted transfer: every client sees an error (the SDKs raise). It is honest,
        # but not the one in-band error event a careful proxy sends once it has answered.
        stream.result = "aborted"
        check = "connection-broken" if outcome is Outcome.RESET else "no-response"
        detail = (
            f"status {t.status}, {len(t.events)} events, no [DONE], no error event, "
            f"{len(t.content(0))} characters ({t.transport_error})"
        )
        problems.append((check, detail))
        _judge_prefix(stream, sdk_view(t)[0])
    elif outcome is Outcome.HTTP_ERROR:
        stream.result = "http_error"
        document = t.json_body
        if not (isinstance(document, dict) and isinstance(document.get("error"), dict)):
            problems.append(("error-body", f"HTTP {t.status} without a JSON error object"))
        if t.status is None or not 400 <= t.status <= 599:
            problems.append(("error-status", f"HTTP {t.status} is not an error status"))
    else:  # a 200 event stream whose body ended as HTTP says it should
        _judge_events(stream)


def sdk_view(t: Transcript) -> tuple[str, bool]:
    """What the openai SDK's caller gets from a 200 event stream: the content up to `[DONE]`
    or the first sign of failure — a payload it raises on (an "error" member, or one it
    cannot read as an object) or a finish_reason "error" — and whether there was one."""
    parts: list[str] = []
    for _, payload in t.payloads:
        if payload is DONE:
            break
        if not isinstance(payload, dict) or payload.get("error"):
            return "".join(parts), True
        choices = payload.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            if choice.get("finish_reason") == "error":
                return "".join(parts), True
    return "".join(parts), False


def _judge_events(stream: Stream) -> None:
    """A 200 event stream that ended cleanly, judged as the SDK's caller lives it: a
    failure it was shown, a whole answer, or wrong data accepted as right."""
    s, t, problems = stream.schedule, stream.transcript, stream.problems
    seen, signalled = sdk_view(t)
    want = chat.expected(s.scenario).text
    if signalled:
        stream.result = "error"
        errors = t.error_events
        if len(errors) != 1:
            problems.append(("error-count", f"{len(errors)} in-band error events"))
        if t.events and errors and t.events[-1] is not errors[-1]:
            problems.append(("events-after-error", "events after the error event"))
        if t.done_count:
            problems.append(("error-and-done", f"an error shown, then {t.done_count} [DONE]"))
        _judge_prefix(stream, seen)
        return
    whole = seen == want and t.finish_reason(0) == s.scenario.finish_reason
    invented = _invented(stream)
    if invented and (t.done_count or whole):
        text = (
            f"finish_reason {', '.join(invented)} that no upstream attempt sent, and the stream "
            "ends as a whole answer: what the upstream said (its error, its cut) is lost"
        )
        problems.append(("finish-invented", text))
    if t.done_count:
        stream.result = "success"
        if t.done_count != 1:
            problems.append(("done-count", f"{t.done_count} [DONE] events"))
        if t.payloads and t.payloads[-1][1] is not DONE:
            problems.append(("events-after-done", "events after [DONE]"))
        if t.error_events:
            text = f"{len(t.error_events)} error events the SDK yields as chunks, and [DONE]"
            problems.append(("error-and-done", text))
        if seen != want:
            if want.startswith(seen):
                check = "truncated-as-done"
            elif seen.count(want) > 1 or (len(seen) > len(want) and seen.startswith(want)):
                check = "content-duplicated"
            else:
                check = "content-differs"
            problems.append((check, f"{len(seen)} characters received, {len(want)} expected"))
        if t.finish_reason(0) != s.scenario.finish_reason:
            problems.append(("finish-reason", f"finish_reason {t.finish_reason(0)!r}"))
    elif whole:
        # The whole answer and its finish_reason, then a clean end: the SDKs return it as
        # the complete answer it is; only the `[DONE]` a careful proxy sends is missing.
        stream.result = "success"
        problems.append(("no-done", "the whole answer, then the body ended without [DONE]"))
    else:
        stream.result = "broken"
        shown = f", {len(t.error_events)} error events the SDK does not raise on"
        detail = (
            f"status {t.status}, {len(t.events)} events, no [DONE]"
            f"{shown if t.error_events else ', no error event'}, {len(seen)} of {len(want)} "
            "characters, then a clean end of the body: the half answer looks complete"
        )
        problems.append(("silent-truncation", detail))


def _invented(stream: Stream) -> list[str]:
    """The finish reasons the client got that no upstream attempt wrote (none when the
    journal did not keep an attempt's whole body: then it cannot tell)."""
    written: set[str] = set()
    for a in stream.journal.attempts:
        if len(a.data) < a.bytes_written:
            return []
        written |= finish_reasons(bytes(a.data))
    got = stream.transcript.finish_reasons
    return sorted({r for r in got if r != "error" and r not in written})


def _judge_prefix(stream: Stream, got: str) -> None:
    """A failed stream's content is a prefix of what the attempt it came from wrote."""
    attempt = _attempt(stream.journal, stream.attempt)
    written = attempt.content_written if attempt is not None else ""
    if got and not written.startswith(got):
        source = f"attempt {stream.attempt}" if attempt is not None else "no attempt"
        stream.problems.append(
            (
                "content-not-prefix",
                f"{len(got)} characters received are not a prefix of the {len(written)} "
                f"{source} wrote",
            )
        )


def released(attempt: Attempt) -> bool:
    """The attempt is over: the fake ended it (clean, reset) or the proxy hung up."""
    if attempt.peer_closed_at is not None:
        return True
    return attempt.ending in ("clean", "reset", "peer_left")


def judge_upstream(stream: Stream, max_attempts: int = MAX_ATTEMPTS) -> None:
    """Per stream, once the proxy is idle: attempts bounded, none after the commit, and
    every one of them over (the journal is final by then, or the wait for it timed out)."""
    attempts = stream.journal.attempts
    if not attempts and stream.result in ("http_error", "error", "aborted"):
        # The upstream listens on 127.0.0.1 and answers every request: a failure that never
        # reached it is the proxy's own — often a pooled connection the upstream had closed
        # (as servers do), which a careful proxy retries: nothing of it reached the upstream.
        stream.problems.append(
            (
                "no-upstream-attempt",
                f"failed ({stream.transcript.status}) without one request reaching the upstream",
            )
        )
    if len(attempts) > max_attempts:
        stream.problems.append(("too-many-attempts", f"{len(attempts)} upstream attempts"))
    if stream.attempt is not None:
        # An attempt the proxy had hung up on before the fake read it was made before the
        # commit, whatever number the fake gave it: a loaded fake may read it late.
        later = [a.number for a in attempts if a.number > stream.attempt and not a.abandoned]
        if later:
            stream.problems.append(
                ("attempt-after-commit", f"attempts {later} after attempt {stream.attempt}")
            )
    for a in attempts:
        if released(a):
            continue
        if a.ending == "stall":
            detail = f"attempt {a.number}: held open until the fake gave up ({STALL_LIMIT:g} s)"
            stream.problems.append(("upstream-held-open", detail))
        else:
            stream.problems.append(("upstream-not-closed", f"attempt {a.number} still open"))


def premise(streams: list[Stream], target_args: str = "") -> list[dict[str, Any]]:
    """The soak happened: of the streams whose upstream answered cleanly at once (no fault
    but the shape of its writes) and whose client read to the end, at least half reached
    their client whole. A dead proxy (500 to everything), or one that never asks its
    upstream, passes no soak."""
    plain = [
        s
        for s in streams
        if s.schedule.leave_after_events is None
        and s.schedule.leave_before_response is None
        and all(f.stage >= SHAPES for f in s.schedule.scenario.faults)
    ]
    served = [s for s in plain if s.result == "success"]
    if 2 * len(served) >= len(plain):
        return []
    failed = [s for s in plain if s.result != "success"]
    return [
        {
            "check": "premise",
            "detail": f"{len(served)} of the {len(plain)} streams whose upstream answered at "
            "once, read to the end, reached their client whole: the soak never happened",
            "streams": [s.schedule.names(target_args) for s in failed[:CANDIDATES]],
        }
    ]


def counter_check(
    streams: list[Stream], delta: dict[str, int], target_args: str = ""
) -> list[dict[str, Any]]:
    """The health counters against what the clients saw.

    What a client knows exactly: a `[DONE]` it received is a success the proxy decided before
    sending it, an HTTP error or an in-band error a failure (the proxy records the outcome
    before the last byte goes out). A client that left cannot know whether the proxy had
    already decided (its last bytes may have been on the way) or saw the hang-up first; and a
    stream already judged broken has no agreed meaning. So, with a, b, c the succeeded,
    failed and cancelled counts beyond what the clients saw:

        total = streams sent;  a, b, c >= 0;  a + b + c = left + broken;
        a <= the left or broken streams whose upstream wrote the whole answer.
    """
    seen = Counter(s.result for s in streams)
    succeeded = seen["success"]
    failed = seen["http_error"] + seen["error"]
    unknown = [s for s in streams if s.result in ("left", "aborted", "broken")]
    whole = [
        s
        for s in unknown
        if any(
            a.content_written == chat.expected(s.schedule.scenario).text for a in s.journal.attempts
        )
    ]
    a, b = delta["succeeded"] - succeeded, delta["failed"] - failed
    c = delta["cancelled"]
    clients = (
        f"clients: {succeeded} successes, {failed} failures, {seen['left']} left, "
        f"{seen['aborted']} aborted, {seen['broken']} broken, {len(streams)} in all"
    )
    proxy = (
        f"health: {delta['succeeded']} succeeded, {delta['failed']} failed, "
        f"{delta['cancelled']} cancelled, {delta['total']} in all"
    )
    found: list[tuple[str, str, list[Stream]]] = []
    if delta["total"] != len(streams):
        found.append(("health-total", "the total is not the number of streams sent", unknown))
    if a < 0:
        text = f"{-a} successes the clients saw are not counted as successes"
        found.append(("health-succeeded", text, [s for s in streams if s.result == "success"]))
    if b < 0:
        failures = [s for s in streams if s.result in ("http_error", "error")]
        found.append(("health-failed", f"{-b} failures the clients saw are not counted", failures))
    if a > len(whole):
        text = f"{a} successes beyond what clients saw, but only {len(whole)} could be"
        found.append(("health-succeeded", text, [s for s in streams if s.result != "success"]))
    if a >= 0 and b >= 0 and c >= 0 and a + b + c != len(unknown):
        text = f"{a} + {b} + {c} uncertain counts for {len(unknown)} left or broken streams"
        found.append(("health-cancelled", text, unknown))
    return [
        {
            **(named[0].schedule.names(target_args) if named else {}),
            "check": check,
            "detail": f"{text}; {clients}; {proxy}",
            "streams": [s.schedule.names(target_args) for s in named[:CANDIDATES]],
        }
        for check, text, named in found
    ]
