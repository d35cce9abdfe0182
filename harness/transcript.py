"""Transcript A: what the client saw of one exchange, byte for byte, with arrival times.

A transcript holds the raw facts (status, headers, every body chunk and when it arrived,
how the transport ended) and derives the rest from them: the SSE events, the chat chunks
they carry, the assembled content of each choice, the in-band errors, and the outcome.

Outcomes, from the client's point of view:

    done         the stream ended after `data: [DONE]`
    error        the stream carried an in-band error event and ended without `[DONE]`
    truncated    the body ended cleanly with neither `[DONE]` nor an error event
    reset        the transport failed mid-body (a reset, a broken chunked encoding)
    timed_out    the client gave up waiting (the proxy went silent)
    left         the client hung up on purpose
    http_error   the status was not 2xx
    complete     a non-streamed answer arrived whole
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from streamproof.harness.sse import Event, SSEDecoder


class Transport(enum.Enum):
    """How the body's transport ended, before any interpretation."""

    EOF = "eof"  # the body ended as HTTP says it should
    RESET = "reset"
    TIMED_OUT = "timed_out"
    LEFT = "left"  # we closed it


class Outcome(enum.Enum):
    DONE = "done"
    ERROR = "error"
    TRUNCATED = "truncated"
    RESET = "reset"
    TIMED_OUT = "timed_out"
    LEFT = "left"
    HTTP_ERROR = "http_error"
    COMPLETE = "complete"
    NO_RESPONSE = "no_response"


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # time.perf_counter()
    data: bytes


@dataclass(frozen=True, slots=True)
class TimedEvent:
    at: float  # arrival time of the chunk that completed the event
    event: Event


def payload_of(data: str) -> Any:
    """An event's data as a payload: `DONE` for `[DONE]`, its JSON value, else `INVALID`."""
    if data == "[DONE]":
        return DONE
    try:
        return json.loads(data)
    except ValueError:
        return INVALID


