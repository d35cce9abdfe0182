"""The official SDKs as real clients of the fake's Anthropic Messages and OpenAI Responses
APIs: a clean stream reads as `expected` says, and each fault class shows up as the SDK
lives through it (an exception, or a stream that ends without its end event).

The clients talk to loopback only: their HTTP clients are made with `trust_env=False`, so
no proxy of the environment is ever used.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from streamproof.fake_providers import FakeProvider, messages, responses
from streamproof.fake_providers.chat import DEFAULT_MESSAGES
from streamproof.fake_providers.scenario import Scenario

PROMPT: Any = list(DEFAULT_MESSAGES)
INPUT: Any = list(DEFAULT_MESSAGES)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def _fresh(model: str) -> str:
    """The model with an id of its own, so that attempts of one test never count in another."""
    return model.replace("streamproof", f"streamproof.id-{secrets.token_hex(6)}", 1)


@pytest.fixture
def claude(fake: FakeProvider) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url=f"http://{fake.host}:{fake.port}",
        api_key="sk-ant-sdk-client",
        max_retries=0,
        timeout=5.0,
        http_client=anthropic.DefaultHttpxClient(trust_env=False),  # loopback: no env proxy
    )
    with client:
        yield client


@pytest.fixture
def gpt(fake: FakeProvider) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=fake.base_url,
        api_key="sk-sdk-client",
        max_retries=0,
        timeout=5.0,
        http_client=openai.DefaultHttpx2Client(trust_env=False),  # loopback: no env proxy
    )
    with client:
        yield client


def _raised(exc: BaseException) -> set[str]:
    """The names of the exception's classes: `OverloadedError` is an `APIStatusError`."""
    return {cls.__name__ for cls in type(exc).__mro__}


# --- Anthropic Messages ---------------------------------------------------------------------


def _blocks(message: Any) -> tuple[messages.Block, ...]:
    """A message's content as `messages.Block`s, tool input as the JSON the SDK parsed."""
    made = []
    for block in message.content:
        if block.type == "thinking":
            made.append(messages.Block("thinking", block.thinking, block.signature))
        elif block.type == "tool_use":
            made.append(messages.Block("tool_use", repr(block.input), id=block.id, name=block.name))
        else:
            made.append(messages.Block("text", block.text))
    return tuple(made)


def _want_blocks(want: messages.Expected) -> tuple[messages.Block, ...]:
    return tuple(
        block._replace(text=repr(block.input)) if block.type == "tool_use" else block
        for block in want.blocks
    )


@pytest.mark.parametrize(
    "model",
    [
        "streamproof.chunks-5",
        "streamproof.chunks-3.reasoning-4.tools-3",
        "streamproof.chunks-0.tools-5.ping-5",
        "streamproof.chunks-4.reasoning-2.text-emoji.ping-6.chop-7.split_utf8",
        "streamproof.chunks-3.eol-crlf.split_eol.comments.fields.multiline.empty_data",
        "streamproof.chunks-3.eol-mixed.nospace.coalesce",
    ],
)
def test_anthropic_sdk_reads_a_clean_stream_as_expected(claude, model):
    model = _fresh(model)
    want = messages.expected(Scenario.parse(model))
    with claude.messages.stream(model=model, max_tokens=64, messages=PROMPT) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == want.text
    assert _blocks(message) == _want_blocks(want)
    assert message.id == want.message_id(1)
    assert message.stop_reason == want.stop_reason
    assert message.usage.input_tokens == want.usage["input_tokens"]
    assert message.usage.output_tokens == want.usage["output_tokens"]


def test_anthropic_sdk_reads_a_whole_message_as_expected(claude):
    model = _fresh("streamproof.chunks-3.reasoning-2.tools-4.finish-length")
    want = messages.expected(Scenario.parse(model))
    message = claude.messages.create(model=model, max_tokens=64, messages=PROMPT)
    assert _blocks(message) == _want_blocks(want)
    assert message.stop_reason == "max_tokens" == want.stop_reason
    assert message.usage.input_tokens == want.usage["input_tokens"]
    assert message.usage.output_tokens == want.usage["output_tokens"]


