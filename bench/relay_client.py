"""The relay bench's client (`bench/relay_bench.py`): HTTP/1.1 on asyncio, one response at a
time per connection, with a small chunked-body decoder that counts events; and the routes to
the fake provider, direct or through a proxy."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field

from streamproof.fake_providers.chat import DEFAULT_MESSAGES

DIRECT, REFERENCE = "direct", "reference"


class HTTPFailure(Exception):
    """A response that was not a complete 200 event stream."""


class Stale(HTTPFailure):
    """A reused keep-alive connection that the server had closed before it answered: not a
    failed stream. A client sends the request again on a new connection, as HTTP clients do
    (RFC 9112, 9.3.1: a server may close an idle connection at any time, and a request that
    got no byte of an answer may be retried). nginx closes its side after the 1,000th
    request on a connection (`keepalive_requests`), uvicorn after 5 s idle."""


HEAD, SIZE, DATA, DATA_END, TRAILER, SIZED, DONE = range(7)


class Response:
    """One response, decoded incrementally: status, then a chunked or sized body.

    It counts events (a blank line, `\\n\\n`, in the body: the fake and the proxy both
    write LF line endings here) and notes the times of the first response byte, the first
    and last body bytes and, if asked, each event's arrival; and whether the server said
    `Connection: close` (then the connection carries no other response).
    """

    def __init__(self, sent: float, keep_arrivals: bool) -> None:
        self.sent = sent
        self.head_at = 0.0  # first byte of the response
        self.first_at = 0.0  # first byte of the body
        self.end_at = 0.0  # last byte of the body
        self.events = 0
        self.arrivals: list[float] | None = [] if keep_arrivals else None
        self.done = False
        self.status = 0
        self.closing = False  # `Connection: close`: the server ends the connection after it
        self._state = HEAD
        self._buffer = b""
        self._left = 0
        self._newline = False  # the body so far ends with "\n"

    def feed(self, data: bytes, now: float) -> bool:
        """Take bytes read at `now`; say whether the response is complete."""
        if not self.head_at:
            self.head_at = now
        buffer = self._buffer + data if self._buffer else data
        at, size = 0, len(buffer)
        state = self._state
        while at < size or state == DONE:
            if state == DATA or state == SIZED:
                take = min(self._left, size - at)
                self._body(buffer[at : at + take], now)
                at += take
                self._left -= take
                if not self._left:
                    state = DATA_END if state == DATA else DONE
            elif state == SIZE:
                end = buffer.find(b"\r\n", at)
                if end < 0:
                    break
                chunk = int(buffer[at:end].split(b";", 1)[0], 16)
                at = end + 2
                state, self._left = (DATA, chunk) if chunk else (TRAILER, 0)
            elif state == DATA_END:
                if size - at < 2:
                    break
                at += 2
                state = SIZE
            elif state == TRAILER:
                end = buffer.find(b"\r\n", at)
                if end < 0:
                    break
                state = TRAILER if end > at else DONE  # a blank line ends the trailers
                at = end + 2
            elif state == HEAD:
                end = buffer.find(b"\r\n\r\n", at)
                if end < 0:
                    break
                state = self._head(buffer[at:end])
                at = end + 4
            else:  # DONE
                if at < size:
                    raise HTTPFailure(f"{size - at} bytes after the end of the response")
                self.done = True
                self.end_at = self.end_at or now
                break
        self._state = state
        self._buffer = buffer[at:]
        return self.done

    def _head(self, head: bytes) -> int:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        if self.status != 200:
            raise HTTPFailure(f"status {self.status}")
        options = fields.get(b"connection", b"").split(b",")
        self.closing = any(option.strip() == b"close" for option in options)
        if fields.get(b"transfer-encoding") == b"chunked":
            return SIZE
        self._left = int(fields.get(b"content-length", b"-1"))
        if self._left < 0:
            raise HTTPFailure("a body with neither chunked encoding nor a length")
        return SIZED if self._left else DONE

    def _body(self, piece: bytes, now: float) -> None:
        if not piece:
            return
        if not self.first_at:
            self.first_at = now
        self.end_at = now
        events = piece.count(b"\n\n") + (self._newline and piece[0] == 10)
        self._newline = piece[-1] == 10
        if events:
            self.events += events
            if self.arrivals is not None:
                self.arrivals.extend([now] * events)


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one stream after another.

    A close by the server is a failure of the response in progress, except on a connection
    that has carried a response before, when no byte of the new one had arrived: that is a
    `Stale` connection, to be opened again (see `Lane`). A response that said
    `Connection: close` leaves its connection unusable, as the server is closing it.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.served = 0  # complete responses received on this connection
        self._response: Response | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        response, waiter = self._response, self._waiter
        if response is None or waiter is None:
            self._fail(HTTPFailure("bytes arrived with no request outstanding"))
            return
        try:
            done = response.feed(data, now)
        except (HTTPFailure, ValueError, IndexError) as exc:
            self._fail(exc if isinstance(exc, HTTPFailure) else HTTPFailure(repr(exc)))
            return
        if done:
            self.served += 1
            self._response = self._waiter = None
            if response.closing:
                self._fail(HTTPFailure("the server closed the connection (Connection: close)"))
            waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        response = self._response
        if response is not None and not response.head_at and self.served:
            self._fail(Stale(f"a reused connection closed before its answer: {exc or 'EOF'}"))
        else:
            self._fail(HTTPFailure(f"connection closed: {exc or 'EOF'}"))

    def _fail(self, exc: Exception) -> None:
        self._lost = self._lost or exc
        waiter, self._waiter, self._response = self._waiter, None, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return self._lost is None and self.transport is not None

    async def fetch(self, request: bytes, keep_arrivals: bool = False) -> Response:
        if self._lost is not None or self.transport is None:
            raise HTTPFailure(f"connection unusable: {self._lost}")
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        response = Response(0.0, keep_arrivals)
        self._waiter, self._response = waiter, response
        response.sent = time.perf_counter()  # allocations first: the clock right before the write
        self.transport.write(request)
        return await waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Route:
    """One way to the fake provider: directly, or through a proxy."""

    name: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)
    leader: int | None = None  # the proxy's process (group leader), None for direct

    def request(self, model: str) -> bytes:
        body = json.dumps(
            {"model": model, "stream": True, "messages": list(DEFAULT_MESSAGES)},
            separators=(",", ":"),
        ).encode()
        lines = [
            "POST /v1/chat/completions HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(Connection, "127.0.0.1", self.port)
        return protocol


class Lane:
    """A route's keep-alive connection, opened again when the server closed it between two
    responses, as HTTP clients do: after a response that said `Connection: close`, when the
    close was seen while idle (uvicorn closes after 5 s, which a slow proxy's connection
    can spend waiting for the others of its level), or when a request written on a reused
    connection got no byte of an answer before the close (`Stale`: it is sent once more, on
    a new connection). `reconnects` counts them. A close in the middle of a response is
    still a failed stream (`HTTPFailure`)."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.reconnects = 0
        self._conn: Connection | None = None

    async def open(self) -> Lane:
        self._conn = await self.route.connect()
        return self

    async def fetch(self, request: bytes, keep_arrivals: bool = False) -> Response:
        if self._conn is None or not self._conn.usable:
            self.reconnects += self._conn is not None
            self._conn = await self.route.connect()
        try:
            return await self._conn.fetch(request, keep_arrivals)
        except Stale:
            self.reconnects += 1
            self._conn = await self.route.connect()
            return await self._conn.fetch(request, keep_arrivals)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
