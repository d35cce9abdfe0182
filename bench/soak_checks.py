"""The chaos soak's checks (`bench/soak.py`): the per-stream verdicts, from what the client
received and what the fake journaled, the health counters against what the clients saw, and
the limits the global checks hold the proxy to."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.soak_client import STREAM_BOUND, Stream
from streamproof.fake_providers import Attempt, Journal, chat
from streamproof.harness.targets import MAX_ATTEMPTS
from streamproof.harness.transcript import DONE, Outcome, Transcript

STALL_LIMIT = 10.0  # the fake ends a stall by itself after this: a stall the proxy never cut
RSS_LIMIT_MIB = 20.0
CANDIDATES = 10  # streams named by a violation of a global check
# Upstream connections the proxy may keep open, idle, for reuse: httpx's default keep-alive
# pool (max_keepalive_connections), which the reference proxy does not change. Whether a
# connection is idle is the journal's to say: every attempt made on it is over.
KEEPALIVE_BOUND = 20


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
    if t.status == 200 and not kind.startswith("text/event-stream"):
        stream.result = "broken"
        problems.append(("not-an-event-stream", f"status 200 with content-type {kind!r}"))
        return
    if outcome is Outcome.DONE:
        stream.result = "success"
        _judge_success(stream)
    elif outcome is Outcome.ERROR:
        stream.result = "error"
        _judge_error(stream)
    elif outcome is Outcome.HTTP_ERROR:
        stream.result = "http_error"
        document = t.json_body
        if not (isinstance(document, dict) and isinstance(document.get("error"), dict)):
            problems.append(("error-body", f"HTTP {t.status} without a JSON error object"))
        if t.status is None or not 400 <= t.status <= 599:
            problems.append(("error-status", f"HTTP {t.status} is not an error status"))
    else:
        stream.result = "broken"
        check = {
            Outcome.TRUNCATED: "silent-truncation",
            Outcome.RESET: "connection-broken",
            Outcome.TIMED_OUT: "no-end",
            Outcome.NO_RESPONSE: "no-response",
        }.get(outcome, f"outcome-{outcome.value}")
        detail = (
            f"{t.outcome.value}: status {t.status}, {len(t.events)} events, no [DONE], "
            f"no error event, {len(t.content(0))} characters"
            + (f" ({t.transport_error})" if t.transport_error else "")
        )
        if outcome is Outcome.TIMED_OUT:
            detail += f"; still open {STREAM_BOUND:g} s after it was sent"
        problems.append((check, detail))


def _judge_success(stream: Stream) -> None:
    s, t, problems = stream.schedule, stream.transcript, stream.problems
    if t.done_count != 1:
        problems.append(("done-count", f"{t.done_count} [DONE] events"))
    if t.payloads and t.payloads[-1][1] is not DONE:
        problems.append(("events-after-done", "events after [DONE]"))
    if t.error_events:
        problems.append(("error-and-done", f"{len(t.error_events)} error events and [DONE]"))
    got, want = t.content(0), chat.expected(s.scenario).text
    if got != want:
        if want.startswith(got):
            check = "truncated-as-done"
        elif got.count(want) > 1 or (len(got) > len(want) and got.startswith(want)):
            check = "content-duplicated"
        else:
            check = "content-differs"
        problems.append((check, f"{len(got)} characters received, {len(want)} expected"))
    if t.finish_reason(0) != s.scenario.finish_reason:
        problems.append(("finish-reason", f"finish_reason {t.finish_reason(0)!r}"))


def _judge_error(stream: Stream) -> None:
    t, problems = stream.transcript, stream.problems
    errors = t.error_events
    if len(errors) != 1:
        problems.append(("error-count", f"{len(errors)} in-band error events"))
    if t.events and errors and t.events[-1] is not errors[-1]:
        problems.append(("events-after-error", "events after the error event"))
    got = t.content(0)
    attempt = _attempt(stream.journal, stream.attempt)
    written = attempt.content_written if attempt is not None else ""
    if got and not written.startswith(got):
        source = f"attempt {stream.attempt}" if attempt is not None else "no attempt"
        problems.append(
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


def judge_upstream(stream: Stream) -> None:
    """Per stream, once the proxy is idle: attempts bounded, none after the commit, and
    every one of them over (the journal is final by then, or the wait for it timed out)."""
    attempts = stream.journal.attempts
    if not attempts and stream.result in ("http_error", "error"):
        # The upstream listens on 127.0.0.1 and answers every request: a failure that never
        # reached it is the proxy's own (a connection pool that hands out no connection).
        stream.problems.append(
            (
                "no-upstream-attempt",
                f"failed ({stream.transcript.status}) without one request reaching the upstream",
            )
        )
    if len(attempts) > MAX_ATTEMPTS:
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


def counter_check(streams: list[Stream], delta: dict[str, int]) -> list[dict[str, Any]]:
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
    unknown = [s for s in streams if s.result in ("left", "broken")]
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
        f"{seen['broken']} broken, {len(streams)} in all"
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
            **(named[0].schedule.names() if named else {}),
            "check": check,
            "detail": f"{text}; {clients}; {proxy}",
            "streams": [s.schedule.names() for s in named[:CANDIDATES]],
        }
        for check, text, named in found
    ]
