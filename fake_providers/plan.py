"""What the fake provider will put on the wire for one attempt: a `Plan`.

A plan is built from the request (the well-behaved answer) and then handed to each fault
in turn; a fault returns a new plan. Nothing here touches a socket, so every fault can be
tested by looking at the plan it produces, and the writer in `server.py` stays the one
place that knows about sockets.

The body is a sequence of `Frame`s (one SSE event each, or one JSON document for a
non-streaming answer). The same machinery carries every API the fake speaks (`Plan.api`):
OpenAI chat completions, the Anthropic Messages API and the OpenAI Responses API, so every
fault applies at the event boundaries of each. How the frames reach the wire is described
separately: `cuts` are the byte offsets where one write ends and the next begins, `pause`
the silence between writes, and `ending` what happens after the last frame (a clean end of
the HTTP message, a TCP reset, or a stall that lasts until the peer gives up).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from dataclasses import dataclass


class Ending(enum.Enum):
    """How an attempt ends after its last frame (or, with `before_headers`, before any)."""

    CLEAN = "clean"  # the HTTP message is completed normally
    RESET = "reset"  # a TCP RST (SO_LINGER 0): the peer sees ECONNRESET
    STALL = "stall"  # nothing more is written; the socket stays open until the peer leaves
    # The connection is closed after the last frame without ending the HTTP message (no last
    # chunk, unless every frame was sent) and, over TLS, without `close_notify`: a ragged
    # close, TLS's sign of a truncation. Over plain HTTP, a FIN.
    RAGGED = "ragged"
    RAGGED_END = "ragged_end"  # the HTTP message completed, then the same ragged close


class FrameKind(enum.Enum):
    ROLE = "role"  # the answer's opening (chat's role chunk, `message_start`, `response.created`)
    CONTENT = "content"
    TOOL = "tool"  # a tool-call delta (name and arguments fragments)
    REASONING = "reasoning"  # a reasoning delta (`reasoning_content`, thinking, summary text)
    BLOCK = "block"  # a typed event that opens or closes a block or item, carrying no text
    PING = "ping"  # Anthropic's keep-alive `event: ping`
    FINISH = "finish"
    USAGE = "usage"
    DONE = "done"  # the stream's end: `[DONE]`, `message_stop`, `response.completed`
    EMPTY = "empty"  # an event whose data is empty (`data:`)
    MALFORMED = "malformed"
    NONOBJECT = "nonobject"  # valid JSON that is not an object
    ERROR = "error"  # an in-band error, in one of the shapes providers use
    DOCUMENT = "document"  # a whole JSON body (non-streaming answers and error bodies)


CHAT, MESSAGES, RESPONSES = "chat", "messages", "responses"
API_NAMES = (CHAT, MESSAGES, RESPONSES)  # chat completions, Anthropic Messages, OpenAI Responses

Pieces = tuple[tuple[int, str], ...]  # (choice index, text) pairs, in the order written
Usage = tuple[tuple[str, int], ...]  # a usage object's items; () when a frame carries none


@dataclass(frozen=True, slots=True)
class Frame:
    """One unit of the body: its bytes on the wire and the text it adds to each choice.

    `deltas` is the content it adds, `arguments` the tool-call arguments it adds, each as
    (choice index, text) pairs: a chunk of choice 2 carries `((2, "text"),)`, a whole
    non-streaming document carries every choice. `usage` is the usage object it carries
    (wherever in the chunk it sits), as items; `()` for none. `reasoning` is the reasoning
    text it adds (chat's `reasoning_content`, Anthropic's thinking, a Responses reasoning
    summary). `event` is the SSE event type its `event:` line names (`content_block_delta`,
    `response.output_text.delta`), "" for an untyped event (chat's) or a whole document.
    """

    kind: FrameKind
    data: bytes
    deltas: Pieces = ()
    arguments: Pieces = ()
    usage: Usage = ()
    reasoning: Pieces = ()
    event: str = ""

    @property
    def delta(self) -> str:
        """The content this frame adds to choice 0 (the only choice of most answers)."""
        return "".join(text for choice, text in self.deltas if choice == 0)


@dataclass(frozen=True, slots=True)
class Plan:
    """One attempt's answer: status, headers, frames, and how they reach the wire.

    `api` is the wire format the frames speak (one of `API_NAMES`): faults whose meaning
    differs by API (an error status's body, an in-band error's shape) read it.
    """

    status: int
    content_type: str
    frames: tuple[Frame, ...]
    extra_headers: tuple[tuple[str, str], ...] = ()
    eol: str = "\n"  # the line ending faults write with (LF when the answer mixes them)
    metadata: tuple[tuple[str, str | int], ...] = ()  # id, object, created, model of chunks
    choices: int = 1  # how many choices the answer has
    before_headers: Ending | None = None
    ending: Ending = Ending.CLEAN
    cuts: frozenset[int] | None = None  # None: one write per frame
    pause: float = 0.0  # seconds between writes
    close_delimited: bool = False  # no Content-Length nor chunks: the close ends the body
    records: int | None = None  # over TLS: each record reaches the socket in pieces this big
    # On a kept-alive connection (not its first request): the server had closed it while
    # idle, so the request is met with this (CLEAN: a close, RESET: a reset) and no answer.
    stale: Ending | None = None
    api: str = "chat"  # one of API_NAMES

    def replace(self, **changes: object) -> Plan:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def body(self) -> bytes:
        return b"".join(frame.data for frame in self.frames)

    def frame_ends(self) -> list[int]:
        """Body offsets at which each frame is complete."""
        ends, offset = [], 0
        for frame in self.frames:
            offset += len(frame.data)
            ends.append(offset)
        return ends

    def writes(self) -> Iterator[bytes]:
        """The body as the separate writes the server will make."""
        body = self.body
        cuts = set(self.frame_ends()) if self.cuts is None else set(self.cuts)
        start = 0
        for cut in sorted(c for c in cuts if 0 < c < len(body)):
            yield body[start:cut]
            start = cut
        if start < len(body):
            yield body[start:]
