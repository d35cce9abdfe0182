"""Checks of the proxy's own framing: headers, payload shapes, boundaries, pacing."""

from __future__ import annotations

from streamproof.fake_providers import Attempt
from streamproof.harness.checks._words import _ending, _first
from streamproof.harness.sut import Exchange
from streamproof.harness.transcript import DONE, Transcript
from streamproof.harness.verdict import Finding


def status_is(t: Transcript, expected: int) -> Finding:
    return Finding(t.status == expected, f"status {expected}", f"status {t.status}")


def is_event_stream(t: Transcript) -> Finding:
    return content_type_is(t, "text/event-stream")


def payloads_are_json_objects(t: Transcript) -> Finding:
    bad = [
        timed.event.data[:60]
        for timed, payload in t.payloads
        if payload is not DONE and not isinstance(payload, dict)
    ]
    observed = f"{len(bad)} of {len(t.payloads)} data payloads are not JSON objects"
    return Finding(not bad, "each data payload is one JSON object", observed + _first(bad))


def ends_with_single_done(t: Transcript) -> Finding:
    datas = [timed.event.data for timed in t.events]
    last = datas[-1] if datas else "(no events)"
    ok = t.done_count == 1 and last == "[DONE]" and t.transport.value == "eof"
    observed = f"{t.done_count} [DONE], last event {last[:40]!r}, outcome {t.outcome.value}"
    return Finding(ok, "exactly one [DONE], last", observed)


def content_type_is(t: Transcript, expected: str) -> Finding:
    kind = t.headers.get("content-type", "")
    ok = kind.split(";")[0].strip().lower() == expected
    return Finding(ok, f"content-type {expected}", f"content-type {kind or '(none)'}")


def delivered_incrementally(x: Exchange) -> Finding:
    """The first content reached the client before the upstream had written its last byte."""
    streamed, content = x.streamed, x.transcript.content_events()
    if streamed is None or streamed.last_write_at is None or not content:
        return Finding(False, "content forwarded as it arrives", f"nothing streamed{_ending(x)}")
    lead = streamed.last_write_at - content[0].at
    return Finding(
        lead > 0,
        "content forwarded as it arrives",
        f"first content {abs(lead) * 1000:.0f} ms {'before' if lead > 0 else 'after'} "
        "the upstream's last write",
    )


def no_content_encoding(t: Transcript) -> Finding:
    encoding = t.headers.get("content-encoding", "identity")
    return Finding(encoding == "identity", "no content encoding", f"content-encoding {encoding}")


def header_absent(t: Transcript, name: str) -> Finding:
    value = t.headers.get(name.lower())
    return Finding(value is None, f"no {name} header", f"{name}: {value or '(none)'}")


def charset_is_utf8(t: Transcript) -> Finding:
    """Event streams are always UTF-8; a charset parameter, if any, must say so."""
    kind = t.headers.get("content-type", "")
    params = dict(part.strip().lower().split("=", 1) for part in kind.split(";")[1:] if "=" in part)
    charset = params.get("charset", "").strip('"')
    ok = charset in ("", "utf-8", "utf8")
    return Finding(ok, "charset absent or utf-8", f"content-type {kind or '(none)'}")


def chunk_objects(t: Transcript) -> Finding:
    """Every chat chunk says `"object": "chat.completion.chunk"`."""
    objects = [str(chunk.get("object")) for _, chunk in t.chat_chunks]
    wrong = [o for o in objects if o != "chat.completion.chunk"]
    observed = f"{len(wrong)} of {len(objects)} chunks with another object{_first(wrong)}"
    return Finding(bool(objects) and not wrong, "object chat.completion.chunk", observed)


def metadata_preserved(x: Exchange) -> Finding:
    """Every chunk keeps the upstream's `id`, `model` and `created`."""
    want = x.upstream_metadata
    if want is None:
        return Finding(False, "chunk metadata preserved", f"nothing streamed{_ending(x)}")
    changed = sorted(
        {
            f"{key} {chunk.get(key)!r} (upstream {value!r})"
            for _, chunk in x.transcript.chat_chunks
            for key, value in want.items()
            if chunk.get(key) != value
        }
    )
    observed = f"{len(x.transcript.chat_chunks)} chunks" + (
        f"; changed: {'; '.join(changed[:3])}" if changed else ", id/model/created as sent"
    )
    return Finding(not changed, "chunk metadata preserved", observed)


def paced_like_upstream(x: Exchange, tolerance: float) -> Finding:
    """Each content event reached the client within `tolerance` s of the upstream's write."""
    streamed = x.streamed
    client = x.transcript.content_events()
    if streamed is None or not client:
        return Finding(False, "events forwarded promptly", f"nothing streamed{_ending(x)}")
    written = event_write_times(streamed)
    content_frames = [t for t, delta in zip(written, streamed.frame_deltas, strict=False) if delta]
    lags = [c.at - w for c, w in zip(client, content_frames, strict=False)]
    worst = max(lags)
    return Finding(
        worst <= tolerance,
        f"each event forwarded within {tolerance * 1000:.0f} ms",
        f"worst lag {worst * 1000:.0f} ms over {len(lags)} events",
    )


def event_write_times(attempt: Attempt) -> list[float]:
    """When each whole event of an attempt was written (the write that completed it)."""
    times, done, frames = [], 0, iter(attempt.frame_ends)
    end = next(frames, None)
    for at, size in attempt.writes:
        done += size
        while end is not None and end <= done:
            times.append(at)
            end = next(frames, None)
    return times


def ends_on_event_boundary(t: Transcript) -> Finding:
    """The body does not end inside an event that a client would never dispatch (a body that
    is not an event stream, such as a JSON error, has no events to end inside)."""
    kind = t.headers.get("content-type", "").lower()
    if t.status != 200 or not kind.startswith("text/event-stream"):
        observed = f"status {t.status}, {kind or 'no content type'}: not an event stream"
        return Finding(True, "ends on an event boundary", observed)
    return Finding(
        not t.unterminated_tail,
        "ends on an event boundary",
        "unterminated final event" if t.unterminated_tail else "every event terminated",
    )


def header_is(t: Transcript, name: str, expected: str) -> Finding:
    value = t.headers.get(name.lower())
    ok = value is not None and value.lower().replace(" ", "") == expected.lower()
    return Finding(ok, f"{name}: {expected}", f"{name}: {value if value is not None else '(none)'}")
