"""The typed event streams of the Anthropic Messages API and the OpenAI Responses API:
sans-IO, bytes in, steps out, with the chat check's rules (see `proxy.relay`).

Both APIs name each event twice, in its `event:` line and in its data's `type`, and end a
stream with an event of their own rather than `[DONE]`:

- Messages: `message_start`, content blocks (`content_block_start`, `_delta`, `_stop`),
  `message_delta` (the stop_reason, and usage: `output_tokens` is cumulative, the last one
  counts), `message_stop`; `ping` anywhere; `error` for a failure.
- Responses: `response.created`, output items and their deltas, and `response.completed`
  (or `response.incomplete`) with the usage; `error` or `response.failed` for a failure.

Each event goes to the client with its data bytes unchanged and its `event:` line; an
upstream that left the `event:` line out gets it from the data's `type`, since both SDKs
dispatch on it. The stream is whole when its end event has been forwarded. A Messages
stream whose `message_delta` carried a stop_reason and that then closed is whole too (the
answer and its usage are all there; only the closing event is missing): the proxy writes
the `message_stop`, as it writes `[DONE]` for a chat stream with a finish_reason. Any
other stream that ends early is broken, and the client gets exactly one error event in its
API's own shape and never an end event:

- Messages: `event: error` with `{"type": "error", "error": {"type", "message"}}`;
- Responses: `event: error` with `{"type": "error", "code", "message", "param",
  "sequence_number"}`, the number following the last one relayed.

An upstream's own error event becomes that one event, with its type or code and its
message (keys redacted); a `response.failed` is forwarded as it came, as it is the
Responses API's own report of a failure.

A `ping` is forwarded but is not content: before the commit point the proxy keeps reading
(see `proxy.upstream`) until an event worth committing to arrives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from streamproof.proxy.errors import redact
from streamproof.proxy.relay import (
    IDLE_TIMEOUT,
    MALFORMED,
    TOTAL_TIMEOUT,
    TRUNCATED,
    UPSTREAM_ERROR,
    Fail,
    Finish,
    Forward,
    Step,
    StreamCheck,
    _parse,  # the chat check's JSON parse, the same for every event
)
from streamproof.proxy.tokens import StreamCounter, count_prompt
from streamproof.proxy.usage import Usage

MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def encode_event(name: bytes, payload: bytes) -> bytes:
    """An event with its `event:` line; a payload with newlines keeps them as data lines."""
    head = b"event: " + name + b"\n" if name else b""
    if b"\n" not in payload:
        return head + b"data: " + payload + b"\n\n"
    return head + b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n")) + b"\n"


def _dumps(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Event(Forward):
    """An upstream event forwarded with its name and its payload's bytes unchanged."""

    name: bytes = b""

    def encode(self) -> bytes:
        return encode_event(self.name, self.payload)


@dataclass(frozen=True, slots=True)
class Ended(Finish):
    """A whole stream: its end event was forwarded (nothing left to send), or the proxy
    writes the one that was missing (`tail`)."""

    tail: bytes = b""

    def encode(self) -> bytes:
        return self.tail


@dataclass(frozen=True, slots=True)
class EventFail(Fail):
    """A broken stream's one error event, already encoded in the API's shape."""

    event: bytes = b""

    def encode(self) -> bytes:
        return self.event


# The Anthropic error type of each of the proxy's own mid-stream failures (docs.anthropic.com,
# "Errors"): a timer is a `timeout_error`, anything else the upstream did an `api_error`.
_ANTHROPIC_TYPES = {IDLE_TIMEOUT: "timeout_error", TOTAL_TIMEOUT: "timeout_error"}


class EventUsage:
    """A typed stream's usage: the provider's figures as they came (the last report of
    each wins, never a sum), else an estimate of the request and the text relayed."""

    def __init__(self, prompt: Sequence[Any] = ()) -> None:
        self._prompt = prompt
        self.counter = StreamCounter()
        self.input: int | None = None
        self.output: int | None = None

    def record(self, usage: object) -> None:
        if not isinstance(usage, Mapping):
            return
        for field, attribute in (("input_tokens", "input"), ("output_tokens", "output")):
            value = usage.get(field)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, attribute, value)

    def usage(self) -> Usage:
        if self.input is not None and self.output is not None:
            return Usage(self.input, self.output, self.input + self.output, estimated=False)
        prompt = count_prompt(self._prompt)
        completion = self.counter.count()
        return Usage(prompt, completion, prompt + completion, estimated=True)


