"""The recording client: it sends one request and writes down everything that comes back.

It reads the body as the network delivers it (`iter_bytes`, which undoes any content
encoding but never re-chunks), stamping each read with `time.perf_counter()`. It never
decodes lines itself: the transcript runs the project's own SSE decoder over the bytes,
because httpx's line iterator splits on characters SSE does not (U+2028 and friends).

Transport failures are facts to record, not exceptions to raise: a reset mid-body becomes
`Transport.RESET`, a silent proxy `Transport.TIMED_OUT`.

How long the client waits is not one fixed timeout. A request may carry a `Patience`: a
function of what has been seen so far (the transcript, and through the caller, the fake
provider's journal) that says until when the client keeps waiting, and for what. While the
upstream is busy or silent on purpose, the target's own timers set the wait; once the
upstream is done, the target has a short grace to finish the client's stream. A target
that holds its client past that is cut off by the client, as a user's client would give
up, and the transcript says it was held (`Transport.TIMED_OUT`, with the reason). So a
hanging proxy costs a case about a second, not a minute, and can never pass it.

The request runs on a worker thread; the calling thread waits on it, woken by every read
and at the deadline, when it asks `patience` again (the journal may have moved). To cut a
held exchange off, it shuts down the exchange's socket, which wakes a read blocked in the
worker: the transport records every socket it connects, per thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpcore
import httpx

from streamproof.harness.sse import SSEDecoder
from streamproof.harness.transcript import Arrival, Transcript, Transport


class Changes(Protocol):
    """What tells the client to ask its patience again (a fake provider's journal)."""

    def listen(self, listener: Callable[[], None]) -> None: ...

    def unlisten(self, listener: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class Patience:
    """Until when (a `time.perf_counter()` instant) the client keeps waiting, and in words
    what for, given what it has seen so far; asked again at every read, at the deadline,
    and whenever `changes` changes."""

    until: Callable[[Transcript], tuple[float, str]]
    changes: Changes | None = None


class _RecordingBackend(httpcore.SyncBackend):
    """httpcore's own sockets, each recorded for the thread that connected it."""

    def __init__(self) -> None:
        self._local = threading.local()

    def watch(self, sockets: list[socket.socket] | None) -> None:
        self._local.sockets = sockets

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        stream = super().connect_tcp(*args, **kwargs)
        sockets = getattr(self._local, "sockets", None)
        if sockets is not None:
            sockets.append(stream.get_extra_info("socket"))
        return stream


class StreamClient:
    """Talks to the system under test: `POST /v1/chat/completions` and friends."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        read_timeout: float = 5.0,
        trust_env: bool = False,
    ) -> None:
        """`trust_env`: honour the environment's proxy settings, as the live route to a real
        provider may (a corporate proxy); never for a target or a fake on loopback."""
        self.base_url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        self._backend = _RecordingBackend()
        # Every exchange on a connection of its own (no keep-alive), so that the socket to
        # cut is the exchange's alone.
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        transport = httpx.HTTPTransport(trust_env=trust_env, limits=no_keepalive)
        # httpx has no public way to pass httpcore a network backend: set it on the pool.
        transport._pool._network_backend = self._backend
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers or {},
            timeout=httpx.Timeout(5.0, read=read_timeout),
            transport=transport,
            trust_env=trust_env,
        )

    def close(self) -> None:
        self._http.close()

    def chat(
        self,
        body: dict[str, Any],
        *,
        leave_after_events: int | None = None,
        leave_before_response: float | None = None,
        patience: Patience | None = None,
    ) -> Transcript:
        """POST a chat completion and record the exchange.

        `leave_after_events=n` hangs up once n SSE events have arrived;
        `leave_before_response=s` hangs up if no response headers came within s seconds;
        `patience` bounds the wait (see the module's docstring).
        """
        return self.send(
            "POST",
            "/v1/chat/completions",
            json=body,
            leave_after_events=leave_after_events,
            leave_before_response=leave_before_response,
            patience=patience,
        )

    def get(self, path: str) -> httpx.Response:
        """A plain GET of one of the target's other endpoints (`/health`, `/metrics`)."""
        return self._http.get(path)

    def send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        leave_after_events: int | None = None,
        leave_before_response: float | None = None,
        patience: Patience | None = None,
        record: type[Transcript] = Transcript,
    ) -> Transcript:
        """Send any request and record the exchange (the body of `json` is the request) in
        a `record`: a `Transcript`, or one that reads the answer in an API's own terms."""
        transcript = record(request=json or {}, sent_at=time.perf_counter())
        exchange = _Exchange(self, transcript)

        def run() -> None:
            exchange.run(
                method, path, json, content, headers, leave_after_events, leave_before_response
            )

        exchange.patient = patience is not None
        if patience is None:
            run()
        else:
            worker = threading.Thread(target=run, name="streamproof-exchange", daemon=True)
            worker.start()
            exchange.wait(patience)
            worker.join()
        transcript.ended_at = time.perf_counter()
        return transcript

    def _read_body(
        self, response: httpx.Response, exchange: _Exchange, leave_after: int | None
    ) -> None:
        transcript = exchange.transcript
        counter = SSEDecoder() if leave_after is not None else None
        seen = 0
        for data in response.iter_bytes():
            exchange.arrived(Arrival(time.perf_counter(), data))
            if counter is not None and leave_after is not None:
                seen += len(counter.feed(data))
                if seen >= leave_after:
                    transcript.transport = Transport.LEFT
                    return  # leaving the `with` closes the connection mid-body


class _Exchange:
    """One request in flight: the worker records, the caller waits and may cut it off."""

    def __init__(self, client: StreamClient, transcript: Transcript) -> None:
        self.client = client
        self.transcript = transcript
        self._changed = threading.Condition()
        self._over = False
        self._held = ""  # why the caller cut the exchange off, once it has
        self._sockets: list[socket.socket] = []
        self.patient = False  # a caller waits on it with patience

    def arrived(self, arrival: Arrival) -> None:
        with self._changed:
            self.transcript.chunks.append(arrival)
            self._changed.notify_all()

    def run(
        self,
        method: str,
        path: str,
        json: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str] | None,
        leave_after_events: int | None,
        leave_before_response: float | None,
    ) -> None:
        transcript = self.transcript
        # With patience, the caller decides when to give up; without, the client's own limit.
        read = self.client.read_timeout if self.patient is False else None
        if leave_before_response is not None:
            read = leave_before_response
        self.client._backend.watch(self._sockets)
        try:
            with self.client._http.stream(
                method,
                path,
                json=json,
                content=content,
                headers=headers,
                timeout=httpx.Timeout(5.0, read=read),
            ) as response:
                with self._changed:
                    transcript.status = response.status_code
                    transcript.headers = {k.lower(): v for k, v in response.headers.items()}
                    transcript.headers_at = time.perf_counter()
                    self._changed.notify_all()
                self.client._read_body(response, self, leave_after_events)
        except httpx.TimeoutException as exc:
            left = leave_before_response is not None and transcript.status is None
            transcript.transport = Transport.LEFT if left else Transport.TIMED_OUT
            transcript.transport_error = type(exc).__name__
        except httpx.TransportError as exc:
            transcript.transport = Transport.RESET
            transcript.transport_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.client._backend.watch(None)
            with self._changed:
                if self._held:  # our own cut, not the target's reset
                    transcript.transport = Transport.TIMED_OUT
                    transcript.transport_error = self._held
                self._over = True
                self._changed.notify_all()

    def poke(self) -> None:
        """Something the patience depends on changed: ask it again."""
        with self._changed:
            self._changed.notify_all()

    def wait(self, patience: Patience) -> None:
        """Wait for the exchange to end; cut it off once `patience` runs out."""
        if patience.changes is not None:
            patience.changes.listen(self.poke)
        try:
            self._wait(patience)
        finally:
            if patience.changes is not None:
                patience.changes.unlisten(self.poke)

    def _wait(self, patience: Patience) -> None:
        with self._changed:
            while not self._over:
                deadline, waiting_for = patience.until(self.transcript)
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    self._held = f"held: {waiting_for}"
                    break
                self._changed.wait(remaining)
            else:
                return
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the worker's blocked read
            except OSError:
                continue  # closed already: the worker is on its way out
