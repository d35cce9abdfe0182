"""The live feed (`GET /ws`) as the suites see it: connections that keep every message.

A `FeedConnection` is one client, on the `websockets` library's threaded client: what it
sends, every text frame it receives (raw and parsed), and how the connection ended (the
close code and reason, or that none came). `FeedRecorder` is one such client on a thread
of its own, connected for the whole session, so that case 6.6 can check that every stream
the suites ran had its events. `AsyncFeed` is the same on asyncio, for the cases that
hold many clients at once (churn, stalled readers).

Nothing here judges: the checks in `harness.checks.feed` do. Connections never go through
an HTTP proxy (`proxy=None`), whatever the environment says, and never leave 127.0.0.1
unless the target does.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

Message = dict[str, Any]
OPEN_TIMEOUT = 5.0
NO_CLOSE = 1006  # what a client reports when the connection ended without a close frame
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a TCP reset


def ws_url(base_url: str, path: str = "/ws") -> str:
    """`http://127.0.0.1:PORT` -> `ws://127.0.0.1:PORT/ws`."""
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"


@dataclass
class Received:
    """Everything one client received, in order, and how its connection ended."""

    raw: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # the raw frames that parsed
    not_json: list[str] = field(default_factory=list)  # frames that did not parse
    binary: int = 0  # binary frames (the protocol has none)
    close_code: int | None = None  # None while open; NO_CLOSE without a close frame
    close_reason: str = ""

    def take(self, frame: str | bytes) -> Message | None:
        if isinstance(frame, bytes):
            self.binary += 1
            return None
        self.raw.append(frame)
        try:
            parsed = json.loads(frame)
        except ValueError:
            self.not_json.append(frame)
            return None
        if not isinstance(parsed, dict):
            self.not_json.append(frame)
            return None
        self.messages.append(parsed)
        return parsed

    def closed(self, error: ConnectionClosed) -> None:
        frame = error.rcvd
        self.close_code = frame.code if frame is not None else NO_CLOSE
        self.close_reason = frame.reason if frame is not None else ""

    def of_type(self, kind: str) -> list[Message]:
        return [m for m in self.messages if m.get("type") == kind]

    def describe(self, last: int = 8) -> str:
        lines = [f"{len(self.raw)} text frame(s), {self.binary} binary"]
        if self.not_json:
            lines.append(f"{len(self.not_json)} not JSON objects, first: {self.not_json[0][:120]}")
        lines += [f"  {text[:160]}" for text in self.raw[-last:]]
        if self.close_code is not None:
            lines.append(f"closed: {self.close_code} {self.close_reason!r}")
        return "\n".join(lines)


class Refused(Exception):
    """The handshake was answered with an HTTP status, not an upgrade."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.body = body


class FeedConnection:
    """One client of the feed (a context manager; closes on exit)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        url = ws_url(base_url)
        self.received = Received()
        try:
            # Entered at once, as websockets (17.1+) wants a connection to be; it is left
            # by `close`.
            self._ws: ClientConnection = connect(
                url,
                additional_headers=dict(headers or {}),
                proxy=None,
                compression=None,
                open_timeout=OPEN_TIMEOUT,
                close_timeout=2,
                ping_interval=None,
                max_queue=1024,
            ).__enter__()
        except InvalidStatus as exc:
            raise Refused(exc.response.status_code, bytes(exc.response.body or b"")) from None

    def __enter__(self) -> FeedConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._ws.close()

    def abort(self) -> None:
        """Leave without a close handshake, as a crashed client or a cut cable does."""
        self._ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        self._ws.socket.close()

    def send(self, message: Message | str | bytes) -> bool:
        """Send one message; False (the close recorded) if the connection is closed."""
        try:
            self._ws.send(json.dumps(message) if isinstance(message, dict) else message)
        except ConnectionClosed as exc:
            self.received.closed(exc)
            return False
        return True

    def recv(self, timeout: float) -> Message | None:
        """The next frame, parsed (None if it was not a JSON object); TimeoutError when
        nothing came in `timeout` seconds; ConnectionClosed (recorded) when it is closed."""
        try:
            frame = self._ws.recv(timeout=timeout)
        except ConnectionClosed as exc:
            self.received.closed(exc)
            raise
        return self.received.take(frame)

    def until(self, done: Callable[[Message], bool], timeout: float) -> Message | None:
        """Receive until a message satisfies `done` (it is returned), or `timeout` seconds
        have passed or the connection closed (None)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.recv(left)
            except (TimeoutError, ConnectionClosed):
                return None
            if message is not None and done(message):
                return message
        return None

    def drain(self, timeout: float) -> None:
        """Receive until the connection closes or nothing more comes within `timeout`."""
        while True:
            try:
                self.recv(timeout)
            except (TimeoutError, ConnectionClosed):
                return


