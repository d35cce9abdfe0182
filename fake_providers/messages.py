"""The Anthropic Messages API (`POST /v1/messages`): the answer to a scenario, and `expected`.

The same scenario as in chat completions says the same things: `chunks-N` text deltas of
the same text, `tools-N` one tool call whose input JSON comes in N fragments,
`reasoning-N` N thinking deltas, `finish-REASON` the stop reason. A streamed answer is the
event sequence of Anthropic's streaming documentation, each event an `event: TYPE` line and
a `data:` line whose JSON has the same `type`:

    message_start          the message, empty, with `usage.input_tokens` (and 1 output token)
    content_block_start    index 0: the first block
    ping                   where the API sends one: after the first block's start
    content_block_delta    thinking_delta... then one signature_delta   (with reasoning-N)
    content_block_stop
    content_block_start    the text block: text_delta...
    ...
    content_block_start    the tool_use block (id, name, input {}): input_json_delta...
    content_block_stop
    message_delta          stop_reason, and `usage.output_tokens`: the cumulative total
    message_stop           the end of the stream (there is no `[DONE]`)

Blocks come in that order, thinking, text, tool use, each numbered by `index`; the text
block is there when there is text, or when there is no other block. `ping-N` puts one more
`ping` after event N, wherever that is (inside a content block, say). The stop reason maps
chat's finish reasons: `stop` is `end_turn`, `length` `max_tokens`, `tool_calls` and
`function_call` `tool_use`, `content_filter` `refusal`.

Usage is exact (`tokens.py`): `input_tokens` is the chat formula over the request's
`system` and `messages` (text blocks read as text), `output_tokens` the tokens of each
block's whole text (thinking, text, tool input JSON), summed. Not streamed (`"stream"` false
or absent), the answer is one `message` object with every block and the usage.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from streamproof.fake_providers import content, tokens
from streamproof.fake_providers.chat import stream_plan
from streamproof.fake_providers.formats import Dialect
from streamproof.fake_providers.plan import MESSAGES, Frame, FrameKind, Pieces, Plan
from streamproof.fake_providers.scenario import Scenario

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
TOOL_ID_PREFIX = "toolu_streamproof_"


class Block(NamedTuple):
    """One content block as a client reassembles it.

    `text` is a text block's text, a thinking block's thinking, or a tool_use block's input
    JSON text (the `partial_json` fragments joined); `signature` a thinking block's; `id`
    and `name` a tool_use block's.
    """

    type: str  # "thinking", "text" or "tool_use"
    text: str
    signature: str = ""
    id: str = ""
    name: str = ""

    @property
    def input(self) -> Any:
        """A tool_use block's input, parsed."""
        return json.loads(self.text)


@dataclass(frozen=True)
class Expected:
    """What a correct relay of the clean answer to a scenario carries, block by block.

    `usage` is in the API's own fields, exact for a request with `DEFAULT_MESSAGES`
    (`expected_usage` for others): `input_tokens` as `message_start` reports it,
    `output_tokens` as the last `message_delta` does.
    """

    id_prefix: str  # the message `id` is this followed by the attempt number
    model: str
    blocks: tuple[Block, ...]
    stop_reason: str
    usage: dict[str, int]

    def message_id(self, attempt: int) -> str:
        return f"{self.id_prefix}{attempt}"

    @property
    def text(self) -> str:
        """The text of every text block, joined."""
        return "".join(block.text for block in self.blocks if block.type == "text")

    @property
    def thinking(self) -> str:
        return "".join(block.text for block in self.blocks if block.type == "thinking")


def message_id(scenario: Scenario, attempt: int) -> str:
    """The `id` of the message of an attempt."""
    return f"msg_{scenario.nonce or 'fake'}_{attempt}"


def signature(thinking: str) -> str:
    """The signature of a thinking block: opaque to a client, but fixed by the thinking."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest() * 2).decode()


def blocks(scenario: Scenario) -> tuple[Block, ...]:
    """The clean answer's blocks, in order."""
    made: list[Block] = []
    if scenario.reasoning:
        thinking = "".join(content.reasoning_deltas(scenario))
        made.append(Block("thinking", thinking, signature(thinking)))
    text = "".join(content.content_deltas(scenario))
    if text or scenario.tools is None:
        made.append(Block("text", text))
    if scenario.tools is not None:
        call = content.tool_call(0)
        made.append(Block("tool_use", call.arguments, id=f"{TOOL_ID_PREFIX}0", name=call.name))
    return tuple(made)


def stop_reason(scenario: Scenario) -> str:
    return STOP_REASONS[scenario.finish_reason]


def expected(scenario: Scenario, messages: Any = None) -> Expected:
    """What a correct relay of the clean answer to `scenario` carries (no sockets)."""
    return Expected(
        id_prefix=message_id(scenario, 0)[:-1],
        model=scenario.model,
        blocks=blocks(scenario),
        stop_reason=stop_reason(scenario),
        usage=expected_usage(scenario, messages),
    )


def expected_usage(scenario: Scenario, messages: Any = None, system: Any = None) -> dict[str, int]:
    """`input_tokens` and `output_tokens` of the clean answer, for a request's messages
    (`DEFAULT_MESSAGES` when None) and system prompt."""
    return {
        "input_tokens": input_tokens(messages, system),
        "output_tokens": sum(tokens.count(block.text) for block in blocks(scenario) if block.text),
    }


