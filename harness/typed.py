"""Typed event streams — the Anthropic Messages API (`POST /v1/messages`) and the OpenAI
Responses API (`POST /v1/responses`) — read as each one's official SDK reads them.

Both stream typed events, an `event: TYPE` line before each `data:` line, and end with an
event of their own (`message_stop`; `response.completed` or `response.incomplete`), never
`[DONE]`. What a client lives through is what its SDK makes of the bytes, so a transcript
here reads them the way the SDK does (docs/verdicts.md, "Typed streams"):

- the `anthropic` SDK dispatches on the `event:` line. An event without one (a WHATWG
  decoder calls it `message`) or a `ping` is skipped; `error` raises; any other is parsed,
  and a payload that is not JSON, or not an object, raises. Blocks accumulate by `index`
  (text, thinking and its signature, a tool's input JSON); the usage is `message_start`'s
  `input_tokens` and the last `message_delta`'s `output_tokens`, which replaces (it is
  cumulative), never adds. A body that ends cleanly ends the caller's loop normally,
  whether `message_stop` came or not.
- the `openai` SDK ignores the `event:` line and dispatches on the payload's `type`; it
  stops at `[DONE]`, and raises on a payload it cannot parse, or with an `error` member. An
  `error` event and `response.failed` reach the caller as events; `response.completed` (or
  `response.incomplete`) is the end, and carries the usage. A body that ends cleanly
  without one ends the caller's loop normally.

A whole (non-streamed) answer is one `message` or `response` object. Both read into the
same `Reading`: the `Answer` the SDK assembled, the usage as it reports it, and how its
reading ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar

from streamproof.fake_providers import messages, responses
from streamproof.fake_providers.chat import DEFAULT_MESSAGES
from streamproof.fake_providers.plan import MESSAGES, RESPONSES
from streamproof.fake_providers.scenario import Scenario
from streamproof.harness.exchange import BaseExchange
from streamproof.harness.sse import Event, SSEDecoder
from streamproof.harness.transcript import (
    DONE,
    INVALID,
    Outcome,
    TimedEvent,
    Transcript,
    is_error,
    payload_of,
)
from streamproof.harness.verdict import Finding

PATHS = {MESSAGES: "/v1/messages", RESPONSES: "/v1/responses"}
# The events that end a stream whole, by API; and those that end it in failure.
ENDS = {
    MESSAGES: frozenset({"message_stop"}),
    RESPONSES: frozenset({"response.completed", "response.incomplete"}),
}
ERROR_TYPES = frozenset({"error", "response.failed"})
# A Responses stream's reasoning: its summary, or the full text of an open model's.
REASONING_DELTAS = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)
UNTYPED = "message"  # the type a WHATWG decoder gives an event without an `event:` line
ANTHROPIC_VERSION = "2023-06-01"  # the `anthropic-version` header the anthropic SDK sends


@dataclass(frozen=True)
class Answer:
    """An answer in the terms both APIs share, as the client's SDK assembled it."""

    blocks: tuple[str, ...] = ()  # the kinds of its content blocks or output items, in order
    text: str = ""
    reasoning: str = ""  # the thinking (Messages), the reasoning summary (Responses)
    signatures: tuple[str, ...] = ()  # each thinking block's signature (Messages)
    tools: tuple[tuple[str, str, str], ...] = ()  # (id, name, arguments as JSON text)
    stop: str | None = None  # the stop_reason; the response's status (and its reason)


@dataclass(frozen=True)
class Reading:
    """What the API's SDK made of an answer: what it assembled, and how its reading ended."""

    answer: Answer = Answer()
    usage: dict[str, int] | None = None  # the API's own figures, by name (`_counts`)
    end: str = ""  # the end event it read ("" if none)
    raised: str = ""  # why the SDK raised, in words ("" if it did not)
    errors: tuple[str, ...] = ()  # the error events it showed its caller (raised on or not)
    dispatched: int = 0  # the events it acted on (not skipped)

    @property
    def failed(self) -> bool:
        """The caller was shown that the answer failed."""
        return bool(self.raised or self.errors)


