"""What crosses between a Locust worker and the master (`bench/soak_locust.py`): the
blocking client the workers' users run, and a stream's transcript as a message. Free of
Locust, so that the master's side and the tests can import it without gevent's patches."""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

from bench.soak_client import STREAM_BOUND, Conversation, request_body
from bench.soak_schedules import Schedule
from streamproof.harness.transcript import Arrival, Transcript, Transport


def exchange_blocking(
    host: str,
    port: int,
    s: Schedule,
    bound: float = STREAM_BOUND,
    headers: Mapping[str, str] | None = None,
) -> tuple[Transcript, bool]:
    """`soak_client.exchange` over a blocking socket: the same request and headers, the
    same client behaviour. A worker cannot see the fake's journal, so it waits a fixed
    `bound` from the request, not the patience of `soak_client` (and the give-up before
    headers)."""
    x = Conversation(host, port, s, headers)
    try:
        sock = socket.create_connection((host, port))
    except OSError as exc:
        x.broken(exc, "connect: ")
        return x.over()
    try:
        sock.sendall(x.request)
        x.sent()
        ends = time.monotonic() + bound
        give_up = s.leave_before_response
        head_ends = ends if give_up is None else min(ends, time.monotonic() + give_up)
        while True:
            waiting_for_head = x.waiting_for_head
            left = (head_ends if waiting_for_head else ends) - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                data = sock.recv(65536)
            except TimeoutError:
                gave_up = waiting_for_head and give_up is not None and head_ends < ends
                x.timed_out(gave_up, f"held: still open {bound:g} s after it was sent")
                break
            if x.receive(data):
                break
    except ConnectionError as exc:
        x.broken(exc)
    finally:
        transcript, left_early = x.over()
        sock.close()  # a client that leaves closes its connection: the proxy sees it go
    return transcript, left_early


def to_wire(s: Schedule, transcript: Transcript, left: bool) -> dict[str, Any]:
    """What a worker sends of one stream: its index and what its client received (msgpack
    keeps bytes as bytes)."""
    t = transcript
    return {
        "index": s.index,
        "left": left,
        "sent_at": t.sent_at,
        "status": t.status,
        "headers": t.headers,
        "headers_at": t.headers_at,
        "chunks": [(a.at, a.data) for a in t.chunks],
        "transport": t.transport.value,
        "transport_error": t.transport_error,
        "ended_at": t.ended_at,
    }


def from_wire(s: Schedule, item: dict[str, Any]) -> tuple[Transcript, bool]:
    """The transcript `to_wire` sent, at the master (the request is the schedule's)."""
    transcript = Transcript(
        request=request_body(s),
        sent_at=item["sent_at"],
        status=item["status"],
        headers=dict(item["headers"]),
        headers_at=item["headers_at"],
        chunks=[Arrival(at, bytes(data)) for at, data in item["chunks"]],
        transport=Transport(item["transport"]),
        transport_error=item["transport_error"],
        ended_at=item["ended_at"],
    )
    return transcript, bool(item["left"])
