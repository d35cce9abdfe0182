"""Reading and checking a client's chat-completion request before any upstream is asked.

Bad input is the client's mistake and gets a 4xx with an OpenAI-style JSON error, never a
500 and never a hang: the body is read with a size cap (413 past `MAX_BODY_BYTES`, checked
against Content-Length first so a huge upload is refused before it is read), then parsed
and checked field by field. Only the fields the proxy itself relies on are checked; the
rest is the upstream's business and is forwarded unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request

from streamproof.proxy import jsonio
from streamproof.proxy.errors import RequestRejected

MAX_BODY_BYTES = 4 * 1024 * 1024


CHAT, MESSAGES, RESPONSES = "chat", "messages", "responses"  # the APIs (see proxy.apis)
# The request headers of the Anthropic Messages API that go upstream with the request.
ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A checked request: its original bytes (forwarded as they are) and what they say."""

    body: bytes
    payload: dict[str, Any]
    model: str
    stream: bool
    api: str = CHAT
    headers: tuple[tuple[str, str], ...] = ()  # the client's, for the upstream (by API)

    @property
    def include_usage(self) -> bool:
        """The client asked for the final usage chunk (`stream_options.include_usage`)."""
        options = self.payload.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    @property
    def messages(self) -> list[Any]:
        """The request's prompt as chat messages, for the usage estimate: the Messages
        API's `system` comes first, and the Responses API's `input` is a user message
        when it is a string."""
        payload = self.payload
        if self.api == RESPONSES:
            prompt = payload.get("input")
            instructions = payload.get("instructions")
            head = [{"role": "system", "content": instructions}] if instructions else []
            if isinstance(prompt, str):
                return [*head, {"role": "user", "content": prompt}]
            return [*head, *[_as_message(item) for item in prompt or ()]]
        messages: list[Any] = payload["messages"]  # checked to be a list
        if self.api == MESSAGES and payload.get("system"):
            return [{"role": "system", "content": payload["system"]}, *messages]
        return messages


def _as_message(item: Any) -> Any:
    """A Responses input item as a chat message: its `input_text`/`output_text` parts count
    as text parts."""
    if not isinstance(item, dict) or not isinstance(item.get("content"), list):
        return item
    parts = [
        {"type": "text", "text": part["text"]}
        if isinstance(part, dict) and isinstance(part.get("text"), str)
        else part
        for part in item["content"]
    ]
    return {**item, "content": parts}


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    except ClientDisconnect:
        # Nobody is left to answer; the 400 is only for the log.
        raise RequestRejected(400, "client_disconnected", "client left mid-request") from None
    return bytes(body)


def parse_chat_call(body: bytes) -> ChatCall:
    """A chat completions request: `model`, `messages` and `stream` checked."""
    payload, model, stream = _common(body)
    if not isinstance(payload.get("messages"), list):
        raise _invalid("invalid_messages", "'messages' is required and must be an array")
    return ChatCall(body=body, payload=payload, model=model, stream=stream)


def parse_messages_call(body: bytes, headers: Mapping[str, str]) -> ChatCall:
    """An Anthropic Messages request: `model`, `messages` and `stream` checked (the rest,
    `max_tokens` included, is the provider's to judge); its `anthropic-*` headers kept."""
    payload, model, stream = _common(body)
    if not isinstance(payload.get("messages"), list):
        raise _invalid("invalid_messages", "'messages' is required and must be an array")
    kept = tuple((name, headers[name]) for name in ANTHROPIC_HEADERS if name in headers)
    return ChatCall(body, payload, model, stream, MESSAGES, kept)


def parse_responses_call(body: bytes) -> ChatCall:
    """An OpenAI Responses request: `model` and `stream` checked, and `input`, when it is
    there, a string or an array."""
    payload, model, stream = _common(body)
    if not isinstance(payload.get("input", ""), str | list):
        raise _invalid("invalid_input", "'input' must be a string or an array")
    return ChatCall(body, payload, model, stream, RESPONSES)


def _common(body: bytes) -> tuple[dict[str, Any], str, bool]:
    """What every API's request holds: a JSON object with a `model` and a `stream`."""
    try:
        payload = jsonio.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise _invalid("invalid_json", "the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise _invalid("invalid_body", "the request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str):
        raise _invalid("invalid_model", "'model' is required and must be a string")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("invalid_stream", "'stream' must be true or false")
    return payload, model, stream


def _invalid(code: str, message: str) -> RequestRejected:
    return RequestRejected(400, code, message)


def _too_large(limit: int) -> RequestRejected:
    return RequestRejected(413, "request_too_large", f"the request body exceeds {limit} bytes")
