"""Faults: small uniform units that turn a well-behaved `Plan` into a misbehaving one.

Like a toxic in Toxiproxy, each fault has a registry name (the token used in a scenario),
a few read-only integer parameters, one method `apply(plan) -> plan`, and a one-line
docstring saying what a proxy will see. Faults compose: a scenario applies them in order
of their `stage` (what is sent, then how it is cut into writes, then how it is paced), so
`chop-3.reset_after-5` means "five events, written three bytes at a time, then a reset".

Event numbers are 1-based and count every SSE event of the stream, the role chunk first,
so "after event n" means "once n whole events have been written". A format that adds an
event (`empty_data`) shifts the count; one that only adds lines (`comments`, `fields`)
keeps them inside the events they belong to.

Parameters are whole numbers, except those a fault lists in `words`, which take one of a
few fixed words: `nonobject-3-array`, `upstream_error-4-flat`.

Every fault applies to the plan of any API the fake speaks (`Plan.api`), at that API's
event boundaries. Most mean the same in each: a reset, a stall, a split, a pace. Where the
meaning depends on the API, the API decides:

- `status-CODE`: the error body is in the API's shape (`errors.status_body`);
- `no_done`: the frame that ends the stream is left out: `data: [DONE]` (chat),
  `message_stop` (Anthropic Messages), `response.completed` (Responses, which carries the
  usage: it goes too);
- `close_after-N`, `cut_inside-N`: the body ends without that end event either;
- `malformed-N`, `nonobject-N-KIND`: a typed event keeps its `event:` line, so a client
  dispatches it by type and fails on its data;
- `upstream_error-N-SHAPE`: the in-band errors each API has (`errors.INBAND_SHAPES`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from streamproof.fake_providers import errors
from streamproof.fake_providers.plan import CHAT, Ending, Frame, FrameKind, Plan


class Fault:
    name: ClassVar[str]
    stage: ClassVar[int]  # 0 replaces the answer, 1 trims/alters frames, 2 shapes writes, 3 paces
    arity: ClassVar[tuple[int, int]] = (0, 0)  # how many parameters it takes
    words: ClassVar[dict[str, tuple[str, ...]]] = {}  # the parameters that take a fixed word

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            words = self.words.get(field.name)
            if words is not None and value not in words:
                raise ValueError(f"{self.name} {field.name} takes one of {', '.join(words)}")
            if isinstance(value, int) and value < 0:
                raise ValueError(f"{self.name} takes whole numbers, not {field.name}={value}")

    def apply(self, plan: Plan) -> Plan:
        raise NotImplementedError

    @property
    def token(self) -> str:
        """The fault as written in a scenario: `name-arg-arg`."""
        values = (getattr(self, field.name) for field in dataclasses.fields(self))  # type: ignore[arg-type]
        return "-".join([self.name, *(str(v) for v in values if v is not None)])


@dataclass(frozen=True)
class ResetBeforeHeaders(Fault):
    """The request is read, then the connection is reset before any status line."""

    name: ClassVar[str] = "reset_before_headers"
    stage: ClassVar[int] = 0

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(before_headers=Ending.RESET, frames=())


@dataclass(frozen=True)
class StallBeforeHeaders(Fault):
    """The request is read, then nothing is ever written; the socket stays open."""

    name: ClassVar[str] = "stall_before_headers"
    stage: ClassVar[int] = 0

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(before_headers=Ending.STALL, frames=())


@dataclass(frozen=True)
class Status(Fault):
    """An HTTP error status with the API's JSON error body (and `Retry-After`)."""

    name: ClassVar[str] = "status"
    stage: ClassVar[int] = 0
    arity: ClassVar[tuple[int, int]] = (1, 2)
    code: int
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 400 <= self.code <= 599:
            raise ValueError(f"status takes an error code from 400 to 599, not {self.code}")

    def apply(self, plan: Plan) -> Plan:
        body = errors.status_body(plan.api, self.code)
        headers = plan.extra_headers
        if self.retry_after is not None:
            headers = (*headers, ("retry-after", str(self.retry_after)))
        return plan.replace(
            status=self.code,
            content_type="application/json",
            frames=(Frame(FrameKind.DOCUMENT, body),),
            extra_headers=headers,
        )


