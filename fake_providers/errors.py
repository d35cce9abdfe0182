"""The errors of each API the fake speaks: HTTP error bodies and in-band error events.

A fault that means "an error" (`status-CODE`, `upstream_error-N-SHAPE`) writes it in the
shape the API of the request uses (`Plan.api`), so that each API's official SDK reads it
as it reads the real one:

- chat completions and the Responses API (OpenAI): an error status has the body
  `{"error": {"message", "type", "code"}}`;
- the Anthropic Messages API: `{"type": "error", "error": {"type", "message"}}`, the error
  type following the status as Anthropic's documentation lists them (429
  `rate_limit_error`, 529 `overloaded_error`, ...).

The in-band error shapes (`upstream_error-N-SHAPE`) each API has:

- chat: `object`, `flat`, `event`, `finish` (see `faults.UpstreamError`);
- messages: `event`, Anthropic's own: `event: error` with
  `{"type": "error", "error": {"type": "overloaded_error", "message": ...}}`;
- responses: `event`, the Responses API's `error` event (`{"type": "error", "code",
  "message", "param", "sequence_number"}`), and `failed`, a `response.failed` event whose
  response has `status: "failed"` and an `error` object.

A shape an API does not have is refused before the answer (`apis.check_scenario`).
"""

from __future__ import annotations

import json
from typing import Any

from streamproof.fake_providers.plan import CHAT, MESSAGES, RESPONSES

ERROR_MESSAGE = "simulated upstream failure mid-stream"
INBAND_SHAPES: dict[str, tuple[str, ...]] = {
    CHAT: ("object", "flat", "event", "finish"),
    MESSAGES: ("event",),
    RESPONSES: ("event", "failed"),
}
ALL_SHAPES = ("object", "flat", "event", "finish", "failed")
# Anthropic's error types by HTTP status (docs.anthropic.com, "Errors").
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """The Anthropic error type of an HTTP status: the listed one, else by its class."""
    default = "invalid_request_error" if status < 500 else "api_error"
    return ANTHROPIC_ERROR_TYPES.get(status, default)


def anthropic_error(error_type: str, message: str) -> dict[str, Any]:
    """An Anthropic error document, as an error status's body and an `event: error`'s data."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def status_body(api: str, status: int) -> bytes:
    """The body of an error status `status` in the API's shape."""
    message = f"simulated upstream error {status}"
    if api == MESSAGES:
        return json.dumps(anthropic_error(anthropic_error_type(status), message)).encode()
    return json.dumps(
        {"error": {"message": message, "type": "fake_error", "code": status}}
    ).encode()


def inband_event(
    api: str, shape: str, *, metadata: dict[str, Any], sequence: int
) -> tuple[str, str]:
    """The typed in-band error event of a Messages or Responses stream: (event type, data).

    `metadata` is the plan's (for `failed`, the response it fails); `sequence` the event's
    `sequence_number` in a Responses stream (its 0-based place in the stream).
    """
    if api == MESSAGES:
        return "error", _dumps(anthropic_error("overloaded_error", "Overloaded"))
    if shape == "failed":
        error = {"code": "server_error", "message": ERROR_MESSAGE}
        response = {**metadata, "status": "failed", "error": error, "output": [], "usage": None}
        document = {"type": "response.failed", "sequence_number": sequence, "response": response}
        return "response.failed", _dumps(document)
    document = {
        "type": "error",
        "code": "server_error",
        "message": ERROR_MESSAGE,
        "param": None,
        "sequence_number": sequence,
    }
    return "error", _dumps(document)


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
