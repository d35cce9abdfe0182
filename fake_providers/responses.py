"""The OpenAI Responses API (`POST /v1/responses`): the answer to a scenario, and `expected`.

The same scenario as in chat completions says the same things: `chunks-N` text deltas of
the same text, `tools-N` one function call whose arguments come in N fragments,
`reasoning-N` a reasoning item whose summary comes in N deltas, `finish-REASON` how the
response ends. A streamed answer is the event sequence of OpenAI's Responses streaming
documentation, each event an `event: TYPE` line and a `data:` line whose JSON has the same
`type` and a `sequence_number` (0, 1, 2, ... over the stream):

    response.created, response.in_progress           the response, empty, `in_progress`
    with reasoning-N, output item 0, a reasoning item:
      response.output_item.added                     {"type": "reasoning", "summary": []}
      response.reasoning_summary_part.added
      response.reasoning_summary_text.delta...       the summary, N deltas
      response.reasoning_summary_text.done, response.reasoning_summary_part.done
      response.output_item.done
    the message item (when there is text, or no other item):
      response.output_item.added, response.content_part.added   (an `output_text` part)
      response.output_text.delta...
      response.output_text.done, response.content_part.done, response.output_item.done
    with tools-N, a function_call item:
      response.output_item.added                     (call_id, name, arguments "")
      response.function_call_arguments.delta...
      response.function_call_arguments.done, response.output_item.done
    response.completed                               the whole response, with `usage`

There is no `[DONE]`: `response.completed` ends the stream, and it alone has the usage.
With `finish-length` or `finish-content_filter` the last event is `response.incomplete`
(status `incomplete`, `incomplete_details.reason` `max_output_tokens` or `content_filter`).

Usage is exact (`tokens.py`): `input_tokens` is the chat formula over the request's
`instructions` (as a first message) and `input` (a string is one user message; input_text
parts read as text), `output_tokens` the tokens of the reasoning summary, the text and the
arguments, each counted whole, summed; `output_tokens_details.reasoning_tokens` the
reasoning's. Not streamed, the answer is the `response` object `response.completed` carries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streamproof.fake_providers import content, messages, tokens
from streamproof.fake_providers.chat import CREATED, stream_plan
from streamproof.fake_providers.content import ToolCall
from streamproof.fake_providers.formats import Dialect
from streamproof.fake_providers.plan import RESPONSES, Frame, FrameKind, Pieces, Plan
from streamproof.fake_providers.scenario import Scenario

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(frozen=True)
class Expected:
    """What a correct relay of the clean answer to a scenario carries, item by item.

    `usage` is in the API's own fields, exact for a request whose `input` is
    `DEFAULT_MESSAGES` (`expected_usage` for others), as `response.completed` reports it.
    """

    id_prefix: str  # the response `id` is this followed by the attempt number
    model: str
    reasoning: str  # the reasoning summary's text ("" without reasoning-N)
    text: str  # the message's output_text ("" without one)
    function_call: ToolCall | None  # (call_id, name, arguments)
    status: str  # "completed" or "incomplete"
    usage: dict[str, int]  # input_tokens, output_tokens, total_tokens
    reasoning_tokens: int  # output_tokens_details.reasoning_tokens

    def response_id(self, attempt: int) -> str:
        return f"{self.id_prefix}{attempt}"


def response_id(scenario: Scenario, attempt: int) -> str:
    """The `id` of the response of an attempt."""
    return f"resp_{scenario.nonce or 'fake'}_{attempt}"


def expected(scenario: Scenario, request_input: Any = None) -> Expected:
    """What a correct relay of the clean answer to `scenario` carries (no sockets)."""
    reasoning, text, call = _parts(scenario)
    usage, thinking = expected_usage(scenario, request_input)
    return Expected(
        id_prefix=response_id(scenario, 0)[:-1],
        model=scenario.model,
        reasoning=reasoning,
        text=text,
        function_call=call,
        status="incomplete" if scenario.finish_reason in INCOMPLETE else "completed",
        usage=usage,
        reasoning_tokens=thinking,
    )


def expected_usage(
    scenario: Scenario, request_input: Any = None, instructions: Any = None
) -> tuple[dict[str, int], int]:
    """The usage figures (input, output, total tokens) and the reasoning tokens."""
    if isinstance(request_input, str):
        request_input = [{"role": "user", "content": request_input}]
    prompt = messages.input_tokens(request_input, instructions)
    reasoning, text, call = _parts(scenario)
    thinking = tokens.count(reasoning) if reasoning else 0
    output = thinking + (tokens.count(text) if text else 0)
    output += tokens.count(call.arguments) if call else 0
    return {
        "input_tokens": prompt,
        "output_tokens": output,
        "total_tokens": prompt + output,
    }, thinking


def _parts(scenario: Scenario) -> tuple[str, str, ToolCall | None]:
    reasoning = "".join(content.reasoning_deltas(scenario))
    text = "".join(content.content_deltas(scenario))
    call = content.tool_call(0) if scenario.tools is not None else None
    return reasoning, text, call


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def answer(request: dict[str, Any], scenario: Scenario, attempt: int) -> Plan:
    """The plan of a correct answer to a Responses `request`, before any fault."""
    rid = response_id(scenario, attempt)
    base: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": CREATED,
        "model": str(request.get("model", "")),
    }
    plan = stream_plan(scenario, base, api=RESPONSES)
    usage, thinking = expected_usage(scenario, request.get("input"), request.get("instructions"))
    wire_usage = {
        "input_tokens": usage["input_tokens"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": thinking},
        "total_tokens": usage["total_tokens"],
    }
    items = _items(scenario, rid)
    reason = INCOMPLETE.get(scenario.finish_reason)
    final = {
        **base,
        "status": "incomplete" if reason else "completed",
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "output": [item for item, _ in items],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": wire_usage,
    }
    reasoning, text, call = _parts(scenario)
    if request.get("stream") is not True:
        frame = Frame(
            FrameKind.DOCUMENT,
            _dumps(final).encode(),
            deltas=((0, text),),
            arguments=((0, call.arguments),) if call else (),
            usage=tuple(usage.items()),
            reasoning=((0, reasoning),) if reasoning else (),
        )
        return plan.replace(content_type="application/json", extra_headers=(), frames=(frame,))
    stream = _Stream(scenario, Dialect(scenario))
    opening = {**final, "status": "in_progress", "incomplete_details": None, "output": []}
    opening["usage"] = None
    stream.event(FrameKind.ROLE, {"type": "response.created", "response": opening})
    stream.event(FrameKind.ROLE, {"type": "response.in_progress", "response": opening})
    for index, (item, parts) in enumerate(items):
        stream.item(index, item, parts)
    kind = "response.incomplete" if reason else "response.completed"
    stream.event(FrameKind.DONE, {"type": kind, "response": final}, usage=tuple(usage.items()))
    return plan.replace(frames=tuple(stream.out))


def _items(scenario: Scenario, rid: str) -> list[tuple[dict[str, Any], list[str]]]:
    """Each output item, whole, with the deltas it streams in."""
    suffix = rid.removeprefix("resp_")
    made: list[tuple[dict[str, Any], list[str]]] = []
    reasoning, text, call = _parts(scenario)
    if reasoning:
        summary = [{"type": "summary_text", "text": reasoning}]
        item = {"id": f"rs_{suffix}", "type": "reasoning", "summary": summary}
        made.append((item, content.reasoning_deltas(scenario)))
    if text or call is None:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
        item = {
            "id": f"msg_{suffix}",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        made.append((item, content.content_deltas(scenario)))
    if call is not None:
        item = {
            "id": f"fc_{suffix}",
            "type": "function_call",
            "status": "completed",
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments,
        }
        made.append((item, content.argument_fragments(scenario.tools or 1)))
    return made


class _Stream:
    """Writes the events of one streamed answer, numbering them, with the dialect's formats."""

    def __init__(self, scenario: Scenario, dialect: Dialect) -> None:
        self.scenario = scenario
        self.dialect = dialect
        self.out: list[Frame] = []
        self.sequence = 0
        self.answer_started = False

    def event(self, kind: FrameKind, document: dict[str, Any], **pieces: Any) -> None:
        inner = False
        if kind in (FrameKind.CONTENT, FrameKind.TOOL, FrameKind.REASONING):
            inner, self.answer_started = not self.answer_started, True
            if inner and "empty_data" in self.scenario.formats:
                self.out.append(Frame(FrameKind.EMPTY, self.dialect.empty()))
        event = str(document["type"])
        numbered = {"type": event, "sequence_number": self.sequence, **document}
        self.sequence += 1
        last = kind is FrameKind.DONE
        data = self.dialect.event(_dumps(numbered), inner_comment=inner, last=last, event=event)
        self.out.append(Frame(kind, data, event=event, **pieces))

    def item(self, index: int, item: dict[str, Any], parts: list[str]) -> None:
        """The events of one output item: added, its deltas, done."""
        where = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "reasoning":
            opened = {**item, "summary": []}
        elif kind == "message":
            opened = {**item, "status": "in_progress", "content": []}
        else:
            opened = {**item, "status": "in_progress", "arguments": ""}
        self.event(
            FrameKind.BLOCK,
            {"type": "response.output_item.added", "output_index": index, "item": opened},
        )
        if kind == "reasoning":
            self._reasoning(where, item["summary"][0], parts)
        elif kind == "message":
            self._message(where, item["content"][0], parts)
        else:
            for fragment in parts:
                document = {
                    "type": "response.function_call_arguments.delta",
                    **where,
                    "delta": fragment,
                }
                self.event(FrameKind.TOOL, document, arguments=((0, fragment),))
            done = {"type": "response.function_call_arguments.done", **where}
            self.event(
                FrameKind.BLOCK, {**done, "name": item["name"], "arguments": item["arguments"]}
            )
        self.event(
            FrameKind.BLOCK,
            {"type": "response.output_item.done", "output_index": index, "item": item},
        )

    def _reasoning(self, where: dict[str, Any], part: dict[str, Any], parts: list[str]) -> None:
        at = {**where, "summary_index": 0}
        empty = {**part, "text": ""}
        self.event(
            FrameKind.BLOCK, {"type": "response.reasoning_summary_part.added", **at, "part": empty}
        )
        for thought in parts:
            document = {"type": "response.reasoning_summary_text.delta", **at, "delta": thought}
            self.event(FrameKind.REASONING, document, reasoning=((0, thought),))
        text = part["text"]
        self.event(
            FrameKind.BLOCK, {"type": "response.reasoning_summary_text.done", **at, "text": text}
        )
        self.event(
            FrameKind.BLOCK, {"type": "response.reasoning_summary_part.done", **at, "part": part}
        )

    def _message(self, where: dict[str, Any], part: dict[str, Any], parts: list[str]) -> None:
        at = {**where, "content_index": 0}
        empty = {**part, "text": ""}
        self.event(FrameKind.BLOCK, {"type": "response.content_part.added", **at, "part": empty})
        for text in parts:
            document = {"type": "response.output_text.delta", **at, "delta": text, "logprobs": []}
            pieces: Pieces = ((0, text),)
            self.event(FrameKind.CONTENT, document, deltas=pieces)
        whole = {"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []}
        self.event(FrameKind.BLOCK, whole)
        self.event(FrameKind.BLOCK, {"type": "response.content_part.done", **at, "part": part})