@dataclass(frozen=True)
class ResetAfter(Fault):
    """After event n the connection is reset (TCP RST) mid-stream."""

    name: ClassVar[str] = "reset_after"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (1, 1)
    events: int

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(frames=plan.frames[: self.events], ending=Ending.RESET)


@dataclass(frozen=True)
class StallAfter(Fault):
    """After event n nothing more is written, and the socket stays open."""

    name: ClassVar[str] = "stall_after"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (1, 1)
    events: int

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(frames=plan.frames[: self.events], ending=Ending.STALL)


@dataclass(frozen=True)
class CloseAfter(Fault):
    """After event n the body ends cleanly: no finish_reason, no `[DONE]` (a truncation)."""

    name: ClassVar[str] = "close_after"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (1, 1)
    events: int

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(frames=plan.frames[: self.events], ending=Ending.CLEAN)


@dataclass(frozen=True)
class CutInside(Fault):
    """After event n, half of event n+1, then a clean close: an unterminated final event."""

    name: ClassVar[str] = "cut_inside"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (1, 1)
    events: int

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(frames=_cut_inside(plan, self.events), ending=Ending.CLEAN)


@dataclass(frozen=True)
class ResetInside(Fault):
    """After event n, half of event n+1, then a reset (TCP RST) inside that event."""

    name: ClassVar[str] = "reset_inside"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (1, 1)
    events: int

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(frames=_cut_inside(plan, self.events), ending=Ending.RESET)


@dataclass(frozen=True)
class RaggedAfter(Fault):
    """After event n the connection closes without `close_notify` (over TLS) nor a last chunk."""

    name: ClassVar[str] = "ragged_after"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (1, 1)
    events: int

    def apply(self, plan: Plan) -> Plan:
        if self.events >= len(plan.frames):  # after the last byte: the message is whole
            return plan.replace(ending=Ending.RAGGED_END)
        return plan.replace(frames=plan.frames[: self.events], ending=Ending.RAGGED)


@dataclass(frozen=True)
class CloseDelimited(Fault):
    """The body has no Content-Length nor chunks: `Connection: close`, and the close ends it."""

    name: ClassVar[str] = "close_delimited"
    stage: ClassVar[int] = 2

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(close_delimited=True)


@dataclass(frozen=True)
class TlsRecords(Fault):
    """Over TLS, records reach the socket in writes of b bytes, the first alone (plain: none)."""

    name: ClassVar[str] = "tls_records"
    stage: ClassVar[int] = 2
    arity: ClassVar[tuple[int, int]] = (1, 1)
    size: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size < 1:
            raise ValueError("tls_records takes a write size of at least 1 byte")

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(records=self.size)


STALE_ENDINGS = {"close": Ending.CLEAN, "reset": Ending.RESET}


@dataclass(frozen=True)
class Stale(Fault):
    """A request on a kept-alive connection finds it closed (or reset) by the server, unanswered."""

    name: ClassVar[str] = "stale"
    stage: ClassVar[int] = 0
    arity: ClassVar[tuple[int, int]] = (1, 1)
    words: ClassVar[dict[str, tuple[str, ...]]] = {"how": tuple(STALE_ENDINGS)}
    how: str

    def apply(self, plan: Plan) -> Plan:
        # The answer stays: on a connection's first request the fault does nothing (the
        # server closes only connections it let idle), and the request is served.
        return plan.replace(stale=STALE_ENDINGS[self.how])


