"""Checks of the live feed (`/ws`): what a watcher was told against what really happened.

The protocol is the reference proxy's (`proxy.feed`, docs/reference-proxy.md): JSON objects with
`type` and a per-connection `seq` that starts at 1 and grows by one per message; `init`
first, then `stream_started` / `stream_ended` / `alert` events, and replies to the
client's own messages (`pong`, `error`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

from streamproof.harness.checks.health import chunks_received
from streamproof.harness.feed import Message, Received
from streamproof.harness.sut import Exchange
from streamproof.harness.transcript import Outcome, Transport
from streamproof.harness.verdict import Finding


def frames_are_json_objects(received: Received) -> Finding:
    """Every frame the server sent is one JSON object, as text."""
    bad = len(received.not_json) + received.binary
    observed = f"{len(received.raw)} text frames"
    if received.not_json:
        observed += f"; {len(received.not_json)} not JSON objects, e.g. {received.not_json[0]!r}"
    if received.binary:
        observed += f"; {received.binary} binary frames"
    return Finding(bad == 0, "every message is one JSON object in a text frame", observed)


def seq_gap_free(received: Received) -> Finding:
    """`seq` is 1, 2, 3, ... over the connection: nothing missed, nothing twice."""
    seqs = [m.get("seq") for m in received.messages]
    want = list(range(1, len(seqs) + 1))
    if seqs == want:
        return Finding(True, "seq 1, 2, 3, ... with no gap", f"seq 1..{len(seqs)} in order")
    first = next(
        i for i, (got, expected) in enumerate(zip(seqs, want, strict=True)) if got != expected
    )
    around = seqs[max(0, first - 2) : first + 3]
    return Finding(
        False,
        "seq 1, 2, 3, ... with no gap",
        f"message {first + 1} of {len(seqs)} has seq {seqs[first]!r} (around it: {around})",
    )


def is_init(message: Message | None) -> Finding:
    """The first message is the `init` snapshot: seq 1 and a health report."""
    want = "the first message is init (seq 1) with the health report"
    if message is None:
        return Finding(False, want, "no message came")
    health = message.get("health")
    ok = (
        message.get("type") == "init"
        and message.get("seq") == 1
        and isinstance(health, dict)
        and isinstance(health.get("requests"), dict)
        and isinstance(health.get("recent"), list)
    )
    keys = sorted(health) if isinstance(health, dict) else health
    return Finding(
        ok, want, f"type {message.get('type')!r}, seq {message.get('seq')!r}, health {keys}"
    )


def pong_answers(message: Message | None, ping_id: Any, seq: int) -> Finding:
    """The reply to `{"type": "ping", "id": ping_id}` is a pong with that id, next in seq."""
    want = f"pong with id {ping_id!r} and seq {seq}"
    if message is None:
        return Finding(False, want, "no reply came")
    got = (message.get("type"), message.get("id"), message.get("seq"))
    return Finding(got == ("pong", ping_id, seq), want, f"type, id, seq = {got}")


def error_reply(message: Message | None) -> Finding:
    """A client's bad message is answered by an `error` message with a code and words."""
    want = "an error message with a code and a message"
    if message is None:
        return Finding(False, want, "no reply came (or the connection closed)")
    ok = (
        message.get("type") == "error"
        and isinstance(message.get("code"), str)
        and isinstance(message.get("message"), str)
    )
    return Finding(ok, want, f"{message}")


def still_open(received: Received, replied: bool) -> Finding:
    """The connection survived a bad message: a ping after it was answered."""
    closed = received.close_code
    observed = "a later ping was answered" if replied else "no answer to a later ping"
    if closed is not None:
        observed += f"; closed with {closed} {received.close_reason!r}"
    return Finding(replied and closed is None, "the connection stays open", observed)


def closed_with(
    received: Received, codes: Collection[int], what: str, *, reason: bool = True
) -> Finding:
    """The server closed the connection with one of `codes` (and a reason, if `reason`)."""
    want = f"closed with {' or '.join(map(str, codes))}" + (" and a reason" if reason else "")
    want += f" ({what})"
    if received.close_code is None:
        return Finding(False, want, "the connection was not closed")
    ok = received.close_code in codes and (bool(received.close_reason) or not reason)
    return Finding(ok, want, f"closed with {received.close_code} {received.close_reason!r}")