@dataclass
class Transcript:
    """One exchange with the system under test, as the client recorded it."""

    request: dict[str, Any]
    sent_at: float
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    headers_at: float | None = None
    chunks: list[Arrival] = field(default_factory=list)
    transport: Transport = Transport.EOF
    transport_error: str = ""
    ended_at: float | None = None

    @property
    def streamed(self) -> bool:
        """The answer is an event stream: asked for as one, or served as one."""
        kind = self.headers.get("content-type", "").lower()
        return self.request.get("stream") is True or kind.startswith("text/event-stream")

    @property
    def body(self) -> bytes:
        return b"".join(chunk.data for chunk in self.chunks)

    @property
    def first_byte_at(self) -> float | None:
        return self.chunks[0].at if self.chunks else None

    @cached_property
    def _decoded(self) -> tuple[list[TimedEvent], bool]:
        decoder = SSEDecoder()
        events: list[TimedEvent] = []
        for chunk in self.chunks:
            events += [TimedEvent(chunk.at, event) for event in decoder.feed(chunk.data)]
        end = self.ended_at if self.ended_at is not None else self.sent_at
        events += [TimedEvent(end, event) for event in decoder.close()]
        return events, decoder.unterminated

    @property
    def events(self) -> list[TimedEvent]:
        """The SSE events of the body (meaningful when the body is an event stream)."""
        return self._decoded[0]

    @property
    def unterminated_tail(self) -> bool:
        """The body ended inside an event that was never dispatched."""
        return self._decoded[1]

    @cached_property
    def payloads(self) -> list[tuple[TimedEvent, Any]]:
        """Each data event with its JSON payload (`DONE` for `[DONE]`, `INVALID` if not JSON)."""
        return [(timed, payload_of(timed.event.data)) for timed in self.events]

    @property
    def done_count(self) -> int:
        return sum(1 for _, payload in self.payloads if payload is DONE)

    @property
    def error_events(self) -> list[TimedEvent]:
        return [timed for timed, payload in self.payloads if is_error(timed.event, payload)]

    @property
    def chat_chunks(self) -> list[tuple[TimedEvent, dict[str, Any]]]:
        """Payloads that are chat completion chunks (objects with `choices`), in order."""
        return [
            (timed, payload)
            for timed, payload in self.payloads
            if isinstance(payload, dict) and isinstance(payload.get("choices"), list)
        ]

    def content(self, index: int = 0) -> str:
        """One choice's content: its deltas joined in arrival order, or, for an answer that
        was not streamed, its message."""
        if not self.streamed:
            return _message_content(self.json_body, index)
        return "".join(self.deltas(index))

    def deltas(self, index: int = 0, field: str = "content") -> list[str]:
        """One choice's non-null `field` deltas (`content`, `reasoning_content`), in order."""
        parts: list[str] = []
        for _, chunk in self.chat_chunks:
            for choice in chunk["choices"]:
                if isinstance(choice, dict) and choice.get("index", 0) == index:
                    delta = choice.get("delta")
                    if isinstance(delta, dict) and isinstance(delta.get(field), str):
                        parts.append(delta[field])
        return parts

    def reasoning(self, index: int = 0) -> str:
        """One choice's `reasoning_content` (as Kimi and DeepSeek send it): its deltas
        joined, or a whole answer's message's."""
        if not self.streamed:
            return _message_content(self.json_body, index, "reasoning_content")
        return "".join(self.deltas(index, "reasoning_content"))

    def _choices(self) -> list[tuple[TimedEvent, dict[str, Any]]]:
        return [
            (timed, choice)
            for timed, chunk in self.chat_chunks
            for choice in chunk["choices"]
            if isinstance(choice, dict)
        ]

    @property
    def choice_indices(self) -> list[int]:
        """The choice indices seen, in order of first appearance."""
        seen: dict[int, None] = {}
        for _, choice in self._choices():
            index = choice.get("index", 0)
            if isinstance(index, int):
                seen.setdefault(index)
        return list(seen)

    def tool_calls(self, index: int = 0) -> list[tuple[str, str, str]]:
        """One choice's tool calls, reassembled: (id, function name, arguments string)."""
        calls: dict[int, list[str]] = {}
        for _, choice in self._choices():
            delta = choice.get("delta")
            if choice.get("index", 0) != index or not isinstance(delta, dict):
                continue
            for call in delta.get("tool_calls") or []:
                if not isinstance(call, dict):
                    continue
                slot = calls.setdefault(call.get("index", 0), ["", "", ""])
                function = call.get("function")
                if not isinstance(function, dict):
                    function = {}
                slot[0] = call.get("id") or slot[0]
                slot[1] = function.get("name") or slot[1]
                slot[2] += function.get("arguments") or ""
        return [(c[0], c[1], c[2]) for _, c in sorted(calls.items())]

    def finish_reason(self, index: int = 0) -> str | None:
        """The last non-null finish_reason of one choice."""
        reasons = [
            choice["finish_reason"]
            for _, choice in self._choices()
            if choice.get("index", 0) == index and isinstance(choice.get("finish_reason"), str)
        ]
        return reasons[-1] if reasons else None

    def delta_sequence(self) -> list[tuple[int, str]]:
        """Every non-empty content delta as (choice index, text), in arrival order."""
        return [
            (choice.get("index", 0), choice["delta"]["content"])
            for _, choice in self._choices()
            if isinstance(choice.get("delta"), dict)
            and isinstance(choice["delta"].get("content"), str)
            and choice["delta"]["content"]
        ]

    def usages(self) -> list[tuple[str, dict[str, Any]]]:
        """Every usage object the client saw, in order, with where it sat: "final" (a chunk
        with `choices: []`), "chunk" (top level of a chunk with choices), "choice" (inside
        a choice, as Moonshot/Kimi put it) or "body" (a non-streamed answer)."""
        if not self.streamed:
            body = self.json_body
            usage = body.get("usage") if isinstance(body, dict) else None
            return [("body", usage)] if isinstance(usage, dict) else []
        found: list[tuple[str, dict[str, Any]]] = []
        for _, chunk in self.chat_chunks:
            if isinstance(chunk.get("usage"), dict):
                found.append(("final" if not chunk["choices"] else "chunk", chunk["usage"]))
            for choice in chunk["choices"]:
                if isinstance(choice, dict) and isinstance(choice.get("usage"), dict):
                    found.append(("choice", choice["usage"]))
        return found

    def content_events(self) -> list[TimedEvent]:
        """The events that carried a non-empty content delta."""
        return [
            timed
            for timed, chunk in self.chat_chunks
            if any(
                isinstance(c, dict)
                and isinstance(c.get("delta"), dict)
                and c["delta"].get("content")
                for c in chunk["choices"]
            )
        ]

    @property
    def finish_reasons(self) -> list[str]:
        return [
            choice["finish_reason"]
            for _, chunk in self.chat_chunks
            for choice in chunk["choices"]
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str)
        ]

    @property
    def json_body(self) -> Any:
        """The body as one JSON document (non-streaming answers and error responses)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return INVALID

    @property
    def outcome(self) -> Outcome:
        if self.status is None:
            return Outcome.NO_RESPONSE
        if not 200 <= self.status < 300:
            return Outcome.HTTP_ERROR
        if self.transport is Transport.RESET:
            return Outcome.RESET
        if self.transport is Transport.TIMED_OUT:
            return Outcome.TIMED_OUT
        if self.transport is Transport.LEFT:
            return Outcome.LEFT
        if not self.streamed:
            return Outcome.COMPLETE
        if self.done_count:
            return Outcome.DONE
        if self.error_events:
            return Outcome.ERROR
        return Outcome.TRUNCATED

    def summary(self) -> str:
        """A few lines for a report: status, outcome, counts, timings."""
        error = f" ({self.transport_error})" if self.transport_error else ""
        lines = [
            f"status {self.status} · outcome {self.outcome.value} · "
            f"transport {self.transport.value}{error}",
            f"{len(self.chunks)} reads, {len(self.body)} bytes, {len(self.events)} events, "
            f"{len(self.error_events)} error events, {self.done_count} [DONE]",
        ]
        if self.first_byte_at is not None:
            lines.append(f"first byte after {1000 * (self.first_byte_at - self.sent_at):.1f} ms")
        return "\n".join(lines)


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


DONE: Any = _Marker("DONE")
INVALID: Any = _Marker("INVALID")


def _message_content(body: Any, index: int, field: str = "content") -> str:
    choices = body.get("choices") if isinstance(body, dict) else None
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, dict) and choice.get("index", 0) == index:
            message = choice.get("message")
            if isinstance(message, dict) and isinstance(message.get(field), str):
                return str(message[field])
    return ""


def is_error(event: Event, payload: Any) -> bool:
    """In-band errors come in several shapes; all of them count."""
    if event.event == "error":
        return True
    if not isinstance(payload, dict):
        return False
    if "error" in payload or payload.get("object") == "error":
        return True
    choices = payload.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") == "error" for c in choices
    )
