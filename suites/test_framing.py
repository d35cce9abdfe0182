"""Group 1 — SSE framing: what every streamed answer must look like on the wire."""

from __future__ import annotations

from streamproof.harness import Judge, Strength, SystemUnderTest, case, checks
from streamproof.harness.upstream import ResetAfter, Scenario, Slow

OPENAI = "OpenAI chat completions streaming contract"
POLICY = "streamproof policy (docs/design.md)"


@case(
    "1.1",
    "A streamed answer is served as text/event-stream",
    requirement="Event streams are always served as text/event-stream (WHATWG HTML §9.2.5); "
    "OpenAI-compatible clients check it before parsing.",
    source="WHATWG HTML §9.2.5",
    expected="Content-Type: text/event-stream",
)
def test_streamed_answer_is_event_stream(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=4))
    judge.saw(x)
    judge.check(checks.status_is(x.transcript, 200), checks.is_event_stream(x.transcript))


@case(
    "1.2",
    "Every data payload is one JSON object",
    requirement="Each `data:` line of a chat completion stream carries one JSON chunk object, "
    "except the final `[DONE]` sentinel.",
    source=OPENAI,
    expected="every payload other than [DONE] parses as a JSON object",
)
def test_payloads_are_json_objects(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=12))
    judge.saw(x)
    judge.check(checks.payloads_are_json_objects(x.transcript))


@case(
    "1.3",
    "A clean answer ends with exactly one [DONE], and nothing after it",
    requirement="The stream is terminated by a `data: [DONE]` message.",
    source=OPENAI,
    expected="one [DONE], as the last event, then the body ends",
)
def test_single_final_done(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=12))
    judge.saw(x)
    judge.check(checks.ends_with_single_done(x.transcript))


@case(
    "1.4",
    "The event stream is marked not cacheable",
    requirement="Intermediaries must not cache or hold back an event stream: "
    "`Cache-Control: no-cache`.",
    source=POLICY,
    expected="Cache-Control: no-cache",
    strength=Strength.SHOULD,
)
def test_event_stream_not_cacheable(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=2))
    judge.check(checks.header_is(x.transcript, "cache-control", "no-cache"))


@case(
    "1.5",
    "The event stream is not compressed",
    requirement="Compression buffers a stream until a block fills; an event stream is sent "
    "without Content-Encoding, even when the client accepts gzip.",
    source=POLICY,
    expected="no Content-Encoding on text/event-stream",
    strength=Strength.SHOULD,
)
def test_event_stream_not_compressed(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=40))
    judge.check(checks.no_content_encoding(x.transcript))


@case(
    "1.6",
    "Chunks are forwarded as they arrive, not buffered",
    requirement="Each chunk is forwarded as it arrives; a proxy that buffers the answer "
    "defeats streaming.",
    source=POLICY,
    expected="the first content reaches the client before the upstream has sent its last chunk",
)
def test_chunks_forwarded_as_they_arrive(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=6, faults=(Slow(40),)))
    judge.saw(x)
    judge.check(checks.delivered_incrementally(x), checks.content_intact(x))


@case(
    "1.7",
    "The event stream has no Content-Length",
    requirement="A stream's length is not known when it starts; a Content-Length on an event "
    "stream means the proxy held the whole answer back.",
    source=POLICY,
    expected="no Content-Length header on text/event-stream",
)
def test_event_stream_has_no_content_length(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=8))
    judge.check(checks.header_absent(x.transcript, "content-length"))


@case(
    "1.8",
    "The event stream asks reverse proxies not to buffer it",
    requirement="`X-Accel-Buffering: no` tells nginx-style reverse proxies in front of the "
    "proxy to pass each chunk on at once.",
    source=POLICY,
    expected="X-Accel-Buffering: no",
    strength=Strength.SHOULD,
)
def test_event_stream_not_buffered_downstream(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=2))
    judge.check(checks.header_is(x.transcript, "x-accel-buffering", "no"))


@case(
    "1.9",
    "The event stream is UTF-8",
    requirement="Event streams are always decoded as UTF-8 (WHATWG HTML §9.2.5); a charset "
    "parameter, if present, must not say otherwise.",
    source="WHATWG HTML §9.2.5",
    expected="no charset, or charset=utf-8",
)
def test_event_stream_is_utf8(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=2))
    judge.check(checks.charset_is_utf8(x.transcript))


@case(
    "1.10",
    "Every chunk is a chat.completion.chunk",
    requirement='Each streamed chunk object has `"object": "chat.completion.chunk"`.',
    source=OPENAI,
    expected="every JSON payload has object chat.completion.chunk",
)
def test_chunks_are_chat_completion_chunks(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=6))
    judge.check(checks.chunk_objects(x.transcript))


@case(
    "1.11",
    "Chunk metadata is preserved",
    requirement="Each chunk carries the completion's `id`, `created` and `model`; all chunks "
    "of one completion share them. A relay keeps what the provider sent.",
    source=OPENAI,
    expected="id, model and created of every chunk as the upstream sent them",
    strength=Strength.SHOULD,
)
def test_chunk_metadata_preserved(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=6))
    judge.saw(x)
    judge.check(checks.metadata_preserved(x))


@case(
    "1.12",
    "Each event follows the upstream's pacing",
    requirement="Each chunk is forwarded as it arrives: no batching, no flushing on a timer.",
    source=POLICY,
    expected="every content event reaches the client within 100 ms of the upstream's write",
)
def test_events_follow_upstream_pacing(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=6, faults=(Slow(60),)))
    judge.saw(x)
    judge.check(checks.paced_like_upstream(x, tolerance=0.1), checks.content_intact(x))


@case(
    "1.13",
    "A clean stream ends on an event boundary",
    requirement="An event is dispatched only at a blank line; a final event without one is "
    "never dispatched (WHATWG HTML §9.2.6).",
    source="WHATWG HTML §9.2.6",
    expected="the body ends with a terminated event",
)
def test_clean_stream_ends_on_event_boundary(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=4))
    judge.check(checks.ends_on_event_boundary(x.transcript))


@case(
    "1.14",
    "A broken stream ends on an event boundary",
    requirement="An event is dispatched only at a blank line: an error event that is not "
    "terminated is never seen by the client (WHATWG HTML §9.2.6).",
    source="WHATWG HTML §9.2.6",
    expected="the body ends with a terminated event after an upstream reset",
)
def test_broken_stream_ends_on_event_boundary(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=6, faults=(ResetAfter(3),)))
    judge.saw(x)
    judge.check(checks.ends_on_event_boundary(x.transcript))
