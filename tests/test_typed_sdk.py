"""The harness reads typed streams as the official SDKs do: proof against the SDKs themselves.

`harness.typed` says what the `anthropic` SDK makes of a Messages stream and what the
`openai` SDK makes of a Responses stream: whether it raises, what it assembles (text,
thinking and signatures, tool input, the stop reason), the usage it reports, and whether it
read the end event. Groups 9 and 10 judge targets by that model, so here the same bytes go
to both: the real SDK reads them from a mock transport (no socket, no network), the
harness from a transcript of them, and the two must agree.

The bodies are the fake provider's answers, clean and with every fault that applies on the
wire, and what proxies make of them: `event:` lines dropped, an end event invented after a
break, errors in every shape, pings dropped, usage summed, a signature lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from streamproof.fake_providers.apis import APIS
from streamproof.fake_providers.chat import DEFAULT_MESSAGES
from streamproof.fake_providers.plan import MESSAGES, RESPONSES, Ending
from streamproof.fake_providers.scenario import Scenario
from streamproof.harness.sse import Event, SSEDecoder
from streamproof.harness.transcript import Arrival, Outcome, Transport
from streamproof.harness.typed import PATHS, TRANSCRIPTS, Reading, TypedTranscript

PROMPT: Any = list(DEFAULT_MESSAGES)
ENDPOINTS = {MESSAGES: "messages", RESPONSES: "responses"}


def _answer(api: str, tokens: str) -> tuple[list[bytes], bool]:
    """The fake provider's writes for a scenario, and whether it resets after them."""
    scenario = Scenario.parse(f"streamproof.{tokens}")
    body = {"model": scenario.model, "stream": True, "max_tokens": 64, "messages": PROMPT}
    if api == RESPONSES:
        body = {"model": scenario.model, "stream": True, "input": PROMPT}
    plan = APIS[ENDPOINTS[api]].answer(body, scenario, 1)
    for fault in scenario.faults_for(1):
        plan = fault.apply(plan)
    return list(plan.writes()), plan.ending is Ending.RESET


# --- what proxies make of an answer: a function of its events -----------------------------

Events = list[Event]


def _typed(kind: str, document: Any) -> Event:
    return Event(kind, json.dumps(document))


ANTHROPIC_ERROR = {"type": "error", "error": {"type": "api_error", "message": "upstream failed"}}
RESPONSES_ERROR = {
    "type": "error",
    "code": "upstream_failed",
    "message": "upstream failed",
    "param": None,
    "sequence_number": 99,
}
OPENAI_ERROR = {"error": {"message": "upstream failed", "type": "upstream_error"}}
END = {
    MESSAGES: _typed("message_stop", {"type": "message_stop"}),
    RESPONSES: _typed(
        "response.completed",
        {
            "type": "response.completed",
            "sequence_number": 98,
            "response": {"id": "resp_x", "object": "response", "status": "completed", "output": []},
        },
    ),
}


def _untyped(events: Events) -> Events:
    return [Event("message", e.data) for e in events]


def _without(*kinds: str) -> Callable[[Events], Events]:
    return lambda events: [e for e in events if e.event not in kinds]


def _then(*more: Event) -> Callable[[Events], Events]:
    return lambda events: [*events, *more]


def _summed(events: Events) -> Events:
    """Output tokens of message_start and message_delta added up (the cumulative summed)."""
    seen, out = 0, []
    for event in events:
        payload = json.loads(event.data)
        usage = payload.get("message", payload).get("usage") or {}
        seen += usage.get("output_tokens", 0)
        if payload.get("type") == "message_delta":
            payload["usage"]["output_tokens"] = seen
        out.append(Event(event.event, json.dumps(payload)))
    return out


def _no_signature(events: Events) -> Events:
    return [e for e in events if '"signature_delta"' not in e.data]


def _frame(events: Events) -> bytes:
    return b"".join(
        (b"" if e.event == "message" else f"event: {e.event}\n".encode())
        + f"data: {e.data}\n\n".encode()
        for e in events
    )


