"""Group 5 — recovery, continued: the seed dashboard's `/api/chat` dialect.

`POST /api/chat` with `{"message", "stream": true, "model"}` answers `data: {"chunk": ...}`
events and `data: [DONE]` (the seed's "Expected format"), and keeps the same rules as the
OpenAI dialect: a failure after the commit point is one error event without `[DONE]`, a
failure before it a real error status. A target that does not offer it has these skipped.
"""

from __future__ import annotations

from streamproof.harness import Judge, SystemUnderTest, case, checks
from streamproof.harness.upstream import ResetAfter, Scenario, Status

SEED = "the seed's /api/chat format, with docs/design.md's commit point"


@case(
    "5.34",
    "/api/chat streams the answer as chunk events, then [DONE]",
    requirement='Expected format: data: {"chunk": "Hello"}, data: {"chunk": " world"}, '
    "data: [DONE].",
    source=SEED,
    expected="the whole answer in {'chunk': ...} events, then one [DONE]",
)
def test_api_chat_stream(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("api-chat")
    x = sut.simple_chat(Scenario(chunks=8))
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.is_event_stream(x.transcript),
        checks.simple_chunks_intact(x),
    )


@case(
    "5.35",
    "/api/chat: a failure mid-stream is one error event, without [DONE]",
    requirement="After the commit point an upstream failure becomes exactly one in-band "
    "error event and the stream ends without [DONE]; nothing is replayed.",
    source=SEED,
    expected="a prefix of the answer, one error event last, no [DONE]",
)
def test_api_chat_failure_mid_stream(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("api-chat")
    x = sut.simple_chat(Scenario(chunks=8, faults=(ResetAfter(4),)))
    judge.saw(x)
    judge.check(
        checks.simple_nothing_replayed(x),
        checks.openai_error_event(x.transcript),
        checks.not_dressed_up(x),
    )


@case(
    "5.36",
    "/api/chat: persistent upstream errors give a real error status",
    requirement="If every attempt fails before the commit point, the client gets a real "
    "HTTP error status with a JSON error body, never a 200.",
    source=SEED,
    expected="a 5xx status with a JSON error body",
)
def test_api_chat_error_status(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("api-chat")
    x = sut.simple_chat(Scenario(chunks=4, faults=(Status(500),)))
    judge.saw(x)
    judge.check(checks.http_error(x.transcript, set(range(500, 600))))