class TypedTranscript(Transcript):
    """A transcript of an answer of a typed API, read as that API's SDK reads it."""

    api: ClassVar[str]

    @cached_property
    def reading(self) -> Reading:
        if self.status is None or not 200 <= self.status < 300:
            return Reading()
        if not self.streamed:
            return WHOLE[self.api](self.json_body)
        return READERS[self.api](self.payloads)

    @property
    def outcome(self) -> Outcome:
        """As `Transcript.outcome`, with the API's own end: `done` once the SDK read the
        end event, `error` once it was shown a failure first, else `truncated`."""
        outcome = super().outcome
        if outcome not in (Outcome.DONE, Outcome.ERROR, Outcome.TRUNCATED):
            return outcome
        reading = self.reading
        if reading.failed:
            return Outcome.ERROR
        return Outcome.DONE if reading.end else Outcome.TRUNCATED

    @property
    def error_events(self) -> list[TimedEvent]:
        """In-band errors in any API's shape (`response.failed` too)."""
        return [
            timed
            for timed, payload in self.payloads
            if is_error(timed.event, payload)
            or (isinstance(payload, dict) and payload.get("type") in ERROR_TYPES)
        ]

    @property
    def typed_events(self) -> list[tuple[str, Any]]:
        """Each event's `event:` type and its payload, pings and untyped events included."""
        return [(timed.event.event, payload) for timed, payload in self.payloads]

    def summary(self) -> str:
        error = f" ({self.transport_error})" if self.transport_error else ""
        reading = self.reading
        lines = [
            f"status {self.status} · outcome {self.outcome.value} · "
            f"transport {self.transport.value}{error}",
            f"{len(self.chunks)} reads, {len(self.body)} bytes, {len(self.events)} events "
            f"({reading.dispatched} read by the SDK), {len(self.error_events)} error events, "
            f"end event {reading.end or 'none'}",
        ]
        if reading.raised:
            lines.append(f"the SDK raised on {reading.raised}")
        if self.first_byte_at is not None:
            lines.append(f"first byte after {1000 * (self.first_byte_at - self.sent_at):.1f} ms")
        return "\n".join(lines)


class MessagesTranscript(TypedTranscript):
    api = MESSAGES


class ResponsesTranscript(TypedTranscript):
    api = RESPONSES


TRANSCRIPTS: dict[str, type[TypedTranscript]] = {
    MESSAGES: MessagesTranscript,
    RESPONSES: ResponsesTranscript,
}


# --- the anthropic SDK ------------------------------------------------------------------------


@dataclass
class _Blocks:
    """Content blocks as the anthropic SDK accumulates them."""

    kinds: list[str] = field(default_factory=list)
    tools: dict[int, list[str]] = field(default_factory=dict)  # index → [id, name, json]
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    signatures: dict[int, str] = field(default_factory=dict)

    def start(self, block: Any) -> None:
        block = block if isinstance(block, dict) else {}
        index = len(self.kinds)
        self.kinds.append(str(block.get("type")))
        if block.get("type") == "tool_use":
            self.tools[index] = [str(block.get("id", "")), str(block.get("name", "")), ""]
        if block.get("type") == "thinking":
            self.signatures[index] = str(block.get("signature", ""))

    def delta(self, index: int, delta: Any) -> None:
        delta = delta if isinstance(delta, dict) else {}
        kind, piece = delta.get("type"), None
        if kind == "text_delta" and isinstance(piece := delta.get("text"), str):
            self.text.append(piece)
        elif kind == "thinking_delta" and isinstance(piece := delta.get("thinking"), str):
            self.thinking.append(piece)
        elif kind == "signature_delta" and isinstance(piece := delta.get("signature"), str):
            self.signatures[index] = piece
        elif kind == "input_json_delta" and isinstance(piece := delta.get("partial_json"), str):
            if index in self.tools:
                self.tools[index][2] += piece

    def answer(self, stop: str | None) -> Answer:
        return Answer(
            blocks=tuple(self.kinds),
            text="".join(self.text),
            reasoning="".join(self.thinking),
            signatures=tuple(self.signatures[i] for i in sorted(self.signatures)),
            tools=tuple(
                (t[0], t[1], t[2]) for t in map(self.tools.__getitem__, sorted(self.tools))
            ),
            stop=stop,
        )