Proxy = Callable[[Events], Events]
MESSAGES_BODIES: dict[str, tuple[str, Proxy | None]] = {
    "clean": ("chunks-4", None),
    "thinking-tools": ("chunks-3.reasoning-3.tools-4", None),
    "tools-only": ("chunks-0.tools-5", None),
    "pings": ("chunks-5.ping-4.ping-6", None),
    "length": ("chunks-3.finish-length", None),
    "formats": ("chunks-3.eol-crlf.comments.fields.multiline.nospace.empty_data", None),
    "split": ("chunks-3.reasoning-2.text-emoji.chop-3.split_utf8", None),
    "reset": ("chunks-5.reset_after-5", None),
    "reset-inside": ("chunks-5.reset_inside-5", None),
    "close": ("chunks-5.close_after-5", None),
    "cut-inside": ("chunks-5.cut_inside-5", None),
    "no-stop": ("chunks-5.no_done", None),
    "malformed": ("chunks-5.malformed-5", None),
    "array": ("chunks-5.nonobject-5-array", None),
    "null": ("chunks-5.nonobject-5-null", None),
    "error-event": ("chunks-5.upstream_error-6-event", None),
    "untyped": ("chunks-4.reasoning-2", _untyped),
    "pings-dropped": ("chunks-5.ping-4", _without("ping")),
    "summed": ("chunks-4.tools-2", _summed),
    "no-signature": ("chunks-2.reasoning-3", _no_signature),
    "invented-stop": ("chunks-5.close_after-5", _then(END[MESSAGES])),
    "anthropic-error": ("chunks-5.close_after-5", _then(_typed("error", ANTHROPIC_ERROR))),
    "openai-error-typed": ("chunks-5.close_after-5", _then(_typed("error", OPENAI_ERROR))),
    "chat-error": ("chunks-5.close_after-5", _then(Event("message", json.dumps(OPENAI_ERROR)))),
    "done": ("chunks-3", _then(Event("message", "[DONE]"))),
    "no-start": ("chunks-3", _without("message_start")),
    "error-then-stop": (
        "chunks-5.close_after-5",
        _then(_typed("error", ANTHROPIC_ERROR), END[MESSAGES]),
    ),
}
RESPONSES_BODIES: dict[str, tuple[str, Proxy | None]] = {
    "clean": ("chunks-4", None),
    "reasoning-tools": ("chunks-3.reasoning-3.tools-4", None),
    "tools-only": ("chunks-0.tools-5", None),
    "length": ("chunks-3.finish-length", None),
    "formats": ("chunks-3.eol-cr.fields.nospace.multiline", None),
    "split": ("chunks-3.reasoning-2.text-cjk.chop-3.split_utf8", None),
    "reset": ("chunks-5.reset_after-7", None),
    "reset-inside": ("chunks-5.reset_inside-7", None),
    "close": ("chunks-5.close_after-7", None),
    "cut-inside": ("chunks-5.cut_inside-7", None),
    "no-completed": ("chunks-5.no_done", None),
    "malformed": ("chunks-5.malformed-7", None),
    "array": ("chunks-5.nonobject-7-array", None),
    "error-event": ("chunks-5.upstream_error-7-event", None),
    "failed": ("chunks-5.upstream_error-7-failed", None),
    "untyped": ("chunks-4.reasoning-2.tools-2", _untyped),
    "invented-completed": ("chunks-5.close_after-7", _then(END[RESPONSES])),
    "responses-error": ("chunks-5.close_after-7", _then(_typed("error", RESPONSES_ERROR))),
    "chat-error": ("chunks-5.close_after-7", _then(Event("message", json.dumps(OPENAI_ERROR)))),
    "error-then-completed": (
        "chunks-5.close_after-7",
        _then(_typed("error", RESPONSES_ERROR), END[RESPONSES]),
    ),
    "done": ("chunks-3.close_after-7", _then(Event("message", "[DONE]"))),
}


def _body(api: str, tokens: str, proxy: Proxy | None) -> tuple[list[bytes], bool]:
    writes, reset = _answer(api, tokens)
    if proxy is None:
        return writes, reset
    events = SSEDecoder().feed(b"".join(writes))
    return [_frame(proxy(events))], reset


def _reading(api: str, writes: list[bytes], reset: bool) -> tuple[Reading, bool]:
    """What the harness makes of the body, as a target's client would have received it,
    and whether the SDK's caller is shown an exception: one the SDK raised, or the
    aborted transfer (the harness's `reset` outcome)."""
    transcript: TypedTranscript = TRANSCRIPTS[api](request={"stream": True}, sent_at=0.0)
    transcript.status = 200
    transcript.headers = {"content-type": "text/event-stream"}
    transcript.chunks = [Arrival(0.0, piece) for piece in writes]
    transcript.transport = Transport.RESET if reset else Transport.EOF
    reading = transcript.reading
    return reading, bool(reading.raised) or transcript.outcome is Outcome.RESET


def _transport(writes: list[bytes], reset: bool) -> httpx2.MockTransport:
    def body() -> Iterator[bytes]:
        yield from writes
        if reset:
            raise httpx2.ReadError("connection reset by peer")

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx2.MockTransport(handler)


# --- what each SDK makes of it ------------------------------------------------------------