def _cut_inside(plan: Plan, events: int) -> tuple[Frame, ...]:
    """The first `events` frames and the first half of the next (all of them, past the end)."""
    kept = plan.frames[:events]
    if events >= len(plan.frames):
        return kept
    cut = plan.frames[events]
    # Half an event carries nothing a client can read: its bytes, none of its deltas.
    return (*kept, Frame(FrameKind.MALFORMED, cut.data[: len(cut.data) // 2]))


@dataclass(frozen=True)
class NoDone(Fault):
    """The stream finishes (finish_reason is sent) but its end event (`[DONE]`) never comes."""

    name: ClassVar[str] = "no_done"
    stage: ClassVar[int] = 1

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(frames=tuple(f for f in plan.frames if f.kind is not FrameKind.DONE))


@dataclass(frozen=True)
class Malformed(Fault):
    """Event n is replaced by a `data:` line whose payload is not valid JSON."""

    name: ClassVar[str] = "malformed"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (1, 1)
    event: int

    def apply(self, plan: Plan) -> Plan:
        if not 1 <= self.event <= len(plan.frames):
            return plan
        eol = plan.eol.encode()
        replaced = plan.frames[self.event - 1]
        if replaced.event:
            data = b'{"type": "' + replaced.event.encode() + b'", "index": 0, "delta": {"text": '
        else:
            data = b'{"choices": [{"delta": {"content": '
        bad = Frame(FrameKind.MALFORMED, _typed(replaced.event, eol) + b"data: " + data + eol * 2)
        frames = list(plan.frames)
        frames[self.event - 1] = bad
        return plan.replace(frames=tuple(frames))


NONOBJECTS = {"array": b"[1,2]", "string": b'"chunk"', "number": b"42", "null": b"null"}


@dataclass(frozen=True)
class NonObject(Fault):
    """Event n is replaced by a `data:` line of valid JSON that is not an object (`[1,2]`…)."""

    name: ClassVar[str] = "nonobject"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (2, 2)
    words: ClassVar[dict[str, tuple[str, ...]]] = {"kind": tuple(NONOBJECTS)}
    event: int
    kind: str

    def apply(self, plan: Plan) -> Plan:
        if not 1 <= self.event <= len(plan.frames):
            return plan
        eol = plan.eol.encode()
        frames = list(plan.frames)
        head = _typed(plan.frames[self.event - 1].event, eol)
        frames[self.event - 1] = Frame(
            FrameKind.NONOBJECT, head + b"data: " + NONOBJECTS[self.kind] + eol * 2
        )
        return plan.replace(frames=tuple(frames))


def _typed(event: str, eol: bytes) -> bytes:
    """The `event:` line of a typed event (none for an untyped one)."""
    return b"event: " + event.encode() + eol if event else b""


ERROR_MESSAGE = errors.ERROR_MESSAGE
# The in-band error shapes of chat completions (what the soak and the chat cases draw from);
# a token may name any API's (`errors.ALL_SHAPES`): one its API does not have is refused.
ERROR_SHAPES = errors.INBAND_SHAPES[CHAT]


@dataclass(frozen=True)
class UpstreamError(Fault):
    """Event n is an in-band error, in a shape of the API's; the body ends there."""

    name: ClassVar[str] = "upstream_error"
    stage: ClassVar[int] = 1
    arity: ClassVar[tuple[int, int]] = (2, 2)
    words: ClassVar[dict[str, tuple[str, ...]]] = {"shape": errors.ALL_SHAPES}
    event: int
    shape: str

    def apply(self, plan: Plan) -> Plan:
        if not 1 <= self.event <= len(plan.frames):
            return plan
        error = Frame(FrameKind.ERROR, self._event(plan))
        return plan.replace(frames=(*plan.frames[: self.event - 1], error))

    def _event(self, plan: Plan) -> bytes:
        eol = plan.eol.encode()
        if plan.api != CHAT:
            metadata = dict(plan.metadata)
            kind, typed = errors.inband_event(
                plan.api, self.shape, metadata=metadata, sequence=self.event - 1
            )
            return b"event: " + kind.encode() + eol + b"data: " + typed.encode() + eol * 2
        document: dict[str, Any]
        if self.shape == "object":
            error = {"message": ERROR_MESSAGE, "type": "server_error", "code": "overloaded"}
            document = {"error": error}
        elif self.shape == "flat":
            document = {"object": "error", "message": ERROR_MESSAGE}
            document |= {"type": "internal_server_error", "code": 500}
        elif self.shape == "event":
            data = json.dumps({"message": ERROR_MESSAGE}).encode()
            return b"event: error" + eol + b"data: " + data + eol * 2
        else:  # finish: a well-formed chunk whose every choice ends with finish_reason "error"
            choices = [
                {"index": index, "delta": {}, "finish_reason": "error"}
                for index in range(plan.choices)
            ]
            document = {**dict(plan.metadata), "choices": choices}
        return b"data: " + json.dumps(document, separators=(",", ":")).encode() + eol * 2


@dataclass(frozen=True)
class Coalesce(Fault):
    """The whole body arrives in a single write."""

    name: ClassVar[str] = "coalesce"
    stage: ClassVar[int] = 2

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(cuts=frozenset())


@dataclass(frozen=True)
class Chop(Fault):
    """The body is written in pieces of b bytes, whatever the event boundaries."""

    name: ClassVar[str] = "chop"
    stage: ClassVar[int] = 2
    arity: ClassVar[tuple[int, int]] = (1, 1)
    size: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size < 1:
            raise ValueError("chop takes a write size of at least 1 byte")

    def apply(self, plan: Plan) -> Plan:
        chops = frozenset(range(self.size, len(plan.body), self.size))
        # Chopping replaces the one-write-per-event default but keeps any explicit splits.
        return plan.replace(cuts=chops if plan.cuts is None else plan.cuts | chops)


@dataclass(frozen=True)
class SplitUtf8(Fault):
    """A write boundary falls inside every multi-byte UTF-8 character of the body."""

    name: ClassVar[str] = "split_utf8"
    stage: ClassVar[int] = 2

    def apply(self, plan: Plan) -> Plan:
        body = plan.body
        # A continuation byte (10xxxxxx) never starts a character: cutting before it splits one.
        inside = {i for i, byte in enumerate(body) if byte & 0xC0 == 0x80}
        return plan.replace(cuts=_cuts(plan) | inside)


@dataclass(frozen=True)
class SplitEol(Fault):
    """A write boundary falls inside every CRLF (between the CR and the LF)."""

    name: ClassVar[str] = "split_eol"
    stage: ClassVar[int] = 2

    def apply(self, plan: Plan) -> Plan:
        body = plan.body
        inside, at = set(), body.find(b"\r\n")
        while at != -1:
            inside.add(at + 1)
            at = body.find(b"\r\n", at + 2)
        return plan.replace(cuts=_cuts(plan) | inside)


@dataclass(frozen=True)
class Slow(Fault):
    """Every write is followed by ms milliseconds of silence."""

    name: ClassVar[str] = "slow"
    stage: ClassVar[int] = 3
    arity: ClassVar[tuple[int, int]] = (1, 1)
    ms: int

    def apply(self, plan: Plan) -> Plan:
        return plan.replace(pause=self.ms / 1000)


def _cuts(plan: Plan) -> frozenset[int]:
    return frozenset(plan.frame_ends()) if plan.cuts is None else plan.cuts


FAULTS: dict[str, type[Fault]] = {
    cls.name: cls
    for cls in (
        ResetBeforeHeaders,
        StallBeforeHeaders,
        Status,
        ResetAfter,
        StallAfter,
        CloseAfter,
        CutInside,
        ResetInside,
        RaggedAfter,
        CloseDelimited,
        TlsRecords,
        Stale,
        NoDone,
        Malformed,
        Coalesce,
        Chop,
        SplitUtf8,
        SplitEol,
        Slow,
        NonObject,
        UpstreamError,
    )
}
