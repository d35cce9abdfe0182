"""The live feed: `GET /ws`, a WebSocket that tells every watcher what the proxy is doing.

The protocol (every server message is one JSON object, sent as one text frame):

- on connect, `init`: the health report (its `recent` records and `active_requests`
  included), so a page can draw itself from one message;
- `stream_started` (`stream`: id, model, endpoint, stream, started_at) and `stream_ended`
  (`stream`: the health record: result, status, error_class, chunks, usage, duration, ...;
  `bucket`: the report's timeline bucket it was counted in, as it stands after it) for
  every request, and `alert` (`change`: raised or cleared, `alert`) for every alert
  change; each event carries `summary`, the report's headline figures after it, the alerts
  in force with their current figures included (an alert's message follows the numbers
  while it holds; its `alert` event is sent only when it is raised and when it clears);
- `{"type": "ping"}` is answered by `{"type": "pong"}` (with the ping's `id`, if it had a
  short one); anything else a client sends gets an `error` message (`code`: invalid_json,
  not_an_object, unknown_type, binary_not_accepted, ...) and the connection stays open;
- every message has `seq`, 1 for the first message of a connection and one more for each
  next one, so a client can prove it missed nothing.

When the proxy has a key (`server.api_key_env`), a client sends it in its handshake
(`Authorization: Bearer KEY` or `x-api-key`; a wrong one is refused with 401 before the
upgrade) or, as a browser must, in its first message: the server sends `auth_required`, waits
`feed.auth_timeout` seconds for `{"type": "auth", "key": KEY}`. No message ever carries a
key: the server echoes nothing a client sent but a ping's short `id`.

Close codes: 1008 (policy violation) for a wrong or missing key and for a client dropped
as too slow; 1009 for a message over the size limit (uvicorn's `ws_max_size`); 1012 when
the proxy shuts down (uvicorn's). The reason says which.

Design: a broadcast never awaits. Each client has its own queue and its own writer task;
`publish` serialises an event once, then appends it (with that client's next `seq`) to each
queue over a snapshot of the clients, so clients that connect or leave during a broadcast
change nothing for the others, and a slow client slows nobody. A client whose queue holds
`feed.queue` messages is dropped: its queue is emptied and it gets a 1008 close after what
it was already sent. Each connection's kernel send buffer is `feed.send_buffer` bytes (see
`websocket_protocol`), so that queue starts to fill after tens of kilobytes, not megabytes.
A client that reads nothing at all never lets that close frame out; its writer gives up
after CLOSE_TIMEOUT and the server closes the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
from collections import deque
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from streamproof.proxy import jsonio
from streamproof.proxy.auth import key_matches, presented_key
from streamproof.proxy.config import FeedConfig
from streamproof.proxy.health import Alert, Health, Record, Started

logger = logging.getLogger("proxy.feed")

POLICY_VIOLATION = 1008
CLOSE_TIMEOUT = 5.0  # seconds a dropped client has to take its close frame
MAX_PING_ID = 64  # characters of a ping's `id` echoed in its pong


class Subscriber:
    """One connection's outgoing messages: its `seq` counter and its bounded queue."""

    __slots__ = ("closing", "limit", "pending", "ready", "seq")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seq = 0
        self.pending: deque[str] = deque()
        self.ready = asyncio.Event()
        self.closing: tuple[int, str] | None = None  # (code, reason) once it is to close

    def offer(self, body: str) -> bool:
        """Queue one message: `body` is a JSON object's text, without `seq`. False when the
        client is closing, or is dropped now because its queue is full."""
        if self.closing is not None:
            return False
        if len(self.pending) >= self.limit:
            self.pending.clear()
            self.close(POLICY_VIOLATION, f"too slow: {self.limit} messages were waiting")
            return False
        self.seq += 1
        self.pending.append(f'{{"seq":{self.seq},{body[1:]}')
        self.ready.set()
        return True

    def send(self, message: dict[str, Any]) -> bool:
        return self.offer(_dumps(message))

    def close(self, code: int, reason: str) -> None:
        """Close after what is already queued; nothing more is queued."""
        if self.closing is None:
            self.closing = (code, reason)
            self.ready.set()


