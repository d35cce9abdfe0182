"""What the fake provider refuses before it answers: a chat request OpenAI would refuse.

A lenient fake hides a proxy's mistakes: a pass-through proxy forwards a bad request and
relays whatever comes back, so if the fake answered 200 (or dropped the connection) a case
about the proxy's handling of bad requests would be judging the fake instead. So the body
of `POST .../chat/completions` is checked as OpenAI checks it, and every problem is a 400
`invalid_request_error` whose `param` names the field (null when the body as a whole is
wrong):

    {"error": {"message": "...", "type": "invalid_request_error", "param": ..., "code": null}}

What is checked, in this order (the first problem found is the one reported):

- the body is UTF-8 (one leading BOM is ignored) and JSON; `NaN` and `Infinity` are not
  JSON; a value nested deeper than CPython's parser recurses is refused too (it raises
  RecursionError, not ValueError: `[` a hundred thousand times fits in a request body);
- it is an object, with a non-empty string `model` that is valid Unicode (the fake echoes
  it in every chunk) and, when it starts with `streamproof`, a scenario that parses;
- `messages` is a non-empty array of objects, each with a string `role`, and a `content`
  (when there is one) that is a string, an array of parts, or null;
- `stream`, when given, is a boolean (null, as OpenAI allows, means not given).

Everything else is left alone, as the fake's answer does not depend on it. The checks are
split in two (`read_scenario`, then `check_chat`) because a refusal found once the
scenario is known can be journaled under the request's id, as any other attempt is.
"""

from __future__ import annotations

import json
from typing import Any

from streamproof.fake_providers.plan import Frame, FrameKind, Plan
from streamproof.fake_providers.scenario import Scenario, ScenarioError

ERROR_TYPE = "invalid_request_error"
_UNPARSED = "We could not parse the JSON body of your request"


class InvalidRequest(ValueError):
    """A request the fake refuses with 400; `param` is the field at fault, or None."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    @property
    def document(self) -> dict[str, Any]:
        """The body of the 400, in OpenAI's shape."""
        return error_document(self.message, self.param)

    @property
    def plan(self) -> Plan:
        """The 400 as a plan, for the server to write (and journal) like any answer."""
        body = Frame(FrameKind.DOCUMENT, json.dumps(self.document).encode())
        return Plan(status=400, content_type="application/json", frames=(body,))


def error_document(message: str, param: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body: `{"error": {message, type, param, code}}`."""
    return {"error": {"message": message, "type": ERROR_TYPE, "param": param, "code": None}}


def read_scenario(raw: bytes) -> tuple[dict[str, Any], Scenario]:
    """The request body as a JSON object, and the scenario its `model` names.

    Raises InvalidRequest for a body that is not a JSON object, a missing or malformed
    `model`, or a malformed scenario: nothing in such a request says whose it is.
    """
    body = _json_object(raw)
    model = body.get("model")
    if model is None or model == "":
        raise InvalidRequest("You must provide a model parameter.", "model")
    if not isinstance(model, str):
        raise InvalidRequest(_wrong_type("model", "a string", model), "model")
    if not _is_unicode(model):
        raise InvalidRequest("Invalid 'model': a lone surrogate is not Unicode text.", "model")
    try:
        return body, Scenario.parse(model)
    except ScenarioError as exc:
        raise InvalidRequest(str(exc), "model") from None


def check_chat(body: dict[str, Any]) -> None:
    """Raise InvalidRequest if `messages` or `stream` is not what OpenAI accepts."""
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list):
        raise InvalidRequest(_wrong_type("messages", "an array", messages), "messages")
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
        )
    for index, message in enumerate(messages):
        _check_message(f"messages[{index}]", message)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest(_wrong_type("stream", "a boolean", stream), "stream")


def _check_message(where: str, message: Any) -> None:
    if not isinstance(message, dict):
        raise InvalidRequest(_wrong_type(where, "an object", message), where)
    role = f"{where}.role"
    if "role" not in message:
        raise InvalidRequest(f"Missing required parameter: '{role}'.", role)
    if not isinstance(message["role"], str):
        raise InvalidRequest(_wrong_type(role, "a string", message["role"]), role)
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        wanted = "a string, an array of content parts or null"
        raise InvalidRequest(_wrong_type(f"{where}.content", wanted, content), f"{where}.content")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig")  # strict UTF-8, where json.loads would guess UTF-16/32
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid UTF-8: {exc}.") from None
    try:
        body = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise InvalidRequest(f"{_UNPARSED}: it is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, and an integer too long to convert
        raise InvalidRequest(f"{_UNPARSED}: {exc}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, not {_kind(body)}.")
    return body


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _wrong_type(param: str, wanted: str, value: Any) -> str:
    return f"Invalid type for '{param}': expected {wanted}, but got {_kind(value)} instead."


def _kind(value: Any) -> str:
    """The JSON type of a parsed value, as an error message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"