def input_tokens(messages: Any, system: Any = None) -> int:
    """The chat formula over the system prompt (as a first message) and the messages, each
    message's text blocks read as its text."""
    from streamproof.fake_providers.chat import DEFAULT_MESSAGES

    listed = DEFAULT_MESSAGES if messages is None else messages
    plain = [{"role": "system", "content": _text_of(system)}] if system else []
    for message in listed if isinstance(listed, list | tuple) else []:
        if isinstance(message, dict):
            plain.append({**message, "content": _text_of(message.get("content"))})
    return tokens.count_prompt(plain)


def _text_of(value: Any) -> str:
    """A content (or system) value as text: a string, or its text blocks' text joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part["text"]
            for part in value
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def answer(request: dict[str, Any], scenario: Scenario, attempt: int) -> Plan:
    """The plan of a correct answer to a Messages `request`, before any fault."""
    model = str(request.get("model", ""))
    usage = expected_usage(scenario, request.get("messages"), request.get("system"))
    made = blocks(scenario)
    reason = stop_reason(scenario)
    message: dict[str, Any] = {
        "id": message_id(scenario, attempt),
        "type": "message",
        "role": "assistant",
        "model": model,
    }
    plan = stream_plan(scenario, message, api=MESSAGES)
    if request.get("stream") is not True:
        document = {
            **message,
            "content": [_whole_block(block) for block in made],
            "stop_reason": reason,
            "stop_sequence": None,
            "usage": usage,
        }
        frame = Frame(
            FrameKind.DOCUMENT,
            _dumps(document).encode(),
            deltas=((0, _joined(made, "text")),),
            arguments=((0, _joined(made, "tool_use")),) if scenario.tools is not None else (),
            usage=tuple(usage.items()),
            reasoning=((0, _joined(made, "thinking")),) if scenario.reasoning else (),
        )
        return plan.replace(content_type="application/json", extra_headers=(), frames=(frame,))
    return plan.replace(frames=tuple(_Stream(scenario, Dialect(scenario)).frames(message, usage)))


def _joined(made: tuple[Block, ...], kind: str) -> str:
    return "".join(block.text for block in made if block.type == kind)


def _whole_block(block: Block) -> dict[str, Any]:
    if block.type == "thinking":
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return {"type": "text", "text": block.text}


class _Stream:
    """Writes the events of one streamed answer, in order, with the dialect's formats."""

    def __init__(self, scenario: Scenario, dialect: Dialect) -> None:
        self.scenario = scenario
        self.dialect = dialect
        self.out: list[Frame] = []
        self.answer_started = False

    def event(self, kind: FrameKind, document: dict[str, Any], **pieces: Any) -> None:
        inner = False
        if kind in (FrameKind.CONTENT, FrameKind.TOOL, FrameKind.REASONING):
            inner, self.answer_started = not self.answer_started, True
            if inner and "empty_data" in self.scenario.formats:
                self.out.append(Frame(FrameKind.EMPTY, self.dialect.empty()))
        last = document["type"] == "message_stop"
        event = str(document["type"])
        data = self.dialect.event(_dumps(document), inner_comment=inner, last=last, event=event)
        self.out.append(Frame(kind, data, event=event, **pieces))
        if self.scenario.ping is not None and len(self.out) == self.scenario.ping:
            self.ping()

    def ping(self) -> None:
        data = self.dialect.event(_dumps({"type": "ping"}), event="ping")
        self.out.append(Frame(FrameKind.PING, data, event="ping"))

    def frames(self, message: dict[str, Any], usage: dict[str, int]) -> list[Frame]:
        scenario = self.scenario
        start_usage = {
            "input_tokens": usage["input_tokens"],
            "output_tokens": min(1, usage["output_tokens"]),
        }
        opening = {
            **message,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        self.event(
            FrameKind.ROLE,
            {"type": "message_start", "message": opening},
            usage=tuple(start_usage.items()),
        )
        fragments = content.argument_fragments(scenario.tools) if scenario.tools else []
        for index, block in enumerate(blocks(scenario)):
            self.event(
                FrameKind.BLOCK,
                {"type": "content_block_start", "index": index, "content_block": _opened(block)},
            )
            if index == 0:
                self.ping()  # where the API sends its own
            if block.type == "thinking":
                for thought in content.reasoning_deltas(scenario):
                    delta = {"type": "thinking_delta", "thinking": thought}
                    self.delta(FrameKind.REASONING, index, delta, reasoning=((0, thought),))
                delta = {"type": "signature_delta", "signature": block.signature}
                self.delta(FrameKind.BLOCK, index, delta)
            elif block.type == "text":
                for part in content.content_deltas(scenario):
                    delta = {"type": "text_delta", "text": part}
                    self.delta(FrameKind.CONTENT, index, delta, deltas=((0, part),))
            else:
                for fragment in fragments:
                    delta = {"type": "input_json_delta", "partial_json": fragment}
                    self.delta(FrameKind.TOOL, index, delta, arguments=((0, fragment),))
            self.event(FrameKind.BLOCK, {"type": "content_block_stop", "index": index})
        closing = {"stop_reason": stop_reason(scenario), "stop_sequence": None}
        final = {"output_tokens": usage["output_tokens"]}
        self.event(
            FrameKind.FINISH,
            {"type": "message_delta", "delta": closing, "usage": final},
            usage=tuple(final.items()),
        )
        self.event(FrameKind.DONE, {"type": "message_stop"})
        return self.out

    def delta(self, kind: FrameKind, index: int, delta: dict[str, Any], **pieces: Pieces) -> None:
        self.event(kind, {"type": "content_block_delta", "index": index, "delta": delta}, **pieces)


def _opened(block: Block) -> dict[str, Any]:
    """A block as `content_block_start` announces it: empty."""
    if block.type == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
    return {"type": "text", "text": ""}
