"""Group 1 — SSE framing: what every streamed answer must look like on the wire."""

from __future__ import annotations

from harness import Judge, Strength, SystemUnderTest, case, checks
from harness.upstream import Scenario, Slow

OPENAI = "OpenAI chat completions streaming contract"
POLICY = "streamproof policy (DESIGN.md)"


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
    judge.attach("exchange", x.describe())
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
    judge.attach("exchange", x.describe())
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
    judge.attach("exchange", x.describe())
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
    judge.attach("exchange", x.describe())
    judge.check(checks.delivered_incrementally(x), checks.content_intact(x))
