"""The well-behaved answer: OpenAI chat completions, streamed or whole, as a `Plan`; and what
a correct relay of it carries, as an `Expected`.

Content is deterministic: the same scenario always gives the same bytes. By default a
scenario with `chunks-N` streams the same N deltas, and every delta carries characters of
one, two, three and four UTF-8 bytes, so that a write boundary inside a character is never
far away; the content tokens (`text-…`, `tools-N`, `choices-N`, …) change what is said
(`content.py`), the format tokens how it is written (`formats.py`).

Every chunk carries the same metadata: `id` is `chatcmpl-<id token, or "fake">-<attempt>`
(the attempt number is part of it, so a client can tell which attempt it was given),
`object` is `chat.completion.chunk`, `created` is `CREATED`, and `model` is the model name
exactly as the request sent it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fake_providers import content, tokens
from fake_providers.content import ToolCall
from fake_providers.formats import Dialect
from fake_providers.plan import Frame, FrameKind, Pieces, Plan
from fake_providers.scenario import EOLS, Scenario
from fake_providers.text import VOCABULARY, deltas

CREATED = 1_700_000_000
CHUNK_OBJECT = "chat.completion.chunk"

__all__ = [
    "CHUNK_OBJECT",
    "CREATED",
    "VOCABULARY",
    "Expected",
    "ToolCall",
    "answer",
    "chunk_id",
    "deltas",
    "expected",
]


@dataclass(frozen=True)
class Expected:
    """What a correct relay of the clean answer to a scenario carries, choice by choice.

    This is the answer before any fault: what a clean attempt (a retry after `first-K`, or
    a scenario without faults) sends. What a faulted attempt actually wrote is in its
    journal (`Attempt.content_written_by_choice()`).
    """

    id_prefix: str  # every chunk's `id` is this followed by the attempt number
    object: str
    created: int
    model: str  # the model name the harness sends: `scenario.model`
    content: dict[int, str]  # choice index -> the whole content
    tool_calls: dict[int, tuple[ToolCall, ...]]  # choice index -> (id, name, arguments)
    finish_reasons: dict[int, str]  # choice index -> finish_reason
    done: bool  # whether the upstream's `data: [DONE]` is dispatched (not with unterminated)

    def chunk_id(self, attempt: int) -> str:
        """The `id` of every chunk of this (1-based) attempt."""
        return f"{self.id_prefix}{attempt}"

    @property
    def text(self) -> str:
        """The content of choice 0."""
        return self.content[0]


def chunk_id(scenario: Scenario, attempt: int) -> str:
    """The `id` every chunk of an attempt carries (and a whole answer's `id`)."""
    return f"chatcmpl-{scenario.nonce or 'fake'}-{attempt}"


def expected(scenario: Scenario) -> Expected:
    """What a correct relay of the clean answer to `scenario` carries (no sockets)."""
    parts = content.content_deltas(scenario)
    choices = range(scenario.choices)
    calls: dict[int, tuple[ToolCall, ...]] = {
        i: (content.tool_call(i),) if scenario.tools is not None else () for i in choices
    }
    return Expected(
        id_prefix=chunk_id(scenario, 0)[:-1],
        object=CHUNK_OBJECT,
        created=CREATED,
        model=scenario.model,
        content={i: "".join(content.rotated(parts, i)) for i in choices},
        tool_calls=calls,
        finish_reasons=dict.fromkeys(choices, scenario.finish_reason),
        done="unterminated" not in scenario.formats,
    )


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _usage(request: dict[str, Any], completions: list[str]) -> dict[str, int]:
    messages = request.get("messages")
    prompt = tokens.count_prompt(messages if isinstance(messages, list) else [])
    completion = sum(tokens.count(text) for text in completions)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completions(scenario: Scenario) -> list[str]:
    """What each choice generates, as token counting sees it: its content, then arguments."""
    want = expected(scenario)
    return [
        want.content[i] + "".join(call.arguments for call in want.tool_calls[i])
        for i in range(scenario.choices)
    ]


def answer(request: dict[str, Any], scenario: Scenario, request_id: str) -> Plan:
    """The plan of a correct answer to `request`, before any fault."""
    model = str(request.get("model", ""))
    metadata: dict[str, str | int] = {
        "id": request_id,
        "object": CHUNK_OBJECT,
        "created": CREATED,
        "model": model,
    }
    plan = Plan(
        status=200,
        content_type="text/event-stream; charset=utf-8",
        frames=(),
        extra_headers=(("cache-control", "no-cache"),),
        eol=EOLS.get(scenario.eol, "\n"),
        metadata=tuple(metadata.items()),
        choices=scenario.choices,
    )
    if request.get("stream") is not True:
        document = _whole(request, scenario, request_id, model)
        return plan.replace(content_type="application/json", extra_headers=(), frames=document)
    dialect = Dialect(scenario)
    steps = content.steps(scenario)
    answer_at = content.first_answer(steps)
    frames: list[Frame] = []
    for index, step in enumerate(steps):
        if index == answer_at and "empty_data" in scenario.formats:
            frames.append(Frame(FrameKind.EMPTY, dialect.empty()))
        choice = {"index": step.choice, "delta": step.delta, "finish_reason": step.finish}
        data = dialect.event(
            _dumps({**metadata, "choices": [choice]}), inner_comment=index == answer_at
        )
        arguments: Pieces = ((step.choice, step.arguments),) if step.arguments else ()
        frames.append(Frame(step.kind, data, ((step.choice, step.content),), arguments))
    options = request.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        usage: dict[str, Any] = {
            **metadata,
            "choices": [],
            "usage": _usage(request, _completions(scenario)),
        }
        frames.append(Frame(FrameKind.USAGE, dialect.event(_dumps(usage))))
    frames.append(Frame(FrameKind.DONE, dialect.event("[DONE]", is_json=False, last=True)))
    return plan.replace(frames=tuple(frames))


def _whole(
    request: dict[str, Any], scenario: Scenario, request_id: str, model: str
) -> tuple[Frame]:
    """The non-streaming answer: one `chat.completion` document (formats do not apply)."""
    want = expected(scenario)
    choices = []
    for index in range(scenario.choices):
        message: dict[str, Any] = {"role": "assistant", "content": want.content[index]}
        if want.tool_calls[index]:
            message["content"] = want.content[index] or None
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in want.tool_calls[index]
            ]
        choices.append(
            {"index": index, "message": message, "finish_reason": want.finish_reasons[index]}
        )
    document = {
        "id": request_id,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": choices,
        "usage": _usage(request, _completions(scenario)),
    }
    texts = tuple(want.content.items())
    arguments = tuple(
        (index, "".join(call.arguments for call in calls))
        for index, calls in want.tool_calls.items()
        if calls
    )
    return (Frame(FrameKind.DOCUMENT, _dumps(document).encode(), texts, arguments),)