def read_messages(payloads: Iterable[tuple[TimedEvent, Any]]) -> Reading:
    """A Messages stream as the anthropic SDK reads it (see the module's docstring)."""
    blocks, usage = _Blocks(), dict[str, int]()
    stop: str | None = None
    end, raised, errors, dispatched, started = "", "", [], 0, False
    for timed, payload in payloads:
        kind = timed.event.event
        if kind in ("ping", UNTYPED) or (kind != "error" and not timed.event.data):
            continue
        dispatched += 1
        if kind == "error":
            errors.append(kind)
            raised = "an `event: error`"
            break
        if not isinstance(payload, dict):
            raised = _unreadable(payload)
            break
        what = payload.get("type")
        if what == "content_block_delta":
            index = payload.get("index")
            if started and not (isinstance(index, int) and 0 <= index < len(blocks.kinds)):
                raised = f"a delta for block {index!r}, never started"  # an IndexError
                break
            blocks.delta(index if isinstance(index, int) else -1, payload.get("delta"))
        elif what == "message_stop":
            end = what
        elif what == "message_start":
            message = payload.get("message")
            started = True
            usage = _counts(message.get("usage") if isinstance(message, dict) else None)
        elif not started:
            continue  # the SDK yields them as they came, and builds no message of them
        elif what == "content_block_start":
            blocks.start(payload.get("content_block"))
        elif what == "message_delta":
            delta = payload.get("delta")
            said = delta.get("stop_reason") if isinstance(delta, dict) else None
            stop = said if isinstance(said, str) else stop
            usage |= _counts(payload.get("usage"))  # cumulative: it replaces
    usage_read = usage if started else None  # the message the SDK built, if it built one
    return Reading(blocks.answer(stop), usage_read, end, raised, tuple(errors), dispatched)


def whole_message(body: Any) -> Reading:
    """A whole `message` object as the anthropic SDK reads it."""
    if not isinstance(body, dict):
        return Reading(raised="a body that is not a JSON object")
    blocks = _Blocks()
    for block in body.get("content") or []:
        blocks.start({**block, "signature": ""} if isinstance(block, dict) else block)
        index = len(blocks.kinds) - 1
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            blocks.delta(index, {"type": "text_delta", "text": block.get("text")})
        elif block.get("type") == "thinking":
            blocks.delta(index, {"type": "thinking_delta", "thinking": block.get("thinking")})
            blocks.delta(index, {"type": "signature_delta", "signature": block.get("signature")})
        elif block.get("type") == "tool_use":
            blocks.tools[index][2] = _canonical(block.get("input"))
    stop = body.get("stop_reason")
    usage = _counts(body.get("usage"))
    return Reading(blocks.answer(stop if isinstance(stop, str) else None), usage or None)


# --- the openai SDK, Responses ----------------------------------------------------------------


def read_responses(payloads: Iterable[tuple[TimedEvent, Any]]) -> Reading:
    """A Responses stream as the openai SDK reads it (see the module's docstring)."""
    items: dict[int, list[str]] = {}  # output_index → [kind, id, name, arguments]
    text: list[str] = []
    reasoning: list[str] = []
    stop: str | None = None
    usage: dict[str, int] | None = None
    end, raised, errors, dispatched = "", "", [], 0
    for timed, payload in payloads:
        if timed.event.data.startswith("[DONE]"):
            break  # where the SDK stops reading
        dispatched += 1
        if not isinstance(payload, dict):
            raised = _unreadable(payload)
            break
        if payload.get("error"):
            errors.append("error")
            raised = "a payload with an `error` member"
            break
        what = payload.get("type")
        index = payload.get("output_index")
        if what == "response.output_item.added" and isinstance(payload.get("item"), dict):
            item = payload["item"]
            items[index if isinstance(index, int) else len(items)] = [
                str(item.get("type")),
                str(item.get("call_id", "")),
                str(item.get("name", "")),
                "",
            ]
        elif what == "response.output_text.delta" and isinstance(payload.get("delta"), str):
            text.append(payload["delta"])
        elif what in REASONING_DELTAS and isinstance(payload.get("delta"), str):
            reasoning.append(payload["delta"])
        elif what == "response.function_call_arguments.delta" and index in items:
            items[index][3] += str(payload.get("delta", ""))
        elif what in ERROR_TYPES:
            errors.append(what)
        elif what in ENDS[RESPONSES]:
            end = what
            response = payload.get("response")
            stop, usage = _status(response), _response_usage(response)
    answer = Answer(
        blocks=tuple(items[i][0] for i in sorted(items)),
        text="".join(text),
        reasoning="".join(reasoning),
        tools=tuple(
            (c, n, a) for k, c, n, a in (items[i] for i in sorted(items)) if k == "function_call"
        ),
        stop=stop,
    )
    return Reading(answer, usage, end, raised, tuple(errors), dispatched)