def stream_events(messages: Iterable[Message], models: Collection[str]) -> Finding:
    """Each stream (by model) has one `stream_started` then one `stream_ended`."""
    started: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    early: list[str] = []
    for message in messages:
        stream = message.get("stream")
        model = stream.get("model") if isinstance(stream, dict) else None
        if not isinstance(model, str) or model not in models:
            continue
        if message.get("type") == "stream_started":
            started[model] += 1
        elif message.get("type") == "stream_ended":
            if not started[model]:
                early.append(model)
            ended[model] += 1
    wrong = sorted(m for m in models if (started[m], ended[m]) != (1, 1))
    want = "one stream_started, then one stream_ended, for each stream"
    observed = f"{len(models)} streams, {sum(started.values())} starts, {sum(ended.values())} ends"
    if wrong:
        examples = ", ".join(f"{m}: {started[m]} starts, {ended[m]} ends" for m in wrong[:3])
        observed += f"; {len(wrong)} streams wrong ({examples})"
    if early:
        observed += f"; {len(early)} ended before they started (e.g. {early[0]})"
    return Finding(not wrong and not early, want, observed)


def ended_events(messages: Iterable[Message]) -> dict[str, Message]:
    """The `stream` record of each `stream_ended` message, by model (the last one wins)."""
    ended = {}
    for message in messages:
        stream = message.get("stream")
        if message.get("type") == "stream_ended" and isinstance(stream, dict):
            ended[str(stream.get("model"))] = stream
    return ended


def expected_results(x: Exchange) -> set[str]:
    """The results an honest feed can report for what this client saw."""
    t = x.transcript
    if t.transport is Transport.LEFT:
        # The client hung up; if the proxy had already written the whole answer, it ended
        # as a success before it could notice.
        return {"cancelled", "success"}
    if t.transport is Transport.TIMED_OUT:
        return {"failure", "cancelled"}  # the client gave up on a proxy that said nothing
    if t.outcome in (Outcome.DONE, Outcome.COMPLETE):
        return {"success"}
    return {"failure"}


def event_agrees(record: Message | None, x: Exchange) -> Finding:
    """A `stream_ended` record says what the client saw: the result, the status, and, for
    a stream the client read to its end, the chunks it got."""
    results = expected_results(x)
    t = x.transcript
    want = f"stream_ended: {' or '.join(sorted(results))}"
    if record is None:
        return Finding(False, want, f"no stream_ended for {x.scenario.model}")
    result, status, chunks = record.get("result"), record.get("status"), record.get("chunks")
    ok = result in results
    if t.status is not None and t.transport is not Transport.LEFT:
        ok = ok and status == t.status
    # Chunks are the OpenAI dialect's; `/api/chat` reshapes them into fewer events.
    openai = "messages" in t.request
    if openai and t.streamed and t.transport not in (Transport.LEFT, Transport.TIMED_OUT):
        ok = ok and chunks == chunks_received(x)
    observed = (
        f"{result}, status {status}, {chunks} chunks, error class {record.get('error_class')} "
        f"(the client: {t.outcome.value}, status {t.status}, {chunks_received(x)} chunks; "
        f"{x.scenario.model})"
    )
    return Finding(ok, want, observed)


def events_agree(messages: Iterable[Message], exchanges: Iterable[Exchange]) -> Finding:
    """Every exchange's `stream_ended` agrees with what its client saw."""
    ended = ended_events(messages)
    findings = [event_agrees(ended.get(x.scenario.model), x) for x in exchanges]
    wrong = [f for f in findings if not f.ok]
    observed = f"{len(findings)} streams, {len(findings) - len(wrong)} agree"
    if wrong:
        observed += "; " + "; ".join(f.observed for f in wrong[:3])
    return Finding(not wrong, "every stream_ended says what its client saw", observed)


def no_secret(texts: Iterable[str], secrets: Iterable[str]) -> Finding:
    """None of `secrets` appears in any message."""
    secrets = [s for s in secrets if s]
    texts = list(texts)
    leaks = sum(1 for text in texts if any(secret in text for secret in secrets))
    return Finding(
        leaks == 0,
        "no key appears in any message",
        f"{len(texts)} messages checked for {len(secrets)} keys: "
        + (f"{leaks} contain one" if leaks else "none found"),
    )