class StalledClient:
    """A feed client that completes its handshake, then reads nothing until `read_all`.

    Its socket has a small receive buffer (SO_RCVBUF), and nothing reads it in the
    background, so the server's writes back up at once, as they do for a client on a
    frozen tab or a congested link. It speaks WebSocket through the `websockets` library's
    sans-IO protocol, so that what it finally reads is parsed like any other client's.
    """

    def __init__(
        self, base_url: str, headers: Mapping[str, str] | None = None, receive_buffer: int = 4096
    ) -> None:
        uri = parse_uri(ws_url(base_url))
        self._protocol = ClientProtocol(uri, max_size=None)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self._sock.settimeout(OPEN_TIMEOUT)
        self._sock.connect((uri.host, uri.port))
        request = self._protocol.connect()
        request.headers.update(dict(headers or {}))
        self._protocol.send_request(request)
        self._flush()
        self.received = Received()
        while self._protocol.state is State.CONNECTING:  # read as far as the handshake
            data = self._sock.recv(4096)
            if not data:
                raise ConnectionError("the server closed the connection during the handshake")
            self._protocol.receive_data(data)
        self._take()

    def read_all(self, timeout: float) -> None:
        """Read what the server sent until it closes, or sends nothing for `timeout` s."""
        self._sock.settimeout(timeout)
        while self._protocol.close_rcvd is None:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                self._protocol.receive_eof()
                break
            self._protocol.receive_data(data)
            self._take()
            self._flush()  # the answer to a close frame
        self._take()
        close = self._protocol.close_rcvd
        if close is not None:
            self.received.close_code, self.received.close_reason = close.code, close.reason
        elif self._protocol.state is State.CLOSED:
            self.received.close_code = NO_CLOSE

    def close(self) -> None:
        self._sock.close()

    def _take(self) -> None:
        for event in self._protocol.events_received():
            if isinstance(event, Response):
                if event.status_code != 101:
                    raise Refused(event.status_code, bytes(event.body or b""))
            elif not isinstance(event, Frame):
                continue
            elif event.opcode is Opcode.TEXT:
                self.received.take(bytes(event.data).decode())
            elif event.opcode is Opcode.BINARY:
                self.received.take(bytes(event.data))

    def _flush(self) -> None:
        data = b"".join(self._protocol.data_to_send())
        if data:
            try:
                self._sock.sendall(data)
            except OSError:
                return  # the server is gone: what it sent is still read


class FeedRecorder:
    """One feed client on its own thread for the whole session, keeping every message."""

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        self.connection = FeedConnection(base_url, headers=headers)
        self._arrived = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="feed-recorder", daemon=True)
        self._thread.start()

    @property
    def received(self) -> Received:
        return self.connection.received

    def _run(self) -> None:
        try:
            while True:
                try:
                    self.connection.recv(timeout=60)
                except TimeoutError:
                    continue
                with self._arrived:
                    self._arrived.notify_all()
        except ConnectionClosed:
            with self._arrived:
                self._arrived.notify_all()

    def wait_for(self, done: Callable[[list[Message]], bool], timeout: float) -> bool:
        """Wait until `done(messages so far)` holds (True), the connection closed or
        `timeout` seconds passed (False), waking at every message, never polling."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not done(self.messages()):
                left = deadline - time.monotonic()
                if left <= 0 or self.received.close_code is not None:
                    return False
                self._arrived.wait(left)
        return True

    def messages(self) -> list[Message]:
        """A copy of the messages so far. The thread only ever appends, and copying a
        list is one step under the GIL, so the copy is a consistent prefix."""
        return list(self.received.messages)

    def close(self) -> None:
        self.connection.close()
        self._thread.join(timeout=5)


class AsyncFeed:
    """One feed client on asyncio: `run()` receives until the connection ends."""

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        self.url = ws_url(base_url)
        self.headers = dict(headers or {})
        self.received = Received()
        self.ws: AsyncConnection | None = None

    async def open(self) -> AsyncFeed:
        self.ws = await async_connect(
            self.url,
            additional_headers=self.headers,
            proxy=None,
            compression=None,
            open_timeout=OPEN_TIMEOUT,
            close_timeout=2,
            ping_interval=None,
            max_queue=1024,
        )
        return self

    async def run(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                self.received.take(frame)
        except ConnectionClosed as exc:
            self.received.closed(exc)
            return
        # A clean close ends the iteration without an exception.
        self.received.close_code = self.ws.close_code or NO_CLOSE
        self.received.close_reason = self.ws.close_reason or ""

    async def until(self, done: Callable[[Message], bool], timeout: float) -> Message | None:
        """Receive until a message satisfies `done` (use instead of `run`)."""
        assert self.ws is not None
        try:
            async with asyncio.timeout(timeout):
                async for frame in self.ws:
                    message = self.received.take(frame)
                    if message is not None and done(message):
                        return message
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self.received.closed(exc)
        return None

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def abort(self) -> None:
        """Reset the TCP connection with no close frame."""
        assert self.ws is not None
        sock = self.ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        self.ws.transport.abort()
