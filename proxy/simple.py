"""`POST /api/chat`: the seed dashboard's simple dialect, on top of the same relay.

Request: `{"message": "...", "stream": true, "model": "..."}` (`model` defaults to the
config's `server.default_model`; `stream` defaults to false, as in the OpenAI API). It is
turned into a one-message chat completion and goes through the same dispatch, retries,
commit point and timers as `/v1/chat/completions`; only the encoding differs:

- streamed: each piece of text is `data: {"chunk": "..."}`, a clean end is `data: [DONE]`,
  and a failure after the commit point is the same single in-band error event,
  `data: {"error": {...}}`, with no `[DONE]`. Chunks without text (the role, the finish)
  send nothing.
- not streamed: `{"response": "...", "model": "...", "usage": {...}}`.
"""

from __future__ import annotations

import json
from typing import Any

from streamproof.proxy import jsonio
from streamproof.proxy.errors import RequestRejected
from streamproof.proxy.relay import Forward, Step
from streamproof.proxy.validation import ChatCall


def parse_simple_call(body: bytes, default_model: str) -> ChatCall:
    try:
        request = jsonio.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise RequestRejected(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise RequestRejected(400, "invalid_body", "the request body must be a JSON object")
    message = request.get("message")
    if not isinstance(message, str):
        raise RequestRejected(400, "invalid_message", "'message' is required and must be a string")
    model = request.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise RequestRejected(400, "invalid_model", "'model' must be a non-empty string")
    stream = request.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestRejected(400, "invalid_stream", "'stream' must be true or false")
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": message}],
        "stream": stream,
    }
    encoded = json.dumps(payload, ensure_ascii=False).encode()
    return ChatCall(body=encoded, payload=payload, model=model, stream=stream)


def encode_simple(steps: list[Step]) -> bytes:
    """The stream's steps as `{"chunk": text}` events; endings as in the OpenAI dialect."""
    out = []
    for step in steps:
        if isinstance(step, Forward):
            text = _delta_text(jsonio.loads(step.payload))
            if text:
                chunk = json.dumps({"chunk": text}, ensure_ascii=False).encode()
                out.append(b"data: " + chunk + b"\n\n")
        else:
            out.append(step.encode())
    return b"".join(out)


def simple_answer(body: bytes) -> bytes:
    """A whole chat completion as `{"response", "model", "usage"}`."""
    answer = jsonio.loads(body)
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    document = {
        "response": content if isinstance(content, str) else "",
        "model": answer.get("model"),
        "usage": answer.get("usage"),
    }
    return json.dumps(document, ensure_ascii=False).encode()


def _delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return ""
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            return content if isinstance(content, str) else ""
    return ""
