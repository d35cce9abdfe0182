"""The chaos soak's client (`bench/soak.py`): one stream's request on a connection of its
own, over HTTP/1.1 with h11, and the stream as it ran.

How long it waits is the harness's patience (`harness.sut.patience_for`): while an upstream
attempt is open, the target's own first-byte or idle timer with tolerance; once every
attempt is over, a short grace to finish the stream or to retry. It is asked again at each
read and at its deadline, when the fake's journal may have moved it later; past it the
client gives up and the stream was held. Under the soak's load (a hundred streams on two
cores) every deadline has LOAD_SLACK more.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h11

from bench.soak_schedules import Schedule
from streamproof.fake_providers import Journal, chat
from streamproof.harness.sse import SSEDecoder
from streamproof.harness.targets import REFERENCE_TIMEOUTS
from streamproof.harness.transcript import Arrival, Transcript, Transport

TIMEOUTS = REFERENCE_TIMEOUTS  # the config the harness writes: idle 0.3, first byte 0.5, total 5 s
LOAD_SLACK = 1.0  # seconds added to every deadline of the patience, for the soak's load
# A client that cannot see the fake's journal (a Locust worker, bench/soak_wire.py) gives up
# on a stream this long after sending it: the bundled proxy's total timeout plus room for a
# loaded machine. A stream still open then has been held past every timer.
STREAM_BOUND = TIMEOUTS.bound("total") + 3.0
CHAT_PATH = "/v1/chat/completions"
# Until when the client waits, and why, given what it has seen (`Patience.until`).
Until = Callable[[Transcript], tuple[float, str]]


@dataclass
class Stream:
    """One stream as it ran: its schedule, what the client saw, the upstream's journal."""

    schedule: Schedule
    transcript: Transcript
    left: bool  # the client hung up before the end
    journal: Journal
    result: str = ""  # success | http_error | error | aborted | left | broken
    problems: list[tuple[str, str]] = field(default_factory=list)  # (check, detail)
    notes: list[tuple[str, str]] = field(default_factory=list)  # what a careful proxy avoids
    attempt: int | None = None  # the attempt whose chunks the client got, if any


def _terminal(data: str, name: str) -> bool:
    """An event that ends a stream: `[DONE]` or an in-band error (any of its shapes)."""
    if data == "[DONE]" or name == "error":
        return True
    try:
        payload = json.loads(data)
    except ValueError:
        return False
    return isinstance(payload, dict) and ("error" in payload or payload.get("object") == "error")


def request_body(s: Schedule) -> dict[str, Any]:
    """The chat request every stream sends: the schedule's model, streamed."""
    return {"model": s.model, "messages": list(chat.DEFAULT_MESSAGES), "stream": True}


