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

Usage figures are exact (`tokens.py`): prompt tokens by the OpenAI cookbook's formula over
the request's messages, completion tokens on each choice's joined text (its content, then
its tool-call arguments), summed over the choices; `expected_usage` gives them without a
request, the same for a streamed and a whole answer. Where the usage goes, and whether it
goes at all, is the scenario's usage dialect (`usage-…`); a scenario with
`reject_stream_options` refuses any request that has `stream_options` with a 400.

With `reasoning-N`, each choice streams N `{"reasoning_content": ...}` deltas after its role
chunk and before its content and tool calls, as Kimi K2 thinking and DeepSeek R1 do; a whole
answer has `message.reasoning_content`. Its tokens (counted on the joined reasoning, apart
from the answer) are part of `completion_tokens`, and the usage says how many in
`completion_tokens_details.reasoning_tokens`, as DeepSeek reports them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamproof.fake_providers import content, tokens
from streamproof.fake_providers.content import ToolCall
from streamproof.fake_providers.formats import Dialect
from streamproof.fake_providers.plan import Frame, FrameKind, Pieces, Plan, Usage
from streamproof.fake_providers.scenario import EOLS, Scenario
from streamproof.fake_providers.text import VOCABULARY, deltas

CREATED = 1_700_000_000
CHUNK_OBJECT = "chat.completion.chunk"
# The messages the harness sends by default (`harness.sut.DEFAULT_MESSAGES` says the same).
DEFAULT_MESSAGES: tuple[dict[str, str], ...] = (
    {"role": "user", "content": "Say something in a few languages."},
)
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
STREAM_OPTIONS_REJECTED = {
    "error": {
        "message": "stream_options is not supported",
        "type": "invalid_request_error",
        "code": "unsupported_parameter",
    }
}

__all__ = [
    "CHUNK_OBJECT",
    "CREATED",
    "DEFAULT_MESSAGES",
    "STREAM_OPTIONS_REJECTED",
    "VOCABULARY",
    "ZERO_USAGE",
    "Expected",
    "ToolCall",
    "answer",
    "chunk_id",
    "deltas",
    "expected",
    "expected_usage",
]


@dataclass(frozen=True)
class Expected:
    """What a correct relay of the clean answer to a scenario carries, choice by choice.

    This is the answer before any fault: what a clean attempt (a retry after `first-K`, or
    a scenario without faults) sends. What a faulted attempt actually wrote is in its
    journal (`Attempt.content_written_by_choice()`, `Attempt.usage_written`).

    `usage` is the exact figure for a request with `DEFAULT_MESSAGES`; for other messages,
    `expected_usage(scenario, messages)`. It is the truth whatever the dialect: with
    `usage-none` the wire carries no usage, with `usage-zero` zeros.
    """

    id_prefix: str  # every chunk's `id` is this followed by the attempt number
    object: str
    created: int
    model: str  # the model name the harness sends: `scenario.model`
    content: dict[int, str]  # choice index -> the whole content
    tool_calls: dict[int, tuple[ToolCall, ...]]  # choice index -> (id, name, arguments)
    finish_reasons: dict[int, str]  # choice index -> finish_reason
    done: bool  # whether the upstream's `data: [DONE]` is dispatched (not with unterminated)
    usage: dict[str, int]  # the exact figures for DEFAULT_MESSAGES (`expected_usage`)
    usage_dialect: str  # where the upstream puts its usage: one of USAGE_DIALECTS
    # choice index -> the whole `reasoning_content` (empty without `reasoning-N`)
    reasoning: dict[int, str] = dataclasses.field(default_factory=dict)
    reasoning_tokens: int = 0  # `completion_tokens_details.reasoning_tokens` (0: not reported)

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
    texts, calls = _answer(scenario)
    choices = range(scenario.choices)
    return Expected(
        id_prefix=chunk_id(scenario, 0)[:-1],
        object=CHUNK_OBJECT,
        created=CREATED,
        model=scenario.model,
        content=texts,
        tool_calls=calls,
        finish_reasons=dict.fromkeys(choices, scenario.finish_reason),
        done="unterminated" not in scenario.formats,
        usage=expected_usage(scenario),
        usage_dialect=scenario.usage_dialect,
        reasoning=dict.fromkeys(choices, _reasoning(scenario)) if scenario.reasoning else {},
        reasoning_tokens=_reasoning_tokens(scenario),
    )


def expected_usage(
    scenario: Scenario, messages: Sequence[Any] = DEFAULT_MESSAGES
) -> dict[str, int]:
    """The exact usage of the clean answer to `scenario` for a request with `messages`.

    The same for a streamed and a whole answer. It is the truth, not what the wire says:
    `usage-none` sends no usage and `usage-zero` sends zeros, whatever the answer was.
    """
    return _figures(tokens.count_prompt(messages), _completion_tokens(scenario))


def _answer(scenario: Scenario) -> tuple[dict[int, str], dict[int, tuple[ToolCall, ...]]]:
    """Each choice's whole content and tool calls."""
    parts = content.content_deltas(scenario)
    choices = range(scenario.choices)
    texts = {i: "".join(content.rotated(parts, i)) for i in choices}
    calls: dict[int, tuple[ToolCall, ...]] = {
        i: (content.tool_call(i),) if scenario.tools is not None else () for i in choices
    }
    return texts, calls