def _anthropic_outcome(client: anthropic.Anthropic, model: str) -> tuple[set[str], str, Any]:
    """(the classes of the exception the caller sees, or none; the text it was handed; the
    final message, when it got one)."""
    parts: list[str] = []
    try:
        with client.messages.stream(model=model, max_tokens=64, messages=PROMPT) as stream:
            for part in stream.text_stream:
                parts.append(part)
            final = stream.get_final_message()
    except (anthropic.AnthropicError, httpx2.HTTPError, ValueError, RuntimeError) as exc:
        return _raised(exc), "".join(parts), None
    return set(), "".join(parts), final


@pytest.mark.parametrize(
    ("fault", "raised"),
    [
        ("reset_after-4", "APIConnectionError"),
        ("reset_inside-4", "APIConnectionError"),
        ("reset_before_headers", "APIConnectionError"),
        ("upstream_error-5-event", "APIStatusError"),  # on a 200: no status class
        ("status-529", "OverloadedError"),
        ("status-429-3", "RateLimitError"),
        ("status-500", "InternalServerError"),
        ("status-400", "BadRequestError"),
        ("malformed-5", "JSONDecodeError"),
    ],
)
def test_anthropic_sdk_raises_on_each_fault_that_it_can_see(claude, fault, raised):
    got, _, _ = _anthropic_outcome(claude, _fresh(f"streamproof.chunks-6.{fault}"))
    assert raised in got


@pytest.mark.parametrize("fault", ["no_done", "close_after-6", "cut_inside-6"])
def test_anthropic_sdk_takes_a_stream_without_message_stop_for_whole(claude, fault):
    """A body that ends cleanly before `message_stop`: the SDK raises nothing and hands the
    caller a message, the harm a relay must not cause (by ending its client's body cleanly
    after an upstream that did not finish)."""
    model = _fresh(f"streamproof.chunks-6.{fault}")
    want = messages.expected(Scenario.parse(model))
    got, text, final = _anthropic_outcome(claude, model)
    assert got == set()
    assert final is not None
    assert want.text.startswith(text)
    if fault == "no_done":  # only message_stop is missing: all the rest came
        assert text == want.text
        assert final.stop_reason == want.stop_reason


def test_anthropic_sdk_skips_pings_inside_a_block(claude):
    model = _fresh("streamproof.chunks-4.ping-4.ping-5")
    got, text, _ = _anthropic_outcome(claude, model)
    assert got == set()
    assert text == messages.expected(Scenario.parse(model)).text


def test_anthropic_sdk_gets_its_error_shape(claude):
    model = _fresh("streamproof.status-529")
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(model=model, max_tokens=64, messages=PROMPT)
    assert caught.value.status_code == 529
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "simulated upstream error 529"},
    }


def test_anthropic_sdk_gets_an_anthropic_400_for_a_chat_only_token(claude):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=_fresh("streamproof.choices-2"), max_tokens=8, messages=PROMPT)
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "choices-2" in body["error"]["message"]


def test_anthropic_fail_then_succeed(claude):
    model = _fresh("streamproof.chunks-2.status-529.first-1")
    with pytest.raises(anthropic.APIStatusError):
        claude.messages.create(model=model, max_tokens=8, messages=PROMPT)
    message = claude.messages.create(model=model, max_tokens=8, messages=PROMPT)
    assert message.id == messages.expected(Scenario.parse(model)).message_id(2)


# --- OpenAI Responses -----------------------------------------------------------------------


def _summary(response: Any) -> str:
    return "".join(
        part.text for item in response.output if item.type == "reasoning" for part in item.summary
    )


def _calls(response: Any) -> list[tuple[str, str, str]]:
    return [
        (item.call_id, item.name, item.arguments)
        for item in response.output
        if item.type == "function_call"
    ]


