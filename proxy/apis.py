"""The three APIs the proxy serves, and what differs between them.

- chat completions (`POST /v1/chat/completions`), OpenAI's, which every provider speaks;
- the Anthropic Messages API (`POST /v1/messages`);
- the OpenAI Responses API (`POST /v1/responses`).

The proxy does not translate between them: a request is passed through to a provider of
its route that speaks its API (a provider's `apis` in the config), with the same commit
point, retries, fallback, timers and records as a chat request. What each API brings is
here: where it goes upstream and with which headers, the check its stream goes through
(`proxy.relay` for chat, `proxy.events` for the typed two), how a whole answer's usage is
read, and the shape of an error body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamproof.proxy.errors import error_payload
from streamproof.proxy.events import EventUsage, MessagesCheck, ResponsesCheck
from streamproof.proxy.relay import StreamCheck
from streamproof.proxy.tokens import StreamCounter
from streamproof.proxy.usage import Usage, UsageMeter, complete_answer
from streamproof.proxy.validation import CHAT, MESSAGES, RESPONSES, ChatCall

ANTHROPIC_VERSION = "2023-06-01"  # sent upstream when the client named none
# Anthropic's error types by HTTP status (docs.anthropic.com, "Errors").
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str, type_: str = "", code: object = None) -> bytes:
    """An Anthropic error body: `{"type": "error", "error": {"type", "message"}}`, the type
    following the status."""
    default = "invalid_request_error" if status < 500 else "api_error"
    kind = ANTHROPIC_ERROR_TYPES.get(status, default)
    document = {"type": "error", "error": {"type": kind, "message": message}}
    return json.dumps(document, ensure_ascii=False).encode()


def openai_error(status: int, message: str, type_: str = "", code: object = None) -> bytes:
    return error_payload(message, type_ or "invalid_request_error", code)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Api:
    name: str  # "chat", "messages" or "responses": a provider's `apis` names it
    title: str  # in words, for messages
    path: str  # where clients POST it
    upstream_path: str  # after a provider's base_url
    error_body: Callable[[int, str, str, object], bytes]  # status, message, type, code
    check: Callable[[str, tuple[str, ...], ChatCall], StreamCheck]  # a stream's check
    # A whole answer's body as the client gets it, with its usage: (body, parsed, call).
    whole: Callable[[bytes, dict[str, Any], ChatCall], tuple[bytes, Usage]]

    def is_error(self, answer: Mapping[str, Any]) -> bool:
        """A 200 body that is an error report rather than an answer."""
        if answer.get("error") is not None or answer.get("object") == "error":
            return True
        if self.name == MESSAGES:
            return answer.get("type") == "error"
        return self.name == RESPONSES and answer.get("status") == "failed"

    def upstream_headers(self, key: str, call: ChatCall) -> dict[str, str]:
        """The API's own request headers: its key header, and Anthropic's version."""
        if self.name != MESSAGES:
            return {"authorization": f"Bearer {key}"}
        headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
        headers.update(call.headers)
        return headers


def _chat_check(provider: str, secrets: tuple[str, ...], call: ChatCall) -> StreamCheck:
    return StreamCheck(provider, secrets, UsageMeter(call.include_usage, call.messages))


def _chat_whole(body: bytes, answer: dict[str, Any], call: ChatCall) -> tuple[bytes, Usage]:
    return complete_answer(body, answer, call.messages)


def _typed_whole(
    body: bytes, answer: dict[str, Any], call: ChatCall, texts: Callable[[Any], Sequence[Any]]
) -> tuple[bytes, Usage]:
    """A Messages or Responses answer: its usage as reported (the body unchanged), else an
    estimate of its text, added to the body as `usage` with `"estimated": true`."""
    meter = EventUsage(call.messages)
    meter.record(answer.get("usage"))
    if meter.input is not None and meter.output is not None:
        return body, meter.usage()
    counter: StreamCounter = meter.counter
    for add, text in texts(answer):
        add(counter, 0, text)
    usage = meter.usage()
    estimate = {"input_tokens": usage.prompt, "output_tokens": usage.completion, "estimated": True}
    if call.api == RESPONSES:
        estimate["total_tokens"] = usage.total
    document = {**answer, "usage": estimate}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(), usage


def _message_texts(answer: Any) -> list[tuple[Any, str]]:
    """The texts of a Messages answer's content blocks, by kind."""
    texts: list[tuple[Any, str]] = []
    for block in answer.get("content") or ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append((StreamCounter.add_content, block["text"]))
        if isinstance(block.get("thinking"), str):
            texts.append((StreamCounter.add_reasoning, block["thinking"]))
        if block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input", {}), ensure_ascii=False)
            texts.append((StreamCounter.add_arguments, arguments))
    return texts


def _response_texts(answer: Any) -> list[tuple[Any, str]]:
    """The texts of a Responses answer's output items, by kind."""
    texts: list[tuple[Any, str]] = []
    for item in answer.get("output") or ():
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            texts.append((StreamCounter.add_arguments, item["arguments"]))
        kind = StreamCounter.add_reasoning if item.get("type") == "reasoning" else None
        for part in (item.get("content") or []) + (item.get("summary") or []):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append((kind or StreamCounter.add_content, part["text"]))
    return texts


def _messages_whole(body: bytes, answer: dict[str, Any], call: ChatCall) -> tuple[bytes, Usage]:
    return _typed_whole(body, answer, call, _message_texts)


def _responses_whole(body: bytes, answer: dict[str, Any], call: ChatCall) -> tuple[bytes, Usage]:
    return _typed_whole(body, answer, call, _response_texts)


APIS: dict[str, Api] = {
    CHAT: Api(
        CHAT,
        "chat completions",
        "/v1/chat/completions",
        "/chat/completions",
        openai_error,
        _chat_check,
        _chat_whole,
    ),
    MESSAGES: Api(
        MESSAGES,
        "the Anthropic Messages API",
        "/v1/messages",
        "/messages",
        anthropic_error,
        lambda provider, secrets, call: MessagesCheck(provider, secrets, call.messages),
        _messages_whole,
    ),
    RESPONSES: Api(
        RESPONSES,
        "the OpenAI Responses API",
        "/v1/responses",
        "/responses",
        openai_error,
        lambda provider, secrets, call: ResponsesCheck(provider, secrets, call.messages),
        _responses_whole,
    ),
}
BY_PATH = {api.path: api for api in APIS.values()}
