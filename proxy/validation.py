"""Reading and checking a client's chat-completion request before any upstream is asked.

Bad input is the client's mistake and gets a 4xx with an OpenAI-style JSON error, never a
500 and never a hang: the body is read with a size cap (413 past `MAX_BODY_BYTES`, checked
against Content-Length first so a huge upload is refused before it is read), then parsed
and checked field by field. Only the fields the proxy itself relies on are checked; the
rest is the upstream's business and is forwarded unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request

from streamproof.proxy import jsonio
from streamproof.proxy.errors import RequestRejected

MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A checked request: its original bytes (forwarded as they are) and what they say."""

    body: bytes
    payload: dict[str, Any]
    model: str
    stream: bool

    @property
    def include_usage(self) -> bool:
        """The client asked for the final usage chunk (`stream_options.include_usage`)."""
        options = self.payload.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    @property
    def messages(self) -> list[Any]:
        messages: list[Any] = self.payload["messages"]  # checked to be a list
        return messages


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
    try:
        payload = jsonio.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise _invalid("invalid_json", "the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise _invalid("invalid_body", "the request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str):
        raise _invalid("invalid_model", "'model' is required and must be a string")
    if not isinstance(payload.get("messages"), list):
        raise _invalid("invalid_messages", "'messages' is required and must be an array")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("invalid_stream", "'stream' must be true or false")
    return ChatCall(body=body, payload=payload, model=model, stream=stream)


def _invalid(code: str, message: str) -> RequestRejected:
    return RequestRejected(400, code, message)


def _too_large(limit: int) -> RequestRejected:
    return RequestRejected(413, "request_too_large", f"the request body exceeds {limit} bytes")
