"""The providers' HTTP/1.1 transport: asyncio protocols, httptools' parser, a keep-alive pool.

httpx's own transport (httpcore over anyio, h11) spends more per upstream read than the
relay spends on the bytes themselves: a cancel scope and a checkpoint per read and write, a
parser event per HTTP chunk, a readiness probe of every pooled socket per request. This is
an `httpx.AsyncBaseTransport` doing the same job with less: the rest of the proxy speaks
httpx as before (requests, responses, exceptions, content decoding), and tests still give
the app an `httpx.MockTransport` instead.

- HTTP/1.1, one request at a time per connection, over TCP or TLS; the request head and
  body go out in one write.
- Body bytes are handed over as they are parsed, all that was parsed since the last read at
  once up to READ_BATCH: a relay that fell behind gets several upstream chunks in one read.
  The first read of a response is its first piece alone, which gets the first event out
  sooner.
- Reading stops (the socket is paused) while more than READ_LIMIT bytes wait to be read, so
  a slow client slows the upstream down instead of filling memory.
- A connection goes back to the pool only when its response was a success (2xx), was read
  to its end, did not say `Connection: close`, and nothing came after it; any other is
  closed when its response is closed. So a response abandoned mid-body (the client left, a
  timer fired) always closes its connection. A pooled connection that the server closed,
  or that received anything while idle, is not used again; one idle for the keep-alive
  expiry is closed then.
- Errors are httpx's: ConnectError and ConnectTimeout, ReadError for a reset,
  RemoteProtocolError for a malformed response or a close before it was complete. A body
  with neither a length nor chunks ends with the connection, and is whole only if that
  close was clean: over TLS, after the server's close_notify (RFC 9112 §9.8).
- Of the request's `timeout` extension only `connect` applies (and `pool`, waiting for a
  free connection when `limits.max_connections` are busy): the proxy bounds every other
  wait with its own timers (see `upstream.py` and `responses.py`), and cancels the read.
- Not handled, as the proxy never needs them: HEAD requests, `Expect: 100-continue`,
  HTTP proxies (`providers.py` keeps httpx's own transport when the environment names a
  proxy for a provider).
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator
from typing import cast

import httptools
import httpx

READ_LIMIT = 256 * 1024  # body bytes waiting to be read before the socket is paused
# At most about this much per read (whole pieces as the parser gave them, at least one): a
# relay that fell far behind forwards what it has in steps, rather than parsing a long
# backlog before its first byte goes out.
READ_BATCH = 4096
DEFAULT_PORTS = {b"http": 80, b"https": 443}

Origin = tuple[bytes, str, int]  # scheme, host, port


class _Connection(asyncio.Protocol):
    """One upstream connection and the response it is reading (httptools' callbacks)."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0  # loop time it went back to the pool
        self.expiry: asyncio.TimerHandle | None = None  # closes it once idle too long
        self._parser = httptools.HttpResponseParser(self)
        self._reset_message()

    def _reset_message(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False  # the whole response was parsed
        self.keep_alive = False
        self.error: httpx.TransportError | None = None
        self.in_use = False
        self._eof = False  # the peer ended the stream cleanly (a FIN; over TLS, close_notify)
        self._body: list[bytes] = []
        self._first = True  # no body read yet
        self._buffered = 0
        self._until_close = False  # a body with neither a length nor chunks: ends at EOF
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the asyncio.Transport methods without the base class.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_use or self.complete:
            # Bytes while idle, or after the response: this connection cannot be trusted
            # with another request.
            self.keep_alive = False
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))
        if self._buffered > READ_LIMIT and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        # Over TLS, a clean end is the peer's close_notify. uvloop calls this only then: a
        # close without it (a "ragged" close, RFC 8446 §6.1) reaches connection_lost with no
        # eof_received first. asyncio's TLS layer calls it for both, but for a ragged close
        # only once it has seen the TCP stream end (after close_notify, before that).
        tls = getattr(self.transport, "_ssl_protocol", None)
        self._eof = not getattr(tls, "_eof_received", False)
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.in_use or self.complete or self.error is not None:
            return
        if exc is not None:
            self.error = httpx.ReadError(str(exc) or type(exc).__name__)
        elif self.head_done and self._until_close and self._eof:
            self.complete = True  # the body ran to the end of the connection, as announced
        elif self.head_done and self._until_close:
            # No close_notify: the end of the connection cannot say the body was whole.
            self.error = httpx.RemoteProtocolError(
                "TLS connection closed without close_notify: the body may be truncated"
            )
        elif self.head_done:
            self.error = httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            )
        else:
            self.error = httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            )
        self._wake()

    # --- httptools callbacks (after the response is complete, more bytes are a second
    # message nobody asked for: ignored, and the connection is not reused) ---

    def on_message_begin(self) -> None:
        if self.complete:
            self.keep_alive = False

    def on_status(self, status: bytes) -> None:
        if not self.complete:
            self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self._until_close = not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        )
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self._body.append(body)
        self._buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if not self.complete:
            self.complete = True
            self._wake()

    # --- for the transport and the response stream ---

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: httpx.TransportError) -> None:
        self.error = error
        self.close()
        self._wake()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def head(self) -> None:
        """Wait for the response's status line and headers."""
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    async def read(self) -> bytes:
        """The body bytes parsed since the last read, up to about READ_BATCH, the first
        piece alone the first time (b"" at the end of the body)."""
        while not self._body:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self._wait()
        body = self._body
        if self._first:
            # The response's first read: its first piece alone. The relay's commit point
            # is the first event worth forwarding, which is then parsed without the rest.
            self._first = False
            data = body.pop(0)
        elif self._buffered <= READ_BATCH or len(body) == 1:
            data = body[0] if len(body) == 1 else b"".join(body)
            body.clear()
        else:  # the first pieces, READ_BATCH bytes or just over: the rest is for next time
            size = taken = 0
            while size < READ_BATCH:
                size += len(body[taken])
                taken += 1
            data = b"".join(body[:taken])
            del body[:taken]
        self._buffered -= len(data)
        if self._paused and self._buffered <= READ_LIMIT and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    @property
    def reusable(self) -> bool:
        """Whether the response was read to its end on a connection fit for another. An
        error status is not: a server in trouble may not serve a next request on the same
        connection (it may hold it, stalled), and a fresh one costs a connect on loopback."""
        return (
            self.complete
            and 200 <= self.status < 300
            and self.keep_alive
            and self.error is None
            and not self.closed
            and not self._body
        )

    def start(self) -> None:
        """Begin a request on this (new or pooled) connection."""
        self._reset_message()
        self.in_use = True

    def park(self, now: float) -> None:
        """The response is done with: keep the connection idle in the pool."""
        self.in_use = False
        self.idle_since = now
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def cancel_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None

    def close(self) -> None:
        self.cancel_expiry()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class _Body(httpx.AsyncByteStream):
    """A response body: reads from its connection, and hands the connection back or closes
    it when the response is closed (httpx closes it after the last read).

    It is its own iterator, each step one `read()` of the connection: httpx's
    `aiter_bytes()` runs it under two generators of its own (content decoding, byte counts,
    a request context per read), which `body_chunks` leaves out when there is nothing to
    decode."""

    def __init__(self, pool: Transport, conn: _Connection) -> None:
        self._pool = pool
        self._conn = conn
        self._closed = False

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        data = await self._conn.read()
        if not data:
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool._done_with(self._conn)


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body of `response` as it arrives, as `response.aiter_bytes()` gives it.

    A body from this transport with no `Content-Encoding` is read straight from its
    connection (the same bytes, in the same pieces: httpx's identity decoding and its
    chunker without a size change nothing); any other goes through httpx's decoders. The
    response is closed by its owner, as before (`aiter_bytes` would close it after the last
    read; closing it twice does nothing)."""
    stream = response.stream
    if isinstance(stream, _Body) and "content-encoding" not in response.headers:
        return stream
    return response.aiter_bytes()


class Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 to the providers, with up to `limits.max_keepalive_connections` kept."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max_kept = limits.max_keepalive_connections
        expiry = limits.keepalive_expiry
        self._expiry = math.inf if expiry is None else expiry  # seconds a connection may idle
        self._max_connections = limits.max_connections
        self._slots: asyncio.Semaphore | None = None  # made on first use, on the loop
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        origin = (scheme, url.host, url.port or DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = _head(request, body)
        await self._acquire(timeouts.get("pool"))
        conn: _Connection | None = None
        try:
            conn = self._pooled(origin) or await self._connect(origin, timeouts.get("connect"))
            conn.start()
            assert conn.transport is not None
            conn.transport.writelines((head, body))  # one write (writev) for the whole request
            await conn.head()
        except BaseException:
            if conn is not None:
                conn.close()
                self._open.discard(conn)
            self._release()
            raise
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_Body(self, conn),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": conn.reason.strip()},
        )

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    # --- the pool ---

    async def _acquire(self, timeout: float | None) -> None:
        if self._max_connections is None:
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        if timeout is None or not self._slots.locked():
            await self._slots.acquire()  # returns at once while a slot is free
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection free within the pool timeout") from None

    def _release(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _pooled(self, origin: Origin) -> _Connection | None:
        """The most recently parked usable connection to `origin`, if any."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            conn.cancel_expiry()
            if not conn.closed and now - conn.idle_since < self._expiry:
                return conn
            conn.close()
            self._open.discard(conn)
        return None

    def _expire(self, conn: _Connection) -> None:
        """An idle connection's keep-alive expiry came: close it, so that idle connections
        do not outlive their use (the pool never holds a socket longer than the expiry)."""
        idle = self._idle.get(conn.origin, [])
        if conn in idle:
            idle.remove(conn)
            conn.close()
            self._open.discard(conn)

    def _done_with(self, conn: _Connection) -> None:
        """The response on `conn` was closed: park the connection or close it."""
        idle = self._idle.setdefault(conn.origin, [])
        kept = self._max_kept is None or len(idle) < self._max_kept
        if conn.reusable and kept:
            loop = asyncio.get_running_loop()
            conn.park(loop.time())
            if math.isfinite(self._expiry):
                conn.expiry = loop.call_later(self._expiry, self._expire, conn)
            idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)
        self._release()

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == b"https":
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            context = self._ssl_context
        loop = asyncio.get_running_loop()
        conn = _Connection(origin)
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: conn, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError:
            conn.close()
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self._open.add(conn)
        return conn


def _head(request: httpx.Request, body: bytes) -> bytes:
    """The request line and headers; a body of unknown length is sent with its length."""
    headers = request.headers.raw
    if body and any(name.lower() == b"transfer-encoding" for name, _ in headers):
        # httpx announced a streamed body; it has been read whole, so it gets a length.
        headers = [(n, v) for n, v in headers if n.lower() != b"transfer-encoding"]
        headers.append((b"Content-Length", str(len(body)).encode()))
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"
