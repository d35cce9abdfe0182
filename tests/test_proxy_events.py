"""What the proxy decides for each event of a Messages or Responses stream, without sockets
(proxy.events): the fake provider's own answers, split at every byte, come out event for
event as they went in, and every broken stream ends with one error event of its API's shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamproof.fake_providers import messages, responses
from streamproof.fake_providers.scenario import Scenario
from streamproof.harness.sse import SSEDecoder
from streamproof.proxy.events import (
    MESSAGE_STOP,
    Ended,
    Event,
    EventCheck,
    EventFail,
    MessagesCheck,
    ResponsesCheck,
)
from streamproof.proxy.relay import Fail, Finish, Step

REQUEST = {"model": "m", "stream": True, "max_tokens": 64, "input": "hi"}
REQUEST["messages"] = [{"role": "user", "content": "hi"}]
SCENARIOS = ["chunks-4", "chunks-3.reasoning-2.tools-3", "chunks-0.tools-2"]
STREAMS = [
    *((api, tokens) for api in ("messages", "responses") for tokens in SCENARIOS),
    ("messages", "chunks-5.ping-2"),  # ping events are the Messages API's
]


def upstream(api: str, tokens: str) -> bytes:
    """The fake's body for a streamed answer to `tokens`, as it writes it."""
    scenario = Scenario.parse(f"streamproof.{tokens}")
    module = messages if api == "messages" else responses
    return b"".join(frame.data for frame in module.answer(REQUEST, scenario, 1).frames)


def check_for(api: str, secrets: tuple[str, ...] = ()) -> EventCheck:
    return MessagesCheck("fake", secrets) if api == "messages" else ResponsesCheck("fake", secrets)


def relay(check: EventCheck, body: bytes, size: int) -> tuple[bytes, list[Step]]:
    """Feed `body` in pieces of `size` bytes, then its end; the bytes the client gets."""
    steps: list[Step] = []
    for start in range(0, len(body), size):
        steps += check.feed(body[start : start + size])
    if not check.over:
        steps += check.end_of_stream()
    return b"".join(step.encode() for step in steps), steps


def events(body: bytes) -> list[tuple[str, Any]]:
    return [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(body)]


@pytest.mark.parametrize(("api", "tokens"), STREAMS)
@pytest.mark.parametrize("size", [1, 2, 7, 64, 1 << 20])
def test_a_whole_stream_comes_out_event_for_event_at_any_split(api, tokens, size):
    body = upstream(api, tokens)
    check = check_for(api)
    got, steps = relay(check, body, size)
    assert events(got) == events(body)
    assert isinstance(steps[-1], Ended)
    assert check.outcome == steps[-1]
    usage = check.usage()
    assert not usage.estimated
    final = events(body)[-1][1]
    reported = final["response"]["usage"] if api == "responses" else None
    if reported is not None:
        assert (usage.prompt, usage.completion) == (
            reported["input_tokens"],
            reported["output_tokens"],
        )


def test_cumulative_output_tokens_are_the_last_report_never_a_sum():
    body = (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        b'{"input_tokens":12,"output_tokens":1}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":'
        b'{"output_tokens":5}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        b'"end_turn"},"usage":{"output_tokens":9}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    check = MessagesCheck("fake")
    relay(check, body, 1 << 20)
    usage = check.usage()
    assert (usage.prompt, usage.completion, usage.total, usage.estimated) == (12, 9, 21, False)


def test_an_event_line_left_out_upstream_is_written_from_the_data_type():
    body = b'data: {"type":"message_start","message":{}}\n\n'
    (step,) = MessagesCheck("fake").feed(body)
    assert isinstance(step, Event)
    assert step.encode() == b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'


def test_ping_is_forwarded_but_is_not_content():
    check = MessagesCheck("fake")
    (step,) = check.feed(b'event: ping\ndata: {"type": "ping"}\n\n')
    assert step.encode() == b'event: ping\ndata: {"type": "ping"}\n\n'
    assert check.forwarded == 0  # the proxy does not commit to a stream on a ping


