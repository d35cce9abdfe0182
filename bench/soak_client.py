"""The chaos soak's client (`bench/soak.py`): one stream's request on a connection of its
own, over HTTP/1.1 with h11, and the stream as it ran."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import h11

from bench.soak_schedules import Schedule
from streamproof.fake_providers import Journal, chat
from streamproof.harness.sse import SSEDecoder
from streamproof.harness.targets import REFERENCE_TIMEOUTS
from streamproof.harness.transcript import Arrival, Transcript, Transport

TIMEOUTS = REFERENCE_TIMEOUTS  # the config the harness writes: idle 0.3, first byte 0.5, total 5 s
# A client gives up on a stream this long after sending it: the proxy's total timeout plus
# room for a loaded machine. A stream still open then has been held past every timer.
STREAM_BOUND = TIMEOUTS.bound("total") + 3.0
CHAT_PATH = "/v1/chat/completions"


@dataclass
class Stream:
    """One stream as it ran: its schedule, what the client saw, the upstream's journal."""

    schedule: Schedule
    transcript: Transcript
    left: bool  # the client hung up before the end
    journal: Journal
    result: str = ""  # success | http_error | error | left | broken
    problems: list[tuple[str, str]] = field(default_factory=list)  # (check, detail)
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


async def exchange(port: int, s: Schedule) -> tuple[Transcript, bool]:
    """Send one stream's request on a connection of its own; record what comes back."""
    body = {"model": s.model, "messages": list(chat.DEFAULT_MESSAGES), "stream": True}
    payload = json.dumps(body).encode()
    loop = asyncio.get_running_loop()
    transcript = Transcript(request=body, sent_at=time.perf_counter())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        transcript.transport, transcript.transport_error = Transport.RESET, f"connect: {exc}"
        transcript.ended_at = time.perf_counter()
        return transcript, False
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("host", f"127.0.0.1:{port}"),
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("content-length", str(len(payload))),
        ("connection", "close"),
    ]
    request = h11.Request(method="POST", target=CHAT_PATH, headers=headers)
    left = False
    counter = SSEDecoder() if s.leave_after_events is not None else None
    seen, ended = 0, False
    try:
        writer.write(conn.send(request) + conn.send(h11.Data(data=payload)))
        writer.write(conn.send(h11.EndOfMessage()))
        transcript.sent_at = time.perf_counter()
        ends = loop.time() + STREAM_BOUND
        give_up = s.leave_before_response
        head_ends = ends if give_up is None else min(ends, loop.time() + give_up)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                waiting_for_head = transcript.status is None
                try:
                    async with asyncio.timeout_at(head_ends if waiting_for_head else ends):
                        data = await reader.read(65536)
                except TimeoutError:
                    if waiting_for_head and give_up is not None and head_ends < ends:
                        left, transcript.transport = True, Transport.LEFT
                    else:
                        transcript.transport = Transport.TIMED_OUT
                    transcript.transport_error = "TimeoutError"
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