def _anthropic(writes: list[bytes], reset: bool) -> dict[str, Any]:
    client = anthropic.Anthropic(
        api_key="sk-ant-mock",
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(transport=_transport(writes, reset)),
    )
    text, thinking, ends, raised = [], [], [], False
    with client, client.messages.stream(model="m", max_tokens=64, messages=PROMPT) as stream:
        try:
            for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text.append(event.delta.text)
                if event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                    thinking.append(event.delta.thinking)
                if event.type == "message_stop":
                    ends.append(event.type)
        except (anthropic.AnthropicError, httpx2.HTTPError, ValueError, TypeError, IndexError):
            raised = True
        message = stream._MessageStream__final_message_snapshot  # type: ignore[attr-defined]
    seen: dict[str, Any] = {"raised": raised, "text": "".join(text)}
    seen |= {"reasoning": "".join(thinking), "end": ends[-1] if ends else ""}
    if message is not None:
        blocks = message.content
        seen["signatures"] = tuple(b.signature for b in blocks if b.type == "thinking")
        seen["tools"] = tuple((b.id, b.name, b.input) for b in blocks if b.type == "tool_use")
        seen["stop"] = message.stop_reason
        seen["usage"] = {
            "input_tokens": message.usage.input_tokens,
            "output_tokens": message.usage.output_tokens,
        }
    return seen


def _harness_messages(read: tuple[Reading, bool]) -> dict[str, Any]:
    reading, raised = read
    answer = reading.answer
    seen: dict[str, Any] = {"raised": raised, "text": answer.text}
    seen |= {"reasoning": answer.reasoning, "end": reading.end}
    if reading.usage is not None:  # the SDK has a message once message_start came
        seen["signatures"] = answer.signatures
        seen["tools"] = tuple((i, n, _parsed(arguments)) for i, n, arguments in answer.tools)
        seen["stop"] = answer.stop
        seen["usage"] = reading.usage
    return seen


def _parsed(arguments: str) -> Any:
    return json.loads(arguments) if arguments else {}


def _openai(writes: list[bytes], reset: bool) -> dict[str, Any]:
    client = openai.OpenAI(
        api_key="sk-mock",
        base_url="http://openai.invalid/v1",
        max_retries=0,
        http_client=openai.DefaultHttpx2Client(transport=_transport(writes, reset)),
    )
    text, reasoning, errors, ends, raised = [], [], [], [], False
    calls: dict[int, list[Any]] = {}
    usage: dict[str, int] | None = None
    stop: str | None = None
    with client:
        try:
            for event in client.responses.create(model="m", input=PROMPT, stream=True):
                if event.type == "response.output_text.delta":
                    text.append(event.delta)
                elif event.type == "response.reasoning_summary_text.delta":
                    reasoning.append(event.delta)
                elif (
                    event.type == "response.output_item.added"
                    and event.item.type == "function_call"
                ):
                    calls[event.output_index] = [event.item.call_id, event.item.name, ""]
                elif event.type == "response.function_call_arguments.delta":
                    calls[event.output_index][2] += event.delta
                elif event.type in ("error", "response.failed"):
                    errors.append(event.type)
                elif event.type in ("response.completed", "response.incomplete"):
                    ends.append(event.type)
                    details = event.response.incomplete_details
                    reason = f":{details.reason}" if details is not None else ""
                    stop = f"{event.response.status}{reason}"
                    if event.response.usage is not None:
                        usage = _flat(event.response.usage.model_dump())
        except openai.APIConnectionError:
            raised = True
        except openai.APIError:  # a payload with an `error` member
            raised, errors = True, [*errors, "error"]
        except (openai.OpenAIError, httpx2.HTTPError, ValueError, AttributeError):
            raised = True
    return {
        "raised": raised,
        "errors": tuple(errors),
        "text": "".join(text),
        "reasoning": "".join(reasoning),
        "tools": tuple(tuple(call) for _, call in sorted(calls.items())),
        "end": ends[-1] if ends else "",
        "stop": stop,
        "usage": usage,
    }


def _flat(usage: dict[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for key, value in usage.items():
        if isinstance(value, dict):
            found |= _flat(value)
        elif isinstance(value, int):
            found[key] = value
    return found


def _harness_responses(read: tuple[Reading, bool]) -> dict[str, Any]:
    reading, raised = read
    answer = reading.answer
    return {
        "raised": raised,
        "errors": reading.errors,
        "text": answer.text,
        "reasoning": answer.reasoning,
        "tools": answer.tools,
        "end": reading.end,
        "stop": answer.stop,
        "usage": reading.usage,
    }


@pytest.mark.parametrize("name", sorted(MESSAGES_BODIES))
def test_the_harness_reads_a_messages_stream_as_the_anthropic_sdk(name: str) -> None:
    writes, reset = _body(MESSAGES, *MESSAGES_BODIES[name])
    assert _harness_messages(_reading(MESSAGES, writes, reset)) == _anthropic(writes, reset)


@pytest.mark.parametrize("name", sorted(RESPONSES_BODIES))
def test_the_harness_reads_a_responses_stream_as_the_openai_sdk(name: str) -> None:
    writes, reset = _body(RESPONSES, *RESPONSES_BODIES[name])
    assert _harness_responses(_reading(RESPONSES, writes, reset)) == _openai(writes, reset)


def test_the_paths_are_the_apis() -> None:
    assert PATHS == {MESSAGES: "/v1/messages", RESPONSES: "/v1/responses"}