@pytest.mark.parametrize("api", ["messages", "responses"])
@pytest.mark.parametrize("inside", [1, 4, -3])
def test_a_stream_cut_short_ends_with_one_error_event_and_no_end_event(api, inside):
    """Cut 10 bytes into the event `inside` (from the end when negative: before the
    Messages stream's stop_reason)."""
    body = upstream(api, "chunks-6")
    starts = [0, *(i + 2 for i in range(len(body)) if body.startswith(b"\n\n", i))][:-1]
    check = check_for(api)
    got, steps = relay(check, body[: starts[inside] + 10], 5)
    assert isinstance(steps[-1], EventFail)
    received = events(got)
    names = [name for name, _ in received]
    assert names.count("error") == 1
    assert names[-1] == "error"
    assert not {"message_stop", "response.completed"} & set(names)
    error = received[-1][1]
    if api == "messages":
        assert error == {
            "type": "error",
            "error": {"type": "api_error", "message": error["error"]["message"]},
        }
        assert "no message_stop" in error["error"]["message"]
    else:
        assert set(error) == {"type", "code", "message", "param", "sequence_number"}
        numbers = [d["sequence_number"] for _, d in received]
        assert numbers == list(range(len(numbers)))  # the error's follows the last relayed


def test_a_messages_stream_with_its_stop_reason_but_no_message_stop_is_ended_by_the_proxy():
    body = upstream("messages", "chunks-3")
    assert body.endswith(MESSAGE_STOP)
    check = MessagesCheck("fake")
    got, steps = relay(check, body.removesuffix(MESSAGE_STOP), 9)
    assert steps[-1] == Ended(MESSAGE_STOP)
    assert got == body


def test_an_upstream_error_event_keeps_its_type_and_loses_the_key():
    key = "sk-secret-42"
    check = MessagesCheck("fake", (key,))
    head = upstream("messages", "chunks-3").split(b"\n\n")[0] + b"\n\n"
    error = {"type": "error", "error": {"type": "overloaded_error", "message": f"bad {key}"}}
    body = head + b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"
    got, steps = relay(check, body, 1 << 20)
    assert isinstance(steps[-1], Fail)
    last = events(got)[-1]
    assert last[0] == "error"
    assert last[1]["error"]["type"] == "overloaded_error"
    assert key.encode() not in got
    assert "[redacted]" in last[1]["error"]["message"]


def test_response_failed_is_forwarded_as_the_one_error_event_without_the_key():
    key = "sk-secret-42"
    body = upstream("responses", "chunks-3").split(b"\n\n")
    failed = {
        "type": "response.failed",
        "sequence_number": 2,
        "response": {"status": "failed", "error": {"code": "server_error", "message": key}},
    }
    head = b"\n\n".join(body[:2]) + b"\n\n"
    stream = head + b"event: response.failed\ndata: " + json.dumps(failed).encode() + b"\n\n"
    check = ResponsesCheck("fake", (key,))
    got, steps = relay(check, stream, 1 << 20)
    assert isinstance(steps[-1], Fail)
    assert not isinstance(steps[-1], Finish)
    name, data = events(got)[-1]
    assert name == "response.failed"
    assert data["response"]["error"]["message"] == "[redacted]"
    assert check.feed(b'event: response.completed\ndata: {"type":"response.completed"}\n\n') == []


@pytest.mark.parametrize("api", ["messages", "responses"])
def test_a_malformed_event_is_one_error_event(api):
    check = check_for(api)
    head = upstream(api, "chunks-2").split(b"\n\n")[0] + b"\n\n"
    got, steps = relay(check, head + b"event: x\ndata: {not json\n\n", 1 << 20)
    assert isinstance(steps[-1], Fail)
    assert steps[-1].code == "upstream_malformed"
    assert [name for name, _ in events(got)][-1] == "error"


def test_a_responses_text_is_estimated_when_no_usage_came():
    body = (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"delta":"hello there"}\n\n'
    )
    check = ResponsesCheck("fake", prompt=[{"role": "user", "content": "hi"}])
    relay(check, body, 1 << 20)
    usage = check.usage()
    assert usage.estimated
    assert usage.completion == 2