class Conversation:
    """One stream's HTTP/1.1 exchange with h11, without I/O: the request's bytes to send, then
    what arrives fed in until it says the exchange is over. The asyncio client (`exchange`)
    and the blocking one of the Locust workers (`bench/soak_wire.py`) drive it."""

    def __init__(
        self,
        host: str,
        port: int,
        s: Schedule,
        headers: Mapping[str, str] | None = None,
        path: str = CHAT_PATH,
    ) -> None:
        self.schedule = s
        body = request_body(s)
        payload = json.dumps(body).encode()
        self.transcript = Transcript(request=body, sent_at=time.perf_counter())
        self.left = False  # the client hung up before the end
        self._conn = h11.Connection(h11.CLIENT)
        fields = [
            ("host", f"{host}:{port}"),
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("content-length", str(len(payload))),
            ("connection", "close"),
            *(headers or {}).items(),
        ]
        request = h11.Request(method="POST", target=path, headers=fields)
        self.request = (
            self._conn.send(request)
            + self._conn.send(h11.Data(data=payload))
            + self._conn.send(h11.EndOfMessage())
        )
        self._counter = SSEDecoder() if s.leave_after_events is not None else None
        self._seen, self._ended = 0, False

    @property
    def waiting_for_head(self) -> bool:
        return self.transcript.status is None

    def sent(self) -> None:
        self.transcript.sent_at = time.perf_counter()

    def receive(self, data: bytes) -> bool:
        """Take what the connection gave (b"" at its end); True once the exchange is over."""
        t = self.transcript
        try:
            self._conn.receive_data(data)
            while True:
                event = self._conn.next_event()
                if event is h11.NEED_DATA:
                    return False
                if isinstance(event, h11.Response):
                    t.status = event.status_code
                    t.headers = {
                        name.decode().lower(): value.decode("latin-1")
                        for name, value in event.headers
                    }
                    t.headers_at = time.perf_counter()
                elif isinstance(event, h11.Data):
                    t.chunks.append(Arrival(time.perf_counter(), bytes(event.data)))
                    if self._leaves(bytes(event.data)):
                        self.left, t.transport = True, Transport.LEFT
                        return True
                elif isinstance(event, h11.EndOfMessage):
                    return True
                elif isinstance(event, h11.ConnectionClosed):
                    t.transport = Transport.RESET
                    t.transport_error = "the connection closed before a response"
                    return True
        except h11.RemoteProtocolError as exc:  # e.g. the body ended inside a chunk
            t.transport, t.transport_error = Transport.RESET, f"h11: {exc}"
            return True

    def _leaves(self, data: bytes) -> bool:
        """Count the events; True when the client leaves after them (before the end)."""
        wanted = self.schedule.leave_after_events
        if self._counter is None or wanted is None or self._ended:
            return False
        for sse in self._counter.feed(data):
            self._seen += 1
            self._ended = self._ended or _terminal(sse.data, sse.event)
        return self._seen >= wanted and not self._ended

    def timed_out(self, gave_up: bool, why: str = "TimeoutError") -> None:
        """No bytes before the deadline: the client's own give-up (`gave_up`), or it was
        held (`why`)."""
        if gave_up:
            self.left, self.transcript.transport = True, Transport.LEFT
            self.transcript.transport_error = "gave up waiting for the headers"
        else:
            self.transcript.transport, self.transcript.transport_error = Transport.TIMED_OUT, why

    def broken(self, exc: OSError, where: str = "") -> None:
        detail = f"{where}{exc}" if where else f"{type(exc).__name__}: {exc}"
        self.transcript.transport, self.transcript.transport_error = Transport.RESET, detail

    def over(self) -> tuple[Transcript, bool]:
        self.transcript.ended_at = time.perf_counter()
        return self.transcript, self.left


async def exchange(
    port: int,
    s: Schedule,
    until: Until,
    headers: Mapping[str, str] | None = None,
    *,
    path: str = CHAT_PATH,
) -> tuple[Transcript, bool]:
    """Send one stream's request on a connection of its own; record what comes back,
    waiting as long as `until` says (see the module's docstring)."""
    x = Conversation("127.0.0.1", port, s, headers, path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        x.broken(exc, "connect: ")
        return x.over()
    try:
        writer.write(x.request)
        x.sent()
        give_up = s.leave_before_response
        head_ends = None if give_up is None else x.transcript.sent_at + give_up
        while True:
            data = await _read(reader, x.transcript, until, head_ends)
            if isinstance(data, str):  # nothing came in time
                x.timed_out(data == "left", data)
                break
            if x.receive(data):
                break
    except ConnectionError as exc:
        x.broken(exc)
    finally:
        transcript, left = x.over()
        writer.close()  # a client that leaves closes its connection: the proxy sees it go
    return transcript, left


async def _read(
    reader: asyncio.StreamReader, t: Transcript, until: Until, head_ends: float | None
) -> bytes | str:
    """The next bytes; or "left" when a client that gives up before the headers does, or
    why the client gave up on a held stream. A deadline is asked again when it passes: the
    fake may have moved it later meanwhile."""
    while True:
        deadline, why = until(t)
        deadline += LOAD_SLACK
        leaving = head_ends is not None and t.status is None and head_ends < deadline
        ends = head_ends if leaving and head_ends is not None else deadline
        if ends <= time.perf_counter():
            return "left" if leaving else f"held: {why} (+{LOAD_SLACK:g} s for the load)"
        try:
            async with asyncio.timeout(ends - time.perf_counter()):
                return await reader.read(65536)
        except TimeoutError:
            continue
