"""Group 7 — API surface: non-streaming answers and bad requests."""

from __future__ import annotations

from harness import Judge, SystemUnderTest, case, checks
from harness.upstream import ResetBeforeHeaders, Scenario

POLICY = "streamproof policy (DESIGN.md)"


@case(
    "7.1",
    "A non-streaming answer carries the whole content",
    requirement="Without `stream`, the answer is one chat.completion object whose message "
    "holds the content.",
    source="OpenAI chat completions contract",
    expected="status 200, JSON, choices[0].message.content equals the upstream's",
)
def test_non_streaming_answer(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=8), stream=False)
    judge.attach("exchange", x.describe())
    judge.check(checks.status_is(x.transcript, 200), checks.message_content_intact(x))


@case(
    "7.2",
    "A non-streaming request is retried after a reset",
    requirement="Nothing reached the client before the answer is complete, so a reset "
    "before the response headers is retried.",
    source=POLICY,
    expected="status 200 with the whole content after a second attempt",
)
def test_non_streaming_retried(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=8, faults=(ResetBeforeHeaders(),), first=1), stream=False)
    judge.attach("exchange", x.describe())
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.message_content_intact(x),
        checks.attempts_at_least(x, 2),
    )


@case(
    "7.3",
    "A request body that is not JSON gets a 4xx JSON error",
    requirement="A bad request to the proxy is a 4xx JSON error, never a 500 or a hang.",
    source=POLICY,
    expected="status 400-499 with {'error': {'message': ...}}",
)
def test_invalid_json_request(sut: SystemUnderTest, judge: Judge) -> None:
    t = sut.client.send(
        "POST",
        "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    judge.check(checks.http_error(t, set(range(400, 500))))


@case(
    "7.4",
    "A request without messages gets a 4xx JSON error",
    requirement="A bad request to the proxy is a 4xx JSON error, never a 500 or a hang.",
    source=POLICY,
    expected="status 400-499 with {'error': {'message': ...}}",
)
def test_request_without_messages(sut: SystemUnderTest, judge: Judge) -> None:
    t = sut.client.send("POST", "/v1/chat/completions", json={"model": "streamproof"})
    judge.check(checks.http_error(t, set(range(400, 500))))