class Feed:
    """The clients of `/ws` and what they are sent; an ASGI app for the route."""

    def __init__(self, health: Health, config: FeedConfig, key: str = "") -> None:
        self._health = health
        self._config = config
        self._key = key
        self._subscribers: set[Subscriber] = set()
        health.begin_listeners.append(self._started)
        health.record_listeners.append(self._ended)
        health.alert_listeners.append(self._alert)

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def publish(self, message: dict[str, Any]) -> None:
        """Queue `message` for every subscribed client. Never awaits, never raises."""
        if not self._subscribers:
            return
        message["summary"] = self._health.summary()
        body = _dumps(message)
        for subscriber in tuple(self._subscribers):
            if not subscriber.offer(body):
                self._subscribers.discard(subscriber)
                logger.warning("feed: dropped a client: %s", subscriber.closing)

    # The listeners build their message only for someone: with no client subscribed (the
    # usual case), a request's start and end cost the feed nothing.

    def _started(self, started: Started) -> None:
        if self._subscribers:
            self.publish({"type": "stream_started", "stream": started.as_json()})

    def _ended(self, record: Record) -> None:
        if self._subscribers:
            bucket = self._health.timeline.latest()
            self.publish({"type": "stream_ended", "stream": record.as_json(), "bucket": bucket})

    def _alert(self, change: str, alert: Alert) -> None:
        if self._subscribers:
            self.publish({"type": "alert", "change": change, "alert": alert.as_json()})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        presented = presented_key(Headers(scope=scope))
        if self._key and presented is not None and not key_matches(presented, self._key):
            await _refuse(websocket)
            return
        await websocket.accept()
        subscriber = Subscriber(self._config.queue)
        writer = asyncio.create_task(_write(websocket, subscriber))
        reader = asyncio.create_task(self._read(websocket, subscriber, presented is None))
        try:
            # The reader ends when the client leaves or fails to authenticate, the writer
            # once the connection is closed. A closing client keeps its writer until the
            # close frame is out (bounded by CLOSE_TIMEOUT).
            await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
            if subscriber.closing is not None:
                await asyncio.wait((writer,))
        finally:
            self._subscribers.discard(subscriber)
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            for task in (reader, writer):
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    def _subscribe(self, subscriber: Subscriber) -> None:
        """Send the snapshot and start the events, with no await in between: the client
        misses nothing and gets nothing twice."""
        subscriber.send({"type": "init", "health": self._health.report()})
        self._subscribers.add(subscriber)

    async def _read(self, websocket: WebSocket, subscriber: Subscriber, must_auth: bool) -> None:
        if self._key and must_auth:
            subscriber.send({"type": "auth_required"})
            if not await self._authenticate(websocket, subscriber):
                return
        self._subscribe(subscriber)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = _answer(message)
            if reply is not None:
                subscriber.send(reply)

    async def _authenticate(self, websocket: WebSocket, subscriber: Subscriber) -> bool:
        """Wait for the `auth` message; close the connection (1008) unless it is right."""
        try:
            async with asyncio.timeout(self._config.auth_timeout):
                message = await websocket.receive()
        except TimeoutError:
            subscriber.close(POLICY_VIOLATION, "no auth message in time: send the proxy key")
            return False
        if message["type"] == "websocket.disconnect":
            return False
        parsed = _parse(message.get("text"))
        key = parsed.get("key") if parsed.get("type") == "auth" else None
        if not isinstance(key, str):
            subscriber.close(POLICY_VIOLATION, 'authenticate first: {"type": "auth", "key": ...}')
            return False
        if not key_matches(key, self._key):
            subscriber.close(POLICY_VIOLATION, "invalid proxy key")
            return False
        return True


async def _write(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Send the queued messages in order until the connection is to close, then close it."""
    try:
        while True:
            while subscriber.pending:
                await websocket.send_text(subscriber.pending.popleft())
            if subscriber.closing is not None:
                break
            subscriber.ready.clear()
            await subscriber.ready.wait()
        code, reason = subscriber.closing
        # A client that reads nothing never lets the close frame out: give up in time.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await websocket.close(code, reason)
    except (WebSocketDisconnect, OSError, RuntimeError):
        # The client went away while we were sending: its socket is gone (Starlette turns
        # that into WebSocketDisconnect) or it sent a close frame that uvicorn has already
        # answered, after which uvicorn refuses any send with a RuntimeError. Either way
        # the reader sees the disconnect and the connection ends; nothing is left to send.
        return


def websocket_protocol(send_buffer: int) -> type[asyncio.Protocol]:
    """uvicorn's WebSocket protocol (websockets, sans-IO) with each connection's kernel send
    buffer set to `send_buffer` bytes (SO_SNDBUF; 0 leaves the kernel's, which grows to
    megabytes). What a client that stops reading can hold up is then that buffer, the
    transport's 64 KiB and `feed.queue` messages; then it is dropped."""

    class BoundedSendBuffer(WebSocketsSansIOProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None and send_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            super().connection_made(transport)

    return BoundedSendBuffer


def _answer(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reply to one client message (the feed's events are not replies)."""
    text = message.get("text")
    if text is None:
        return _error("binary_not_accepted", "send JSON text frames, not binary ones")
    try:
        parsed = jsonio.loads(text)
    except ValueError:
        return _error("invalid_json", "the message is not valid JSON")
    if not isinstance(parsed, dict):
        return _error("not_an_object", 'send a JSON object, e.g. {"type": "ping"}')
    kind = parsed.get("type")
    if kind == "ping":
        pong: dict[str, Any] = {"type": "pong"}
        ping_id = parsed.get("id")
        # A number is echoed only when finite: JSON's 1e400 parses as infinity, which
        # strict JSON cannot say back.
        if (isinstance(ping_id, int | float) and math.isfinite(ping_id)) or (
            isinstance(ping_id, str) and len(ping_id) <= MAX_PING_ID
        ):
            pong["id"] = ping_id
        return pong
    if kind == "auth":
        return _error("unexpected_auth", "this connection is already authenticated")
    return _error("unknown_type", "unknown message type (accepted: ping, auth)")


def _parse(text: str | None) -> dict[str, Any]:
    """A client message as a JSON object, or {} for anything else."""
    try:
        parsed = jsonio.loads(text) if text is not None else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


async def _refuse(websocket: WebSocket) -> None:
    """A wrong key in the handshake: 401 with the proxy's JSON error, never upgraded."""
    body = {
        "error": {
            "message": "invalid proxy key",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(body, status_code=401))
    else:  # a server without the denial extension answers 403
        await websocket.close(POLICY_VIOLATION, "invalid proxy key")