@pytest.mark.parametrize(
    "model",
    [
        "streamproof.chunks-5",
        "streamproof.chunks-3.reasoning-4.tools-3",
        "streamproof.chunks-0.tools-5",
        "streamproof.chunks-4.reasoning-2.text-cjk.chop-5.split_utf8",
        "streamproof.chunks-3.eol-crlf.comments.multiline",
        # Not with `comments` too: once an `id:` was seen, the openai SDK's decoder dispatches
        # the blank line after a `: ping` comment as an event with empty data, and fails on it.
        "streamproof.chunks-3.eol-cr.fields.nospace",
    ],
)
def test_openai_sdk_reads_a_clean_responses_stream_as_expected(gpt, model):
    model = _fresh(model)
    want = responses.expected(Scenario.parse(model))
    deltas: list[str] = []
    with gpt.responses.stream(model=model, input=INPUT) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        response = stream.get_final_response()
    assert "".join(deltas) == want.text == response.output_text
    assert _summary(response) == want.reasoning
    assert _calls(response) == ([tuple(want.function_call)] if want.function_call else [])
    assert response.id == want.response_id(1)
    assert response.status == want.status
    assert response.usage is not None
    assert response.usage.input_tokens == want.usage["input_tokens"]
    assert response.usage.output_tokens == want.usage["output_tokens"]
    assert response.usage.total_tokens == want.usage["total_tokens"]
    assert response.usage.output_tokens_details.reasoning_tokens == want.reasoning_tokens


def test_openai_sdk_reads_a_whole_response_as_expected(gpt):
    model = _fresh("streamproof.chunks-3.reasoning-2.tools-2")
    want = responses.expected(Scenario.parse(model))
    response = gpt.responses.create(model=model, input=INPUT)
    assert response.output_text == want.text
    assert _summary(response) == want.reasoning
    assert _calls(response) == [tuple(want.function_call or ())]
    assert response.usage is not None
    assert response.usage.output_tokens == want.usage["output_tokens"]


def _responses_outcome(client: openai.OpenAI, model: str) -> tuple[set[str], str, list[str]]:
    """(the classes of the exception the caller sees, or none; the text it was handed; the
    types of the events it read)."""
    parts: list[str] = []
    types: list[str] = []
    try:
        with client.responses.stream(model=model, input=INPUT) as stream:
            for event in stream:
                types.append(event.type)
                if event.type == "response.output_text.delta":
                    parts.append(event.delta)
            stream.get_final_response()
    except (openai.OpenAIError, httpx2.HTTPError, ValueError, RuntimeError) as exc:
        return _raised(exc), "".join(parts), types
    return set(), "".join(parts), types


@pytest.mark.parametrize(
    ("fault", "raised"),
    [
        ("reset_after-6", "APIConnectionError"),
        ("reset_inside-6", "APIConnectionError"),
        ("reset_before_headers", "APIConnectionError"),
        ("status-429-2", "RateLimitError"),
        ("status-503", "InternalServerError"),
        ("malformed-6", "JSONDecodeError"),
        # The stream ends without response.completed: get_final_response() raises.
        ("no_done", "RuntimeError"),
        ("close_after-6", "RuntimeError"),
        ("cut_inside-6", "RuntimeError"),
        ("upstream_error-6-failed", "RuntimeError"),
        ("upstream_error-6-event", "RuntimeError"),
    ],
)
def test_openai_sdk_sees_each_responses_fault(gpt, fault, raised):
    got, _, types = _responses_outcome(gpt, _fresh(f"streamproof.chunks-6.{fault}"))
    assert raised in got
    assert "response.completed" not in types


@pytest.mark.parametrize(("shape", "event"), [("failed", "response.failed"), ("event", "error")])
def test_openai_sdk_reads_the_inband_error_event(gpt, shape, event):
    model = _fresh(f"streamproof.chunks-6.upstream_error-8-{shape}")
    _, text, types = _responses_outcome(gpt, model)
    assert types[-1] == event
    assert text == "".join(responses.expected(Scenario.parse(model)).text[:0]) + text