class EventCheck(StreamCheck):
    """What the two typed APIs share; `_typed` reads one parsed event of its own API."""

    END_EVENTS: frozenset[str] = frozenset()
    ERROR_EVENTS: frozenset[str] = frozenset({"error"})

    def __init__(
        self, provider: str, secrets: tuple[str, ...] = (), prompt: Sequence[Any] = ()
    ) -> None:
        super().__init__(provider, secrets)
        self.events = EventUsage(prompt)

    def usage(self) -> Usage:
        return self.events.usage()

    def _event(self, data: bytes, name: bytes) -> list[Step]:
        if not data and name != b"error":
            return []
        try:
            event = _parse(data)
        except (ValueError, RecursionError):
            if name == b"error":
                return [self._upstream_error({"message": data.decode(errors="replace")})]
            return [self.fail(MALFORMED, f"{self.provider}: a data payload is not valid JSON")]
        if type(event) is not dict:
            return [self.fail(MALFORMED, f"{self.provider}: a data payload is not a JSON object")]
        kind = event.get("type")
        if not name:
            if not isinstance(kind, str) or not kind:
                message = f"{self.provider}: an event with neither an event name nor a type"
                return [self.fail(MALFORMED, message)]
            name = kind.encode()
        if not isinstance(kind, str):
            kind = name.decode(errors="replace")
        if name == b"error" or kind in self.ERROR_EVENTS:
            return [self._error(event)]
        steps = self._typed(kind, event)
        if steps is not None:
            return steps
        forwarded: list[Step] = [Event(data, name)]
        if kind == "ping":
            return forwarded
        self.forwarded += 1
        self.forwarded_bytes += len(data)
        if kind in self.END_EVENTS:
            forwarded.append(self._end(Ended()))
        return forwarded

    def _typed(self, kind: str, event: dict[str, Any]) -> list[Step] | None:
        """Take what the event says (text, usage, the stop); steps of its own, or None to
        forward it."""
        raise NotImplementedError

    def _error(self, event: dict[str, Any]) -> Fail:
        """The upstream's own error event: Anthropic's `error` member, or the event itself
        (a Responses `error` has its code and message at the top)."""
        error = event.get("error")
        return self._upstream_error(error if isinstance(error, dict) else event)


class MessagesCheck(EventCheck):
    """An Anthropic Messages stream."""

    END_EVENTS = frozenset({"message_stop"})

    def _typed(self, kind: str, event: dict[str, Any]) -> list[Step] | None:
        counter = self.events.counter
        if kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict):
                for field, add in (
                    ("text", counter.add_content),
                    ("partial_json", counter.add_arguments),
                    ("thinking", counter.add_reasoning),
                ):
                    text = delta.get(field)
                    if isinstance(text, str):
                        add(0, text)
        elif kind == "message_delta":
            self.events.record(event.get("usage"))
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self.finished = True
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self.events.record(message.get("usage"))
        return None

    def end_of_stream(self) -> list[Step]:
        if self.finished:
            return [self._end(Ended(MESSAGE_STOP))]
        tail = " (with an unterminated event)" if self._framer.pending else ""
        message = f"{self.provider}: stream cut short: it ended with no message_stop{tail}"
        return [self.fail(TRUNCATED, message)]

    def _failure(self, code: str | int, message: str, type_: str, error_class: str) -> Fail:
        if type_ in ("upstream_error", "error"):  # the proxy's own word, not Anthropic's
            type_ = _ANTHROPIC_TYPES.get(str(code), "api_error")
        document = {"type": "error", "error": {"type": type_, "message": message}}
        event = encode_event(b"error", _dumps(document))
        return EventFail(code, message, type_, error_class, event)


class ResponsesCheck(EventCheck):
    """An OpenAI Responses stream."""

    END_EVENTS = frozenset({"response.completed", "response.incomplete"})
    TEXT: ClassVar[dict[str, Callable[[StreamCounter, int, str], None]]] = {
        "response.output_text.delta": StreamCounter.add_content,
        "response.function_call_arguments.delta": StreamCounter.add_arguments,
        "response.reasoning_text.delta": StreamCounter.add_reasoning,
        "response.reasoning_summary_text.delta": StreamCounter.add_reasoning,
    }

    def __init__(
        self, provider: str, secrets: tuple[str, ...] = (), prompt: Sequence[Any] = ()
    ) -> None:
        super().__init__(provider, secrets, prompt)
        self.sequence = -1  # the last sequence_number relayed

    def _typed(self, kind: str, event: dict[str, Any]) -> list[Step] | None:
        number = event.get("sequence_number")
        if isinstance(number, int) and not isinstance(number, bool):
            self.sequence = number
        add = self.TEXT.get(kind)
        if add is not None:
            delta = event.get("delta")
            if isinstance(delta, str):
                add(self.events.counter, 0, delta)
        elif kind in self.END_EVENTS:
            response = event.get("response")
            if isinstance(response, dict):
                self.events.record(response.get("usage"))
        elif kind == "response.failed":
            return [self._failed(event)]
        return None

    def _failed(self, event: dict[str, Any]) -> Fail:
        """`response.failed`: forwarded as it came (keys redacted), as the one error event."""
        response = event.get("response")
        error = response.get("error") if isinstance(response, dict) else None
        error = error if isinstance(error, dict) else {}
        message = error.get("message")
        text = message if isinstance(message, str) else "the response failed"
        code = error.get("code")
        payload = _dumps(event)
        if any(secret and secret.encode() in payload for secret in self._secrets):
            payload = redact(payload.decode(), self._secrets).encode()
        failure = EventFail(
            code if isinstance(code, str | int) and not isinstance(code, bool) else UPSTREAM_ERROR,
            f"{self.provider}: {redact(text, self._secrets)}",
            "upstream_error",
            "UpstreamError",
            encode_event(b"response.failed", payload),
        )
        self._end(failure)
        return failure

    def end_of_stream(self) -> list[Step]:
        tail = " (with an unterminated event)" if self._framer.pending else ""
        message = f"{self.provider}: stream cut short: it ended with no response.completed{tail}"
        return [self.fail(TRUNCATED, message)]

    def _failure(self, code: str | int, message: str, type_: str, error_class: str) -> Fail:
        self.sequence += 1
        document = {
            "type": "error",
            "code": code,
            "message": message,
            "param": None,
            "sequence_number": self.sequence,
        }
        event = encode_event(b"error", _dumps(document))
        return EventFail(code, message, type_, error_class, event)
