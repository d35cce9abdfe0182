"""Group 7 — API surface: non-streaming answers and bad requests."""

from __future__ import annotations

import pytest

from streamproof.harness import Judge, Strength, SystemUnderTest, case, checks
from streamproof.harness.upstream import ResetBeforeHeaders, Scenario, Status

POLICY = "streamproof policy (docs/design.md)"


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
    judge.saw(x)
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
    judge.saw(x)
    if "retries" not in sut.offers and len(x.attempts) == 1:
        judge.offered("retries", *checks.failed_honestly(x))
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.message_content_intact(x),
        checks.attempts_at_least(x, 2),
    )


NOT_JSON = [
    pytest.param(b'{"model": "x", "messages": [', id="cut-short"),
    # Deeper than CPython's parser recurses: it raises RecursionError, not ValueError.
    pytest.param(b"[" * 100_000, id="nested-100k-deep"),
    pytest.param(b'{"model": "\xff\xfe", "messages": []}', id="invalid-utf8"),
]


@case(
    "7.3",
    "A request body that is not JSON gets a 4xx JSON error",
    requirement="A bad request to the proxy is a 4xx JSON error, never a 500 or a hang.",
    source=POLICY,
    expected="status 400-499 with {'error': {'message': ...}}",
)
@pytest.mark.parametrize("body", NOT_JSON)
def test_invalid_json_request(sut: SystemUnderTest, judge: Judge, body: bytes) -> None:
    x = sut.send(
        "POST",
        "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    judge.saw(x)
    judge.check(checks.http_error(x.transcript, set(range(400, 500))))


@case(
    "7.4",
    "A request without messages gets a 4xx JSON error",
    requirement="A bad request to the proxy is a 4xx JSON error, never a 500 or a hang.",
    source=POLICY,
    expected="status 400-499 with {'error': {'message': ...}}",
)
def test_request_without_messages(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.send("POST", "/v1/chat/completions", json={"model": "streamproof"})
    judge.saw(x)
    judge.check(checks.http_error(x.transcript, set(range(400, 500))))


@case(
    "7.5",
    "A non-streaming answer is served as JSON",
    requirement="Without `stream`, the answer is one JSON document: `application/json`.",
    source="OpenAI chat completions contract",
    expected="Content-Type: application/json",
)
def test_non_streaming_answer_is_json(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=3), stream=False)
    judge.saw(x)
    judge.check(checks.content_type_is(x.transcript, "application/json"))


@case(
    "7.6",
    "An upstream 400 reaches the client as a 4xx, not a 200",
    requirement="Read the upstream status before committing: a plain 4xx must not become a "
    "200 with an error event inside, or clients retry wrongly.",
    source="streamproof policy (docs/failures.md: errors)",
    expected="status 400-499 with a JSON error body that keeps the upstream's message, type "
    "and code, for a streaming request",
)
def test_upstream_400_passed_on(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=3, faults=(Status(400),)))
    judge.saw(x)
    judge.check(
        checks.http_error(x.transcript, set(range(400, 500))), checks.upstream_error_kept(x)
    )


@case(
    "7.7",
    "An upstream 400 is not retried",
    requirement="A 4xx other than 429 says the request itself is wrong; asking again gives the "
    "same answer and costs time.",
    source=POLICY,
    expected="one upstream attempt",
    strength=Strength.SHOULD,
)
def test_upstream_400_not_retried(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(Scenario(chunks=3, faults=(Status(400),)))
    judge.saw(x)
    judge.check(checks.attempts_exactly(x, 1))
