"""What the proxy decides for each upstream event, without sockets (proxy.relay)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamproof.proxy.relay import DONE_EVENT, Fail, Finish, Forward, Step, StreamCheck


def chunk(content: str | None = "hi", finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return json.dumps({"object": "chat.completion.chunk", "choices": [choice]}).encode()


def sse(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + payload + b"\n\n" for payload in payloads)


def error_of(step: Step) -> dict[str, Any]:
    assert isinstance(step, Fail)
    encoded = step.encode()
    assert encoded.startswith(b"data: ")
    assert encoded.endswith(b"\n\n")
    error: dict[str, Any] = json.loads(encoded[len(b"data: ") :])["error"]
    return error


def test_stream_check_forwards_payload_bytes_unchanged():
    payload = b'{"choices":[{"delta":{"content":"\xc3\xa9"}, "finish_reason":null}]}'
    check = StreamCheck("fake")
    assert check.feed(sse(payload)) == [Forward(payload)]
    assert Forward(payload).encode() == b"data: " + payload + b"\n\n"


def test_stream_check_multi_line_payload_is_re_emitted_line_by_line():
    step = Forward(b'{\n"choices": []\n}')
    assert step.encode() == b'data: {\ndata: "choices": []\ndata: }\n\n'


def test_stream_check_done_is_a_clean_finish_and_ends_the_check():
    check = StreamCheck("fake")
    steps = check.feed(sse(chunk(), chunk(None, "stop"), b"[DONE]", chunk("after")))
    assert steps == [Forward(chunk()), Forward(chunk(None, "stop")), Finish()]
    assert steps[-1].encode() == DONE_EVENT
    assert check.over
    assert check.feed(sse(chunk())) == []


def test_stream_check_finish_reason_without_done_ends_cleanly():
    check = StreamCheck("fake")
    check.feed(sse(chunk(), chunk(None, "stop")))
    assert check.end_of_stream() == [Finish()]


@pytest.mark.parametrize(
    "tail", [b"", b'data: {"choices": [', b"data: x\n"], ids=["clean", "half-line", "no-blank"]
)
def test_stream_check_end_without_finish_is_a_truncation(tail):
    check = StreamCheck("fake")
    check.feed(sse(chunk(), chunk()) + tail)
    (step,) = check.end_of_stream()
    assert isinstance(step, Fail)
    assert error_of(step) == {
        "message": step.message,
        "type": "upstream_error",
        "code": "upstream_truncated",
    }
    assert step.message.startswith("fake: ")
    assert ("unterminated" in step.message) == bool(tail)


@pytest.mark.parametrize(
    "payload", [b"{not json", b"[1, 2]", b"\xff\xfe"], ids=["invalid", "array", "not-utf8"]
)
def test_stream_check_malformed_payload_fails_once(payload):
    check = StreamCheck("fake")
    steps = check.feed(sse(chunk(), payload, chunk()))
    assert steps[0] == Forward(chunk())
    assert len(steps) == 2
    assert isinstance(steps[1], Fail)
    assert steps[1].code == "upstream_malformed"
    assert check.over


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(sse(b'{"error": {"message": "overloaded", "code": "busy"}}'), id="openai"),
        pytest.param(
            sse(b'{"object": "error", "message": "overloaded", "code": "busy"}'), id="obj"
        ),
        pytest.param(b'event: error\ndata: {"message": "overloaded", "code": "busy"}\n\n', id="ev"),
    ],
)
def test_stream_check_upstream_error_shapes_become_one_error(events):
    check = StreamCheck("fake")
    steps = check.feed(sse(chunk()) + events + sse(chunk(), b"[DONE]"))
    assert steps[0] == Forward(chunk())
    assert len(steps) == 2
    assert error_of(steps[1]) == {
        "message": "fake: overloaded",
        "type": "upstream_error",
        "code": "busy",
    }


def test_stream_check_upstream_error_text_is_redacted():
    check = StreamCheck("fake", secrets=("sk-secret",))
    (step,) = check.feed(sse(b'{"error": {"message": "bad key sk-secret"}}'))
    assert error_of(step)["message"] == "fake: bad key [redacted]"


def test_stream_check_finish_reason_error_becomes_the_one_error_event():
    check = StreamCheck("fake")
    steps = check.feed(sse(chunk(None, "error")))
    assert len(steps) == 1
    assert isinstance(steps[0], Fail)
    assert steps[0].code == "upstream_error"


def test_stream_check_skips_an_event_with_empty_data():
    check = StreamCheck("fake")
    assert check.feed(b"data:\n\n") == []
    assert check.feed(sse(chunk())) == [Forward(chunk())]
    assert not check.over


def test_stream_check_fail_after_the_end_is_recorded_once():
    check = StreamCheck("fake")
    check.feed(sse(chunk()))
    failure = check.fail("upstream_reset", "fake: connection reset mid-stream")
    assert check.outcome == failure
    assert error_of(failure)["code"] == "upstream_reset"
    assert b"[DONE]" not in failure.encode()


def test_stream_check_usage_chunk_is_not_forwarded_when_the_client_did_not_ask():
    usage = b'{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}'
    check = StreamCheck("fake")
    steps = check.feed(sse(chunk(None, "stop"), usage))
    assert steps == [Forward(chunk(None, "stop"))]
    assert check.end_of_stream() == [Finish()]
    assert check.usage().completion == 1
    assert not check.usage().estimated


# The check looks into a parsed chunk for errors and finish reasons only when its bytes say
# there may be one; these are written so that only the parsed value tells.
@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b'{"\\u0065rror": {"message": "escaped key"}}', True),
        (b'{"object": "\\u0065rror", "message": "escaped value"}', True),
        (b'{"choices": [{"delta": {}, "finish_reason": "\\u0065rror"}]}', True),
        (b'{"error" : {"message": "spaced"}}', True),
        (b'{"choices": [{"delta": {"content": "\\"error\\""}, "finish_reason": null}]}', False),
        (b'{"error": null, "choices": [{"delta": {"content": "x"}}]}', False),
    ],
)
def test_stream_check_errors_found_however_they_are_written(payload, error):
    check = StreamCheck("fake")
    (step,) = check.feed(sse(payload))
    assert isinstance(step, Fail) is error


@pytest.mark.parametrize(
    ("payload", "finished"),
    [
        (b'{"choices":[{"delta":{},"finish_reason":"stop"}]}', True),
        (b'{"choices":[{"delta":{},"finish_reason" : "stop"}]}', True),
        (b'{"choices":[{"delta":{},"finish_\\u0072eason":"stop"}]}', True),
        (b'{"choices":[{"delta":{},"finish_reason": null}]}', False),
        (
            b'{"choices":[{"delta":{"content":"\\"finish_reason\\":null"},"finish_reason":null}]}',
            False,
        ),
        (
            b'{"choices":[{"delta":{"content":"\\"finish_reason\\":null"},'
            b'"finish_reason":"length"}]}',
            True,
        ),
    ],
)
def test_stream_check_finish_reasons_found_however_they_are_written(payload, finished):
    check = StreamCheck("fake")
    (step,) = check.feed(sse(payload))
    assert isinstance(step, Forward)
    assert check.finished is finished
