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

import h11

from bench.soak_schedules import Schedule
from streamproof.fake_providers import Journal, chat
from streamproof.harness.sse import SSEDecoder
from streamproof.harness.targets import REFERENCE_TIMEOUTS
from streamproof.harness.transcript import Arrival, Transcript, Transport

TIMEOUTS = REFERENCE_TIMEOUTS  # the config the harness writes: idle 0.3, first byte 0.5, total 5 s
LOAD_SLACK = 1.0  # seconds added to every deadline of the patience, for the soak's load
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
    body = {"model": s.model, "messages": list(chat.DEFAULT_MESSAGES), "stream": True}
    payload = json.dumps(body).encode()
    transcript = Transcript(request=body, sent_at=time.perf_counter())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        transcript.transport, transcript.transport_error = Transport.RESET, f"connect: {exc}"
        transcript.ended_at = time.perf_counter()
        return transcript, False
    conn = h11.Connection(h11.CLIENT)
    fields = [
        ("host", f"127.0.0.1:{port}"),
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("content-length", str(len(payload))),
        ("connection", "close"),
        *(headers or {}).items(),
    ]
    request = h11.Request(method="POST", target=path, headers=fields)
    left = False
    counter = SSEDecoder() if s.leave_after_events is not None else None
    seen, ended = 0, False
    try:
        writer.write(conn.send(request) + conn.send(h11.Data(data=payload)))
        writer.write(conn.send(h11.EndOfMessage()))
        transcript.sent_at = time.perf_counter()
        give_up = s.leave_before_response
        head_ends = None if give_up is None else transcript.sent_at + give_up
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await _read(reader, transcript, until, head_ends)
                if isinstance(data, str):  # nothing came in time
                    if data == "left":
                        left, transcript.transport = True, Transport.LEFT
                        transcript.transport_error = "gave up waiting for the headers"
                    else:
                        transcript.transport, transcript.transport_error = Transport.TIMED_OUT, data
                    break
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                transcript.status = event.status_code
                transcript.headers = {
                    name.decode().lower(): value.decode("latin-1") for name, value in event.headers
                }
                transcript.headers_at = time.perf_counter()
            elif isinstance(event, h11.Data):
                transcript.chunks.append(Arrival(time.perf_counter(), bytes(event.data)))
                if counter is not None and s.leave_after_events is not None and not ended:
                    for sse in counter.feed(bytes(event.data)):
                        seen += 1
                        ended = ended or _terminal(sse.data, sse.event)
                    if seen >= s.leave_after_events and not ended:
                        left, transcript.transport = True, Transport.LEFT
                        break
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                transcript.transport = Transport.RESET
                transcript.transport_error = "the connection closed before a response"
                break
    except h11.RemoteProtocolError as exc:  # e.g. the body ended inside a chunk
        transcript.transport, transcript.transport_error = Transport.RESET, f"h11: {exc}"
    except ConnectionError as exc:
        transcript.transport = Transport.RESET
        transcript.transport_error = f"{type(exc).__name__}: {exc}"
    finally:
        transcript.ended_at = time.perf_counter()
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
