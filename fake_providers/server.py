"""The fake provider's server: asyncio streams for the sockets, h11 for HTTP/1.1.

Faults happen on the wire, which an ASGI app cannot do: a reset must be a real TCP RST,
a stall a silent open socket, a split a real write boundary. So this server owns its
sockets. It runs its own event loop on a thread of its own, which lets synchronous tests
and fixtures use it, and binds 127.0.0.1 on an ephemeral port.

It answers `/v1/chat/completions`, `/v1/messages` (Anthropic), `/v1/responses` (OpenAI
Responses) and `/v1/models`, and the same under any route label,
`/<label>/v1/...`, so one server can be every provider of a proxy's fallback chain
(`url_for("b")` is provider B's base URL). Faults count attempts per request id across all
routes: `first-3` fails the first three attempts of a request wherever they went.

A chat request OpenAI would refuse gets the 400 `invalid_request_error` OpenAI would send
(`validation.py`), never a crash or a dropped connection. One whose request id can be read
from its model is journaled as an attempt (numbered like the others, so it counts towards
`first-K`) whose answer is that 400; no fault fires on it. One whose model cannot be read
(a body that is not a JSON object, no model, a malformed scenario) has no journal to go to.

Two details matter for exactness:
- Each write is journaled just before it is made, so whatever the peer has read, the
  journal already shows: a check never sees the client ahead of the upstream.
- The transport's write buffer limit is 0, so `drain()` returns only once every byte has
  been handed to the kernel, before the next write or a reset.
  A reset discards what the kernel has not yet sent, as it would on a real network: with
  a slow reader and a large body, the peer may read less than was written before a reset.
  Checks therefore compare with prefixes of what was written, never with all of it.
- While a response is being written, a watcher reads the socket: the proxy hanging up
  (EOF or a reset) is noticed at once and written in the journal, even during a stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import json
import os
import re
import socket
import ssl
import struct
import threading
import time
from typing import Any

import h11

from streamproof.fake_providers import apis, chat, tokens, validation
from streamproof.fake_providers.faults import Fault
from streamproof.fake_providers.journal import (
    LABEL_PATTERN,
    Attempt,
    Journal,
    Journals,
    fingerprint,
    parse_route,
)
from streamproof.fake_providers.plan import Ending, FrameKind, Plan
from streamproof.fake_providers.scenario import ScenarioError
from streamproof.fake_providers.tls import Authority, HandshakeFault, HandshakeReset
from streamproof.fake_providers.validation import InvalidRequest

MAX_BODY = 8 * 1024 * 1024
SECRET_HEADERS = {"authorization", "api-key", "x-api-key", "proxy-authorization"}
STALL_LIMIT = 30.0  # a stall ends by itself after this long, so no test can hang on it
# A reset that follows a body's bytes waits this long first (or until the peer leaves), so
# that a proxy which reads as data comes has read what came before the fault: a client
# library that raises a stored reset before the data it buffered (aiohttp) would otherwise
# lose those events or not, by scheduling, and the case would judge a race, not the proxy.
RESET_GRACE = 0.05


class FakeProvider:
    """An OpenAI-compatible upstream that misbehaves as each request's scenario says.

    >>> with FakeProvider() as provider:
    ...     provider.base_url   # 'http://127.0.0.1:PORT/v1'
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        stall_limit: float = STALL_LIMIT,
        port: int = 0,
        tls: Authority | None = None,
    ) -> None:
        """`port` 0 is an ephemeral one; another is for a proxy its user wired to it. With
        `tls`, every connection is TLS with that authority's certificate (`https://`)."""
        self.host = host
        self.tls = tls
        self.doors: list[Door] = []
        self.stall_limit = stall_limit
        self.journals = Journals()
        self._sock = socket.create_server((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.accepted = 0  # connections accepted so far (a client that reuses them opens few)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/v1"

    def url_for(self, label: str) -> str:
        """The base URL of a labelled route: `http://127.0.0.1:PORT/b/v1` for "b".

        "" is the unlabelled route (`base_url`), the one `Attempt.route` calls "".
        """
        if label == "":
            return self.base_url
        if not re.fullmatch(LABEL_PATTERN, label):
            raise ValueError(f"a route label matches {LABEL_PATTERN}, not {label!r}")
        return f"{self.scheme}://{self.host}:{self.port}/{label}/v1"

    def door(self, fault: HandshakeFault) -> Door:
        """Another port of this fake (same routes, same journals) whose handshakes misbehave
        as `fault` says (tls.py); it serves until the fake stops. TLS only."""
        if self.tls is None:
            raise ValueError("a handshake fault needs a fake that serves TLS")
        if self._loop is None:
            raise RuntimeError("the fake provider is not started")
        door = Door(self, fault, socket.create_server((self.host, 0)))
        future = asyncio.run_coroutine_threadsafe(door.open(), self._loop)
        future.result()
        self.doors.append(door)
        return door

    def journal(self, nonce: str) -> Journal:
        return self.journals[nonce]

    def start(self) -> FakeProvider:
        # The usage figures need the tokenizer, whose first load takes ~0.5 s: loaded now,
        # the first answer is as quick as the others (a proxy's first-byte timer of a few
        # hundred ms must not fire on the fake's start-up).
        tokens.warm_up()
        self._thread = threading.Thread(target=self._run, name="fake-provider", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._startup_error is not None:
            raise RuntimeError("the fake provider failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving; harmless to call twice, or without `start()`."""
        thread, self._thread = self._thread, None
        if thread is None:
            self._sock.close()  # never handed to a loop: close it here
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        thread.join()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(self._accept, sock=self._sock)
        except OSError as exc:
            self._startup_error = exc
            self._started.set()
            return
        self._started.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for door in self.doors:
                door.close()
            # Aborting the transports ends every handler through its own error path;
            # cancelling the handler tasks instead makes asyncio log them as failures.
            for task, writer in list(self._connections.items()):
                writer.transport.abort()
                await asyncio.wait([task])

    async def _accept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        door: Door | None = None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.accepted += 1
        try:
            if self.tls is not None and not await self._handshake(reader, writer, door):
                return
            await _Connection(self, reader, writer).serve()
        finally:
            del self._connections[task]

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, door: Door | None
    ) -> bool:
        """The server's side of the TLS handshake, or the door's fault in its place: whether
        the connection is now TLS and may carry requests."""
        assert self.tls is not None
        fault = door.fault if door is not None else None
        if door is not None and fault is not None:
            door.handshakes += 1
            if fault.faults(door.handshakes):
                await reader.read(65536)  # the ClientHello (or the peer's leaving)
                if isinstance(fault, HandshakeReset):
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:  # a stall: silent until the peer leaves (or the stall limit)
                    began = time.perf_counter()
                    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                        async with asyncio.timeout(self.stall_limit):
                            while await reader.read(65536):
                                pass
                            door.stall_given_up(time.perf_counter() - began)
                writer.transport.abort()
                return False
        context = self.tls.context(fault.certificate if fault is not None else "")
        try:
            await writer.start_tls(context)
        except (ssl.SSLError, ConnectionError, OSError):
            # The peer refused the certificate or left: no request comes on this connection.
            writer.transport.abort()
            return False
        if door is not None:
            door.completed += 1
        return True


class Door:
    """A port of the fake whose TLS handshakes misbehave as `fault` says."""

    def __init__(self, provider: FakeProvider, fault: HandshakeFault, sock: socket.socket) -> None:
        self.provider = provider
        self.fault = fault
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self.handshakes = 0  # connections begun here (each one a handshake)
        self.completed = 0  # handshakes the client completed (it trusted what it was shown)
        self.stalls: list[float] = []  # seconds each stalled handshake lasted till the peer left
        self._changed = threading.Condition()
        self._server: asyncio.Server | None = None

    def stall_given_up(self, seconds: float) -> None:
        with self._changed:
            self.stalls.append(seconds)
            self._changed.notify_all()

    def wait_stalls(self, count: int, timeout: float) -> list[float]:
        """How long the first `count` stalled handshakes lasted before the peer left them,
        once it has left them all (or fewer, if `timeout` seconds pass first)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.stalls) >= count, timeout)
            return list(self.stalls)

    @property
    def base_url(self) -> str:
        return f"https://{self.provider.host}:{self.port}/v1"

    async def open(self) -> None:
        accept = functools.partial(self.provider._accept, door=self)
        self._server = await asyncio.start_server(accept, sock=self._sock)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


class _Connection:
    """One client connection, possibly carrying several requests (keep-alive)."""

    def __init__(
        self, provider: FakeProvider, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.provider = provider
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER)
        self.requests = 0  # requests read on this connection so far (keep-alive: several)
        protocol = getattr(writer.transport, "_ssl_protocol", None)
        if protocol is None:
            writer.transport.set_write_buffer_limits(0)
        else:
            # Over TLS the same, one layer down: the socket's transport pauses the TLS layer
            # while the kernel has not taken every byte, and the TLS layer passes that on.
            # (Its own limit of 0 would pause at 0 bytes too, and never resume for good.)
            protocol._transport.set_write_buffer_limits(0)
            writer.transport.set_write_buffer_limits(high=1, low=0)
        # asyncio sets TCP_NODELAY only when the listening socket was made with IPPROTO_TCP;
        # without it, Nagle's algorithm would hold small writes back and merge them.
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def serve(self) -> None:
        try:
            while True:
                request = await self._read_request()
                if request is not None:
                    self.requests += 1
                if request is None or not await self._respond(*request):
                    break
                if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                    break
                self.h11.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            pass  # the peer went away or spoke garbage; the journal already has what happened
        finally:
            if not self.writer.transport.is_closing():
                self.writer.close()

    async def _receive(self) -> bool:
        data = await self.reader.read(65536)
        self.h11.receive_data(data)
        return bool(data)

    async def _read_request(self) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                if not await self._receive() and self.h11.their_state is h11.IDLE:
                    return None
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large")
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _respond(self, request: h11.Request, raw_body: bytes) -> bool:
        """Answer one request; say whether the connection may carry another."""
        method, path = request.method.decode(), request.target.decode().split("?")[0]
        route = parse_route(path)
        if route is None:
            return await self._send_json(404, _error(f"no route for {method} {path}"))
        if route[1] == "models":
            if method != "GET":
                return await self._send_json(405, _error("use GET"))
            return await self._send_json(200, {"object": "list", "data": _models()})
        if method != "POST":
            return await self._send_json(405, _error("use POST"))
        api = apis.APIS[route[1]]
        try:
            body, scenario = validation.read_scenario(raw_body)
        except InvalidRequest as exc:  # no request id can be read: nothing to journal
            return await self._send_json(400, api.refusal(exc))
        headers = {
            name.decode().lower(): value.decode("latin-1") for name, value in request.headers
        }
        for name in SECRET_HEADERS & headers.keys():
            headers[name] = fingerprint(headers[name])
        journal = self.provider.journal(scenario.nonce)
        attempt = journal.begin(method, path, headers, body, abandoned=_hung_up(self.writer))
        faults: list[Fault] = []  # those that fire
        try:
            api.check(body, scenario)
        except InvalidRequest as exc:  # refused at the door: an attempt, but no fault fires
            plan = api.refusal_plan(exc)
        else:
            plan = api.answer(body, scenario, attempt.number)
            for fault in scenario.faults_for(attempt.number):
                changed = fault.apply(plan)
                if fault.stage == 1 and _whole(plan) and changed.frames == plan.frames:
                    # A fault after event n of a whole (non-streamed) answer, whose one
                    # document it leaves whole: it breaks nothing, and is not said to fire.
                    continue
                faults.append(fault)
                plan = changed
        journal.update(lambda: setattr(attempt, "faults", [fault.token for fault in faults]))
        return await _Writer(self, journal, attempt, plan).run()

    async def _send_json(self, status: int, document: Any) -> bool:
        body = json.dumps(document).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        self.writer.write(self.h11.send(h11.Response(status_code=status, headers=headers)))
        self.writer.write(self.h11.send(h11.Data(data=body)))
        self.writer.write(self.h11.send(h11.EndOfMessage()))
        await self.writer.drain()
        return True


def _whole(plan: Plan) -> bool:
    """The plan is one whole JSON document (a non-streamed answer or an error body)."""
    return len(plan.frames) == 1 and plan.frames[0].kind is FrameKind.DOCUMENT


def _hung_up(writer: asyncio.StreamWriter) -> bool:
    """Whether the peer has closed its side already: its FIN (or a reset) is in the kernel.

    Peeked on a duplicate of the socket's descriptor, without blocking: asyncio's socket
    wrapper refuses `recv`, and nothing is consumed (a pipelined request stays where it is).
    """
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    with socket.socket(fileno=os.dup(sock.fileno())) as peek:
        try:
            return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False  # open, and nothing more sent
        except ConnectionResetError:
            return True


class _Writer:
    """Puts one plan on the wire, watching for the peer to leave, and journals it."""

    def __init__(self, conn: _Connection, journal: Journal, attempt: Attempt, plan: Plan) -> None:
        self.conn = conn
        self.journal = journal
        self.attempt = attempt
        self.plan = plan

    async def run(self) -> bool:
        watcher = asyncio.ensure_future(self._watch_peer())
        try:
            return await self._write(watcher)
        except ConnectionError:
            # A write found the peer gone before the watcher read its hang-up: this is when.
            self._peer_gone()
            self._end("peer_left")
            return False
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _write(self, peer_left: asyncio.Future[None]) -> bool:
        plan, writer, conn = self.plan, self.conn.writer, self.conn.h11
        if plan.stale is not None and self.conn.requests > 1:
            return await self._stale(plan.stale)
        if plan.before_headers is not None:
            return await self._finish(plan.before_headers, peer_left)
        headers = [("content-type", plan.content_type), *plan.extra_headers]
        if plan.content_type == "application/json":
            headers.append(("content-length", str(len(plan.body))))
        ends = plan.frame_ends()
        deltas = [frame.delta for frame in plan.frames]
        contents = [frame.deltas for frame in plan.frames]
        arguments = [frame.arguments for frame in plan.frames]
        usage = [frame.usage for frame in plan.frames]
        reasoning = [frame.reasoning for frame in plan.frames]

        def started() -> None:
            self.attempt.status = plan.status
            self.attempt.frame_ends, self.attempt.frame_deltas = ends, deltas
            self.attempt.frame_contents, self.attempt.frame_arguments = contents, arguments
            self.attempt.frame_usage, self.attempt.frame_reasoning = usage, reasoning

        if plan.close_delimited:  # h11 would frame it: this head is written by hand
            headers.append(("connection", "close"))
            lines = [b"HTTP/1.1 %d %s" % (plan.status, _reason(plan.status))]
            lines += [b"%s: %s" % (name.encode(), value.encode()) for name, value in headers]
            head = b"\r\n".join(lines) + b"\r\n\r\n"
        else:
            head = conn.send(h11.Response(status_code=plan.status, headers=headers))
        splitter = None
        if plan.records and self.conn.provider.tls is not None:
            splitter = _RecordSplitter(writer, plan.records)
        # h11 chose the body's framing (from the headers and the request's HTTP version).
        # When it is chunked, each piece is framed here: h11's bookkeeping per event is most
        # of the cost of a small write, and chunked framing needs none (h11 still writes
        # the end of the message).
        chunked = b"\r\ntransfer-encoding: chunked\r\n" in head.lower()
        writer.write(head)
        await writer.drain()
        if splitter is not None:
            await splitter.release()
        self.journal.update(started)
        pieces = list(plan.writes())
        for number, piece in enumerate(pieces, start=1):
            if peer_left.done():
                self._end("peer_left")
                return False
            if plan.close_delimited:
                data = piece
            elif chunked:
                data = b"%x\r\n%s\r\n" % (len(piece), piece) if piece else b""
            else:
                data = conn.send(h11.Data(data=piece))
            if (
                number == len(pieces)
                and plan.ending is Ending.CLEAN
                and not plan.pause
                and not plan.close_delimited
            ):
                data += conn.send(h11.EndOfMessage())  # as real servers do: one last write
            self._wrote(piece)  # journal first: the journal never lags behind the wire
            writer.write(data)
            await writer.drain()
            if splitter is not None:
                await splitter.release()
            if plan.pause:
                await asyncio.wait([peer_left], timeout=plan.pause)
        if splitter is not None:
            splitter.restore()  # the ending (and a next response) written as usual
        return await self._finish(plan.ending, peer_left)

    async def _stale(self, ending: Ending) -> bool:
        """The server had closed this idle connection: the request is met with a close
        (over TLS: close_notify, then the FIN) or a reset, and no answer. Journaled as
        `stale_close` or `stale_reset`."""
        writer = self.conn.writer
        if ending is Ending.RESET:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
        self._end("stale_reset" if ending is Ending.RESET else "stale_close")
        return False

    def _wrote(self, piece: bytes) -> None:
        self.journal.update(lambda: self.attempt.wrote(time.perf_counter(), piece))

    async def _finish(self, ending: Ending, peer_left: asyncio.Future[None]) -> bool:
        writer = self.conn.writer
        if ending is Ending.CLEAN and self.plan.close_delimited and self.attempt.status:
            writer.close()  # the close ends the body: over TLS, after close_notify
            self._end("clean")
            return False
        if ending in (Ending.RAGGED, Ending.RAGGED_END):
            if ending is Ending.RAGGED_END and self.conn.h11.our_state is h11.SEND_BODY:
                writer.write(self.conn.h11.send(h11.EndOfMessage()))
                await writer.drain()
            # A FIN with no close_notify before it (abort() sends no alert; nothing unread
            # is left in the kernel, which the watcher reads, so it is no reset).
            if not writer.transport.is_closing():
                writer.transport.abort()
            self._end(ending.value)
            return False
        if ending is Ending.CLEAN:
            if self.conn.h11.our_state is h11.SEND_BODY:
                writer.write(self.conn.h11.send(h11.EndOfMessage()))
                await writer.drain()
            self._end("clean")
            return True
        if ending is Ending.STALL:
            await asyncio.wait([peer_left], timeout=self.conn.provider.stall_limit)
            self._end("stall")
            return False
        if self.attempt.status is not None:  # after the headers: see RESET_GRACE
            await asyncio.wait([peer_left], timeout=RESET_GRACE)
        if not writer.transport.is_closing():  # the peer may have hung up meanwhile
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._end("reset")
        return False

    def _end(self, ending: str) -> None:
        def change() -> None:
            if self.attempt.ending is None:
                self.attempt.ending = ending
                self.attempt.ended_at = time.perf_counter()

        self.journal.update(change)

    async def _watch_peer(self) -> None:
        """Read until the peer hangs up, then journal when it did."""
        try:
            while await self.conn._receive():
                pass
        except ConnectionError:
            pass
        self._peer_gone()

    def _peer_gone(self) -> None:
        """Journal when the peer hung up (the first time it is noticed)."""

        def change() -> None:
            if self.attempt.peer_closed_at is None:
                self.attempt.peer_closed_at = time.perf_counter()

        self.journal.update(change)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


# After the first piece of a split TLS record: long enough for the peer to read that piece
# on its own (pieces written back to back meet again in its receive buffer), short enough
# to cost no timer anything (once per write of the answer).
RECORD_PAUSE = 0.001


class _RecordSplitter:
    """Holds what the TLS layer gives the socket, then writes it in pieces of `size` bytes
    (TCP_NODELAY sends each write at once): the first piece alone, then a pause, so that the
    peer reads a record cut at byte `size`; the others back to back."""

    def __init__(self, writer: asyncio.StreamWriter, size: int) -> None:
        protocol = getattr(writer.transport, "_ssl_protocol", None)
        self.tcp = getattr(protocol, "_transport", None)
        self.size = size
        self.held = bytearray()
        self.write = None if self.tcp is None else self.tcp.write
        if self.tcp is not None:
            self.tcp.write = self.held.extend

    async def release(self) -> None:
        """Write what is held, piece by piece."""
        first = True
        while self.held and self.write is not None:
            piece = bytes(self.held[: self.size])
            del self.held[: self.size]
            self.write(piece)
            if first:
                first = False
                await asyncio.sleep(RECORD_PAUSE)

    def restore(self) -> None:
        if self.tcp is not None:
            if self.held and self.write is not None:
                self.write(bytes(self.held))
                self.held.clear()
            self.tcp.write = self.write


def _error(message: str) -> dict[str, Any]:
    return validation.error_document(message)


def _models() -> list[dict[str, Any]]:
    return [{"id": "streamproof", "object": "model", "created": chat.CREATED, "owned_by": "fake"}]


__all__ = ["Door", "FakeProvider", "ScenarioError"]
