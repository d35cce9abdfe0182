"""The APIs the fake provider speaks, one per endpoint, for the server to dispatch to.

    POST /v1/chat/completions   OpenAI chat completions      chat.py
    POST /v1/messages           the Anthropic Messages API   messages.py
    POST /v1/responses          the OpenAI Responses API     responses.py

Each takes the same scenarios (in `model`), answers with a `Plan` (so every fault applies
to each, at its event boundaries), and refuses what it would refuse with a 400 in its own
error shape: a request that API rejects, or a scenario token it has no meaning for (chat's
`choices-N` above 1, `roleonly`, `emptydeltas`, the `usage-…` dialects and
`reject_stream_options`; `ping-N` outside Messages; an `upstream_error` shape the API does
not have, `errors.INBAND_SHAPES`). Such a refusal is an attempt like any other, on which no
fault fires.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamproof.fake_providers import chat, errors, messages, responses, validation
from streamproof.fake_providers.faults import UpstreamError
from streamproof.fake_providers.plan import CHAT, MESSAGES, RESPONSES, Frame, FrameKind, Plan
from streamproof.fake_providers.scenario import Scenario
from streamproof.fake_providers.validation import InvalidRequest


@dataclass(frozen=True)
class Api:
    name: str  # one of plan.API_NAMES
    check: Callable[[dict[str, Any], Scenario], None]  # raises InvalidRequest
    answer: Callable[[dict[str, Any], Scenario, int], Plan]  # request, scenario, attempt

    def refusal(self, exc: InvalidRequest) -> dict[str, Any]:
        """The body of the 400 for a refused request, in this API's shape."""
        if self.name == MESSAGES:
            return errors.anthropic_error("invalid_request_error", exc.message)
        return exc.document

    def refusal_plan(self, exc: InvalidRequest) -> Plan:
        body = Frame(FrameKind.DOCUMENT, json.dumps(self.refusal(exc)).encode())
        return Plan(status=400, content_type="application/json", frames=(body,), api=self.name)


def check_scenario(api: str, scenario: Scenario) -> None:
    """Refuse the tokens that mean nothing in `api` (see the module's docstring)."""
    if api != CHAT:
        chat_only = [
            token
            for token, used in (
                (f"choices-{scenario.choices}", scenario.choices != 1),
                ("roleonly", scenario.roleonly),
                ("emptydeltas", scenario.emptydeltas),
                (f"usage-{scenario.usage}", scenario.usage is not None),
                ("reject_stream_options", scenario.reject_stream_options),
            )
            if used
        ]
        if chat_only:
            raise InvalidRequest(f"{', '.join(chat_only)}: only for chat completions", "model")
    if api != MESSAGES and scenario.ping is not None:
        raise InvalidRequest(f"ping-{scenario.ping}: only for the Messages API", "model")
    for fault in scenario.faults:
        if isinstance(fault, UpstreamError) and fault.shape not in errors.INBAND_SHAPES[api]:
            shapes = ", ".join(errors.INBAND_SHAPES[api])
            raise InvalidRequest(f"{fault.token}: this API's error shapes are {shapes}", "model")


def _check_chat(body: dict[str, Any], scenario: Scenario) -> None:
    check_scenario(CHAT, scenario)
    validation.check_chat(body)


def _answer_chat(body: dict[str, Any], scenario: Scenario, attempt: int) -> Plan:
    return chat.answer(body, scenario, chat.chunk_id(scenario, attempt))


def _check_messages(body: dict[str, Any], scenario: Scenario) -> None:
    """What the Messages API requires: `max_tokens`, and `messages` as chat has them."""
    check_scenario(MESSAGES, scenario)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequest("max_tokens: Field required", "max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Input should be a valid positive integer", "max_tokens")
    validation.check_chat(body)


def _check_responses(body: dict[str, Any], scenario: Scenario) -> None:
    """What the Responses API requires: an `input` (when given) that is text or a list."""
    check_scenario(RESPONSES, scenario)
    value = body.get("input")
    if value is not None and not isinstance(value, str | list):
        raise InvalidRequest(
            "Invalid type for 'input': expected a string or an array of input items.", "input"
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("Invalid type for 'stream': expected a boolean.", "stream")


APIS: dict[str, Api] = {
    "chat/completions": Api(CHAT, _check_chat, _answer_chat),
    "messages": Api(MESSAGES, _check_messages, messages.answer),
    "responses": Api(RESPONSES, _check_responses, responses.answer),
}