def _completion_tokens(scenario: Scenario) -> int:
    """Tokens of what each choice generates (its content, then its tool-call arguments),
    counted on each choice's joined text, summed over the choices; plus its reasoning's."""
    texts, calls = _answer(scenario)
    answers = (tokens.count(texts[i] + "".join(c.arguments for c in calls[i])) for i in texts)
    return sum(answers) + _reasoning_tokens(scenario)


def _reasoning(scenario: Scenario) -> str:
    """Every choice's whole reasoning (the same for each), "" without `reasoning-N`."""
    return "".join(content.reasoning_deltas(scenario))


def _reasoning_tokens(scenario: Scenario) -> int:
    """The reasoning tokens of the whole answer: each choice's, counted joined, summed."""
    reasoning = _reasoning(scenario)
    return tokens.count(reasoning) * scenario.choices if reasoning else 0


def _wire_usage(usage: dict[str, int], reasoning_tokens: int) -> dict[str, Any]:
    """A usage object as written: with `completion_tokens_details` when there is reasoning
    (and the figures are not the zeros of `usage-zero`)."""
    if not reasoning_tokens or not usage["completion_tokens"]:
        return usage
    return {**usage, "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}}


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


# A JSON string as `_dumps` writes it (ensure_ascii=False); the C encoder where there is one.
_string = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring


class _Chunks:
    """Writes the chunks of one streamed answer, the same text as `_dumps` of the chunk.

    A long answer is mostly chunks that differ only in their delta: the metadata is
    encoded once, and a `{"content": "..."}` delta is one string to encode. Anything else
    goes through `_dumps` piece by piece, in the same key order as the chunk dict.
    """

    def __init__(self, metadata: dict[str, str | int]) -> None:
        self._head = _dumps(metadata)[:-1] + ',"choices":[{"index":'  # without its "}"

    def text(
        self,
        index: int,
        delta: dict[str, Any],
        finish: str | None,
        *,
        choice_usage: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> str:
        content = delta.get("content")
        if len(delta) == 1 and isinstance(content, str):
            delta_text = '{"content":' + _string(content) + "}"
        else:
            delta_text = _dumps(delta)
        if choice_usage is None and usage is None:  # the common chunk, in one piece
            reason = "null" if finish is None else _dumps(finish)
            return f'{self._head}{index},"delta":{delta_text},"finish_reason":{reason}}}]}}'
        parts = [
            self._head,
            str(index),
            ',"delta":',
            delta_text,
            ',"finish_reason":',
            "null" if finish is None else _dumps(finish),
        ]
        if choice_usage is not None:
            parts += [',"usage":', _dumps(choice_usage)]
        parts.append("}]")
        if usage is not None:
            parts += [',"usage":', _dumps(usage)]
        parts.append("}")
        return "".join(parts)


def _figures(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _messages(request: dict[str, Any]) -> list[Any]:
    messages = request.get("messages")
    return messages if isinstance(messages, list) else []


def _include_usage(request: dict[str, Any]) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _final_usage(request: dict[str, Any], scenario: Scenario) -> dict[str, int] | None:
    """The usage this answer reports as its final figure, or None if it reports none."""
    dialect = scenario.usage_dialect
    streamed = request.get("stream") is True
    if dialect == "none" or (streamed and dialect != "always" and not _include_usage(request)):
        return None
    if dialect == "zero":
        return dict(ZERO_USAGE)
    return expected_usage(scenario, _messages(request))


def _items(usage: dict[str, int] | None) -> Usage:
    return tuple(usage.items()) if usage else ()


# Chunks from which an answer is built with the cyclic garbage collector paused: everything
# the build allocates lives until the answer is written, so collections in the middle of it
# (a third of the time of a 100,000-chunk answer) only walk live objects in vain.
BIG_ANSWER = 1000


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic GC, if it runs, for the duration. It is process-wide: in a test
    process that also pauses collection for other threads, for the moment of the build."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def answer(request: dict[str, Any], scenario: Scenario, request_id: str) -> Plan:
    """The plan of a correct answer to `request`, before any fault."""
    if scenario.chunks * scenario.choices < BIG_ANSWER:
        return _answer_plan(request, scenario, request_id)
    with _collector_paused():
        return _answer_plan(request, scenario, request_id)


def stream_plan(scenario: Scenario, metadata: Mapping[str, Any], **fields: Any) -> Plan:
    """The start of every API's answer: a 200 event stream, not cached, in the scenario's
    line ending, its metadata in every event; `fields` set the rest of the plan."""
    return Plan(
        status=200,
        content_type="text/event-stream; charset=utf-8",
        frames=(),
        extra_headers=(("cache-control", "no-cache"),),
        eol=EOLS.get(scenario.eol, "\n"),
        metadata=tuple(metadata.items()),
        **fields,
    )


def _answer_plan(request: dict[str, Any], scenario: Scenario, request_id: str) -> Plan:
    model = str(request.get("model", ""))
    metadata: dict[str, str | int] = {
        "id": request_id,
        "object": CHUNK_OBJECT,
        "created": CREATED,
        "model": model,
    }
    plan = stream_plan(scenario, metadata, choices=scenario.choices)
    if scenario.reject_stream_options and "stream_options" in request:
        rejection = Frame(FrameKind.DOCUMENT, _dumps(STREAM_OPTIONS_REJECTED).encode())
        return plan.replace(
            status=400, content_type="application/json", extra_headers=(), frames=(rejection,)
        )
    usage = _final_usage(request, scenario)
    if request.get("stream") is not True:
        whole = _whole(scenario, metadata, usage)
        return plan.replace(content_type="application/json", extra_headers=(), frames=whole)
    dialect = Dialect(scenario)
    steps = content.steps(scenario)
    answer_at = content.first_answer(steps)
    running = _Running(usage["prompt_tokens"] if usage else 0, scenario.choices)
    where = scenario.usage_dialect if usage is not None else "none"
    thinking = _reasoning_tokens(scenario)
    frames: list[Frame] = []
    chunks = _Chunks(metadata)
    for index, step in enumerate(steps):
        if index == answer_at and "empty_data" in scenario.formats:
            frames.append(Frame(FrameKind.EMPTY, dialect.empty()))
        # The chunk is {**metadata, "choices": [{"index", "delta", "finish_reason"}]}, with
        # "usage" last in the choice (inchoice) or in the chunk (cumulative).
        carried: dict[str, int] | None = None
        if where == "cumulative":
            carried = running.add(step.choice, step.content + step.arguments, step.reasoning)
            counted = _wire_usage(carried, running.reasoning_tokens())
            text = chunks.text(step.choice, step.delta, step.finish, usage=counted)
        elif where == "inchoice" and index == len(steps) - 1:
            carried = usage
            wire = _wire_usage(usage, thinking) if usage else None
            text = chunks.text(step.choice, step.delta, step.finish, choice_usage=wire)
        else:
            text = chunks.text(step.choice, step.delta, step.finish)
        data = dialect.event(text, inner_comment=index == answer_at)
        arguments: Pieces = ((step.choice, step.arguments),) if step.arguments else ()
        contents: Pieces = ((step.choice, step.content),)
        reasoning: Pieces = ((step.choice, step.reasoning),) if step.reasoning else ()
        frame = Frame(step.kind, data, contents, arguments, _items(carried), reasoning)
        frames.append(frame)
    if where in ("final", "always", "zero") and usage is not None:
        wire_usage = _wire_usage(usage, thinking)
        document: dict[str, Any] = {**metadata, "choices": [], "usage": wire_usage}
        frames.append(Frame(FrameKind.USAGE, dialect.event(_dumps(document)), usage=_items(usage)))
    frames.append(Frame(FrameKind.DONE, dialect.event("[DONE]", is_json=False, last=True)))
    return plan.replace(frames=tuple(frames))


class _Running:
    """The running usage of a stream: each choice's text (and reasoning) so far, counted
    joined."""

    def __init__(self, prompt: int, choices: int) -> None:
        self.prompt = prompt
        self.texts = [""] * choices
        self.counts = [0] * choices
        self.thoughts = [""] * choices
        self.thought_counts = [0] * choices

    def add(self, choice: int, text: str, reasoning: str = "") -> dict[str, int]:
        """Add what a chunk generated; the usage so far, as a chunk carries it."""
        if text:
            self.texts[choice] += text
            self.counts[choice] = tokens.count(self.texts[choice])
        if reasoning:
            self.thoughts[choice] += reasoning
            self.thought_counts[choice] = tokens.count(self.thoughts[choice])
        return _figures(self.prompt, sum(self.counts) + self.reasoning_tokens())

    def reasoning_tokens(self) -> int:
        return sum(self.thought_counts)


def _whole(
    scenario: Scenario, metadata: dict[str, str | int], usage: dict[str, int] | None
) -> tuple[Frame]:
    """The non-streaming answer: one `chat.completion` document (formats do not apply)."""
    texts, calls = _answer(scenario)
    thought = _reasoning(scenario)
    choices = []
    for index in range(scenario.choices):
        message: dict[str, Any] = {"role": "assistant", "content": texts[index]}
        if thought:
            message["reasoning_content"] = thought
        if calls[index]:
            message["content"] = texts[index] or None
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in calls[index]
            ]
        choices.append(
            {"index": index, "message": message, "finish_reason": scenario.finish_reason}
        )
    document: dict[str, Any] = {**metadata, "object": "chat.completion", "choices": choices}
    if usage is not None:
        document["usage"] = _wire_usage(usage, _reasoning_tokens(scenario))
    arguments = tuple(
        (index, "".join(call.arguments for call in made)) for index, made in calls.items() if made
    )
    data = _dumps(document).encode()
    reasoning = tuple((index, thought) for index in texts) if thought else ()
    contents = tuple(texts.items())
    return (Frame(FrameKind.DOCUMENT, data, contents, arguments, _items(usage), reasoning),)