def whole_response(body: Any) -> Reading:
    """A whole `response` object as the openai SDK reads it."""
    if not isinstance(body, dict):
        return Reading(raised="a body that is not a JSON object")
    kinds, texts, thoughts, tools = [], [], [], []
    for item in body.get("output") or []:
        item = item if isinstance(item, dict) else {}
        kinds.append(str(item.get("type")))
        if item.get("type") == "message":
            texts += [str(p.get("text", "")) for p in _dicts(item.get("content"))]
        elif item.get("type") == "reasoning":  # its summary; else its full text, if given
            parts = _dicts(item.get("summary")) or _dicts(item.get("content"))
            thoughts += [str(p.get("text", "")) for p in parts]
        elif item.get("type") == "function_call":
            call = (str(item.get("call_id", "")), str(item.get("name", "")), "")
            tools.append((*call[:2], str(item.get("arguments", ""))))
    answer = Answer(
        tuple(kinds), "".join(texts), "".join(thoughts), (), tuple(tools), _status(body)
    )
    return Reading(answer, _response_usage(body))


READERS = {MESSAGES: read_messages, RESPONSES: read_responses}
WHOLE = {MESSAGES: whole_message, RESPONSES: whole_response}


def _unreadable(payload: Any) -> str:
    """What an SDK raises on, in words: a payload it cannot parse, or not an object."""
    if payload is INVALID or payload is DONE:
        return "a payload that is not JSON"
    return "a payload that is not an object"


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _counts(usage: Any) -> dict[str, int]:
    """The whole-number figures of a usage object, by name (nested details flattened)."""
    if not isinstance(usage, dict):
        return {}
    found: dict[str, int] = {}
    for key, value in usage.items():
        if isinstance(value, dict):
            found |= _counts(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            found[key] = value
    return found


def _status(response: Any) -> str | None:
    """A response's status, with the reason of an incomplete one (`incomplete:…`)."""
    if not isinstance(response, dict) or not isinstance(response.get("status"), str):
        return None
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    return f"{response['status']}:{reason}" if reason else str(response["status"])


def _response_usage(response: Any) -> dict[str, int] | None:
    usage = response.get("usage") if isinstance(response, dict) else None
    return _counts(usage) or None


def _canonical(value: Any) -> str:
    """JSON text that two equal values share, whatever their spacing or key order, and
    whatever the spelling of a number (`-300.0` and `-300` are one JSON number, RFC 8259
    §6: a JavaScript relay re-serialises the first as the second)."""
    return json.dumps(_numbers(value), sort_keys=True, ensure_ascii=False)


def _numbers(value: Any) -> Any:
    """`value` with each whole-valued float as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


# What a stop reason means in either API: what a translation between them must keep.
NEUTRAL_STOPS = {
    "end_turn": "end",
    "stop_sequence": "end",
    "completed": "end",
    "tool_use": "tool call",
    "max_tokens": "length",
    "incomplete:max_output_tokens": "length",
    "refusal": "content filter",
    "incomplete:content_filter": "content filter",
}


def neutral(answer: Answer, *, same_api: bool) -> Answer:
    """An answer in the terms a translation keeps: the text, the reasoning, each tool call's
    name and arguments (as JSON values) and what its stop reason means. Between two APIs
    the blocks, the signatures (the Responses API has none) and the tool call ids (each API
    has its own) are dropped; within one API they are kept."""
    tools = tuple((i if same_api else "", n, _canonical_text(a)) for i, n, a in answer.tools)
    if same_api:
        return replace(answer, tools=tools)
    stop = NEUTRAL_STOPS.get(answer.stop or "", answer.stop)
    if stop == "end" and answer.tools:
        stop = "tool call"  # a response that completed with a call is Messages' tool_use
    return Answer(text=answer.text, reasoning=answer.reasoning, tools=tools, stop=stop)


def _canonical_text(arguments: str) -> str:
    """Tool arguments as a JSON value's canonical text (as they came if they are not JSON)."""
    try:
        return _canonical(json.loads(arguments))
    except ValueError:
        return arguments


# --- what the upstream meant ------------------------------------------------------------------


def expected(api: str, scenario: Scenario, *, whole: bool = False) -> tuple[Answer, dict[str, int]]:
    """The clean answer to `scenario` and its usage (in `_counts`' names), as the fake
    provider says a correct relay carries them; `whole`: as a non-streamed answer."""
    if api == MESSAGES:
        want = messages.expected(scenario)
        tools = tuple(
            (b.id, b.name, _canonical(b.input) if whole else b.text)
            for b in want.blocks
            if b.type == "tool_use"
        )
        answer = Answer(
            blocks=tuple(b.type for b in want.blocks),
            text=want.text,
            reasoning=want.thinking,
            signatures=tuple(b.signature for b in want.blocks if b.type == "thinking"),
            tools=tools,
            stop=want.stop_reason,
        )
        return answer, dict(want.usage)
    got = responses.expected(scenario, list(DEFAULT_MESSAGES))
    call = got.function_call
    kinds = (
        *(("reasoning",) if got.reasoning else ()),
        *(("message",) if got.text or call is None else ()),
        *(("function_call",) if call is not None else ()),
    )
    reason = responses.INCOMPLETE.get(scenario.finish_reason)
    answer = Answer(
        blocks=kinds,
        text=got.text,
        reasoning=got.reasoning,
        tools=((call.id, call.name, call.arguments),) if call else (),
        stop=f"{got.status}:{reason}" if reason else got.status,
    )
    return answer, {**got.usage, "cached_tokens": 0, "reasoning_tokens": got.reasoning_tokens}


def upstream_events(data: bytes) -> list[Event]:
    """The whole events in an attempt's body, as it wrote them."""
    return SSEDecoder().feed(data)


# --- the exchange -----------------------------------------------------------------------------


@dataclass
class TypedExchange(BaseExchange):
    """A request of a typed API (`sut.messages`, `sut.responses`) sent through the target."""

    transcript: TypedTranscript

    @property
    def api(self) -> str:
        return self.transcript.api

    @property
    def reading(self) -> Reading:
        return self.transcript.reading

    @cached_property
    def said(self) -> Reading | None:
        """What the upstream said in the client's attempt, read as its API's SDK reads it
        (None: not a 200 answer of a typed API, or more than the journal kept)."""
        answered, api = self.answered, self.upstream_api
        if answered is None or answered.status != 200 or api not in READERS:
            return None
        data = bytes(answered.data)
        if len(data) < answered.bytes_written:
            return None
        if not self.upstream_streams:
            try:
                return WHOLE[api](json.loads(data))
            except ValueError:
                return None
        return READERS[api]((TimedEvent(0.0, e), payload_of(e.data)) for e in upstream_events(data))

    @cached_property
    def expected(self) -> tuple[Answer, dict[str, int]]:
        """The clean answer to the scenario, and its usage, as the fake provider means them;
        when the upstream was asked otherwise than the client asked (`asked_as_sent`), what
        it said, as far as a translation keeps it: `neutral` answers, and the usage figures
        both APIs have."""
        said, same = self.said, self.upstream_api == self.api
        if self.asked_as_sent or said is None:
            return expected(self.api, self.scenario, whole=not self.transcript.streamed)
        usage = said.usage or {}
        if not same:
            usage = {k: v for k, v in usage.items() if k in ("input_tokens", "output_tokens")}
        return neutral(said.answer, same_api=same), usage

    def answer_as_compared(self) -> Answer:
        """The client's answer in the terms it is compared in (see `expected`)."""
        got = self.reading.answer
        if self.asked_as_sent or self.said is None:
            return got
        return neutral(got, same_api=self.upstream_api == self.api)

    @property
    def expected_answer(self) -> Answer:
        return self.expected[0]

    @property
    def upstream_events(self) -> list[Event]:
        """The events of the client's attempt, as the upstream wrote them (those it kept:
        the journal keeps 64 KiB of each attempt)."""
        streamed = self.streamed
        return upstream_events(bytes(streamed.data)) if streamed is not None else []

    def upstream_written(self, events: int | None = None) -> tuple[str, str, str]:
        """The text, reasoning and tool arguments of the first `events` whole events the
        client's attempt wrote (all of them by default)."""
        streamed = self.streamed
        if streamed is None:
            return "", "", ""
        count = streamed.events_written if events is None else events
        pieces = (streamed.frame_contents, streamed.frame_reasoning, streamed.frame_arguments)
        return (
            "".join(text for frame in pieces[0][:count] for _, text in frame),
            "".join(text for frame in pieces[1][:count] for _, text in frame),
            "".join(text for frame in pieces[2][:count] for _, text in frame),
        )

    def axes(self) -> tuple[str, str]:
        """As `Exchange.axes`: whole, prefix, none or damaged; and the outcome."""
        t, got = self.transcript, self.reading.answer
        sent, _, _ = self.upstream_written()
        if t.outcome is Outcome.HTTP_ERROR or not (got.text or got.reasoning or got.tools):
            content = "none"
        elif self.answer_as_compared() == self.expected_answer:
            content = "whole"
        elif sent.startswith(got.text):
            content = "prefix"
        else:
            content = "damaged"
        return content, t.outcome.value

    def delivered(self) -> list[Finding]:
        """The text, reasoning and tool arguments of the whole events the upstream wrote
        reached the client's SDK (a proxy that drops the `event:` lines of a Messages
        stream, or buffers and gives up, delivers nothing the SDK reads)."""
        t, events = self.transcript, self.good_events()
        if self.streamed is None or not t.streamed or events <= 0:
            return []
        sent = self.upstream_written(events)
        got = self.reading.answer
        short = [
            f"{name} {len(have)} of {len(want)} chars"
            for name, want, have in zip(
                ("text", "reasoning", "tool arguments"),
                sent,
                (got.text, got.reasoning, "".join(a for _, _, a in got.tools)),
                strict=True,
            )
            if not have.startswith(want)
        ]
        said = f"the upstream wrote {events} good events ({len(sent[0])} chars of text); "
        observed = (
            "the client's SDK read them"
            if not short
            else (
                "the client's SDK read "
                + ", ".join(short)
                + (f", status {t.status}" if t.status != 200 else "")
            )
        )
        return [
            Finding(
                not short,
                "premise: what the upstream sent reached the client",
                said + observed,
                harm=True,
            )
        ]

    def failure_shown(self) -> Finding:
        """A broken stream does not look finished to the API's SDK: it raised, or showed
        its caller an error event, or the transfer was aborted; and no end or stop reason
        the upstream never sent was read (docs/verdicts.md, "Typed streams")."""
        t, reading = self.transcript, self.reading
        check = "the failure is visible to the client, nothing invented"
        if not self.upstream_broke:
            return Finding(True, check, "the upstream's answer did not break after its first byte")
        written = self.upstream_events
        types = {_type(event) for event in written}
        stops = {_stop_reason(event) for event in written} - {None}
        upstream = self.upstream_api
        if upstream == self.api:
            invented = [reading.end] if reading.end and reading.end not in types else []
            stopped = reading.answer.stop not in stops
        else:  # a translation: nothing ends, and nothing stops, where the upstream did not
            ended = bool(types & ENDS.get(upstream or "", frozenset()))
            invented = [reading.end] if reading.end and not ended else []
            stopped = not ended
        if self.api == MESSAGES and reading.answer.stop and stopped:
            invented.append(f"stop_reason {reading.answer.stop!r}")
        aborted = t.outcome in (Outcome.RESET, Outcome.HTTP_ERROR, Outcome.NO_RESPONSE)
        ok = (reading.failed or aborted) and not invented
        sdk = "anthropic" if self.api == MESSAGES else "openai"
        if invented:
            observed = (
                f"{' and '.join(invented)} the upstream never sent: the half answer looks whole"
            )
        elif ok:
            observed = (
                f"the {sdk} SDK raised on {reading.raised}"
                if reading.raised
                else f"error event(s) {list(reading.errors)}"
                if reading.errors
                else f"outcome {t.outcome.value}"
            )
        elif t.outcome is Outcome.TIMED_OUT:
            observed = (
                "outcome timed_out: the client gave up waiting, and nothing it received said "
                "the answer had failed"
            )
        elif reading.end:
            whose = "the upstream's " if upstream == self.api else "a "
            observed = (
                f"{whose}{reading.end} after the failure, and no error the {sdk} SDK "
                "sees: its caller gets an answer with a hole in it as if it were whole"
            )
        elif t.error_events:
            observed = (
                f"{len(t.error_events)} error event(s) the {sdk} SDK does not see (no "
                "`event: error` line): the body ended cleanly and the half answer looks whole"
            )
        else:
            observed = (
                f"outcome {t.outcome.value}: the body ended cleanly with no "
                f"{' or '.join(sorted(ENDS[self.api]))} and no error, so the {sdk} SDK hands "
                "its caller the half answer as if it were whole"
            )
        return Finding(ok, check, observed, True)


def _type(event: Event) -> str:
    """An event's type as its payload says it (its `event:` line's where it cannot)."""
    try:
        payload = json.loads(event.data)
    except ValueError:
        return event.event
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else event.event


def _stop_reason(event: Event) -> str | None:
    try:
        payload = json.loads(event.data)
    except ValueError:
        return None
    delta = payload.get("delta") if isinstance(payload, dict) else None
    reason = delta.get("stop_reason") if isinstance(delta, dict) else None
    return reason if isinstance(reason, str) else None
