"""The ASGI response for one chat completion: dispatch, then relay, refuse or answer.

It is written by hand rather than with Starlette's `StreamingResponse` for two reasons.
The commit point: nothing, not even the status line, may reach the client before the
upstream has answered 200 and sent something worth forwarding, so the dispatch must run
inside the response. And disconnects: under ASGI spec 2.3 (uvicorn's h11 and httptools)
`StreamingResponse` listens for `http.disconnect` only while it streams, and under 2.4 only
notices a send that fails; neither covers a client that leaves while the proxy is still
waiting for the upstream's headers, its first byte, or a retry backoff.

So `__call__` runs two tasks: the work (dispatch and relay) and a watcher on `receive()`.
When the watcher sees `http.disconnect`, the work is cancelled wherever it is waiting, and
its `finally` closes the upstream response at once. When the work ends, the watcher is
cancelled. The request body has been read in full before this runs, so the only message
`receive()` can still deliver is the disconnect.

The relay's timers (idle and total while reading the upstream, total while the client
reads) are one `Watchdog` per stream rather than an `asyncio.timeout_at` per read and per
send: arming it is an assignment, and its one timer handle moves only when it fires.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from streamproof.proxy.config import Route, Timeouts
from streamproof.proxy.dispatch import Dispatcher, Refusal, Trace
from streamproof.proxy.health import Health, Outcome, Result, Started
from streamproof.proxy.relay import (
    IDLE_TIMEOUT,
    MALFORMED,
    RESET,
    TOTAL_TIMEOUT,
    Fail,
    Finish,
    Step,
    StreamCheck,
)
from streamproof.proxy.upstream import Answer, StreamStart
from streamproof.proxy.usage import Usage
from streamproof.proxy.validation import ChatCall

logger = logging.getLogger("proxy")

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-style reverse proxies not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]


async def send_json(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = JSON_HEADERS + [(name.encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


Encode = Callable[[list[Step]], bytes]  # the steps of a stream, in the client's dialect
Reshape = Callable[[bytes], bytes]  # a whole answer's body, in the client's dialect


def encode_openai(steps: list[Step]) -> bytes:
    return b"".join([step.encode() for step in steps])


def as_is(body: bytes) -> bytes:
    return body


HEARTBEAT = b": keep-alive\n\n"
# Up to this many bytes of request body and relayed chunks (more than the text that the
# usage estimate counts in them), the estimate is made on the event loop: a worker thread's
# hand-off costs more than counting that little (a 200-chunk answer's text, ~75 µs; at
# worst, bytes that are all text, a few ms). Longer ones are counted on a thread.
INLINE_COUNT_BYTES = 64 * 1024
# After `[DONE]`, how long and how much of the rest of an upstream body is read so that its
# connection can be reused (see `_drain`).
DRAIN_SECONDS = 0.02
DRAIN_BYTES = 64 * 1024


class Watchdog:
    """Cancels a task whose wait outlasts the deadline armed for it, with one timer.

    `asyncio.timeout_at` around every read and send allocates a context manager and moves
    a timer each time. Here `arm()` is an assignment: the one timer handle is scheduled for
    the earliest deadline armed and, when it fires and finds a later one armed since (the
    idle deadline moves forward with every chunk), it schedules itself again for that one.
    So a stream costs a timer per idle period, not per chunk.

    Arm it right before an await and `disarm()` right after: it only cancels while armed.
    A `CancelledError` caught from the armed await is this watchdog's when `caught()` says
    so, which also takes the cancellation back (as `asyncio.timeout` does); any other
    cancellation (the client left) propagates.
    """

    __slots__ = ("_at", "_expired", "_handle", "_loop", "_task", "deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        self._loop = loop
        self._task = task
        self.deadline = math.inf  # loop time; inf while disarmed
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf  # when the handle fires
        self._expired = False

    def arm(self, deadline: float) -> None:
        self.deadline = deadline
        if deadline < self._at:
            self._schedule(deadline)

    def disarm(self) -> None:
        self.deadline = math.inf

    def caught(self) -> bool:
        """Whether the cancellation just caught was this watchdog's; if so it is undone."""
        if not self._expired:
            return False
        self._expired = False
        return self._task.uncancel() == 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle, self._at = None, math.inf

    def _schedule(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        at, self._handle, self._at = self._at, None, math.inf
        if self.deadline == math.inf:
            return  # disarmed: the next arm() schedules a handle again
        if self.deadline > at:
            self._schedule(self.deadline)  # moved forward since the handle was made
            return
        self._expired = True
        self._task.cancel()


@dataclass(slots=True)
class ChatResponse:
    """One chat request, from dispatch to its last byte and its one health record."""

    dispatcher: Dispatcher
    timeouts: Timeouts
    call: ChatCall
    route: Route
    started: float  # loop time when the request arrived
    health: Health
    endpoint: str = "/v1/chat/completions"
    heartbeat: float = 0.0  # seconds of upstream silence before a `: keep-alive` comment
    encode: Encode = encode_openai
    reshape: Reshape = as_is
    outcome: Outcome | None = None  # set once, just before the client gets the last byte
    complete: bool = False  # the last body message has been sent
    committed: bool = False  # the status line has been sent
    provider: str | None = None  # the provider that answered, once one did
    relayed: StreamCheck | None = None  # the stream that was relayed, if any
    trace: Trace = field(default_factory=Trace)
    begun: Started | None = None  # the health report's handle on this request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.begun = self.health.begin(
            self.call.model, stream=self.call.stream, endpoint=self.endpoint
        )
        work = asyncio.create_task(self._respond(send))
        watch = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            if self.complete and not work.done():
                # A server reports `http.disconnect` as soon as the response is complete; the
                # work is only closing the upstream by then and must not be cut short.
                await asyncio.wait({work})
        finally:
            client_left = not work.done()
            work.cancel()  # no-op when it is done; otherwise its finally closes the upstream
            watch.cancel()
            # Only the tasks still to finish are waited for (a wait costs a future and a turn
            # of the loop even when there is nothing to wait for).
            if pending := {task for task in (work, watch) if not task.done()}:
                await asyncio.wait(pending)
            error = None if work.cancelled() else work.exception()
            if self.outcome is None:
                self._decide(await self._unfinished(client_left, error))
        if error is not None:
            raise error

    async def _unfinished(self, client_left: bool, error: BaseException | None) -> Outcome:
        """The outcome of a request that did not end by the proxy's own decision."""
        usage = await self._usage()
        details = self._details(usage)
        if error is not None:
            name = type(error).__name__
            return Outcome.failure(500, name, "internal_error", f"proxy error: {name}", **details)
        status = 200 if self.committed else 0
        left = "after the response started" if self.committed else "before any response"
        if not client_left:  # the server cancelled the request (shutdown)
            return Outcome.cancelled(status, message=f"cancelled {left}", **details)
        return Outcome.cancelled(status, message=f"client disconnected {left}", **details)

    async def _usage(self) -> Usage | None:
        if self.relayed is None:
            return None
        if len(self.call.body) + self.relayed.forwarded_bytes <= INLINE_COUNT_BYTES:
            return self.relayed.usage()
        # Counting a long answer is CPU work: off the event loop.
        return await asyncio.to_thread(self.relayed.usage)

    def _details(self, usage: Usage | None) -> dict[str, Any]:
        chunks = self.relayed.forwarded if self.relayed is not None else 0
        return {
            "chunks": chunks,
            "attempts": self.trace.attempts,
            "provider": self.provider,
            "usage": usage,
        }

    async def _respond(self, send: Send) -> None:
        result = await self.dispatcher.dispatch(self.call, self.route, self.started, self.trace)
        if isinstance(result, Refusal):
            self._decide(
                Outcome.failure(
                    result.status,
                    result.error_class,
                    result.code,
                    result.message,
                    **self._details(None),
                )
            )
            self.committed = True
            await send_json(send, result.status, result.body, result.headers)
            self.complete = True
        elif isinstance(result, Answer):
            self.provider = result.provider
            self._decide(Outcome.success(**self._details(result.usage)))
            self.committed = True
            await send_json(send, 200, self.reshape(result.body), {})
            self.complete = True
        else:
            self.provider, self.relayed = result.provider, result.check
            try:
                await self._relay(result, send)
                if isinstance(result.check.outcome, Finish):
                    await _drain(result)
            finally:
                await result.response.aclose()

    async def _relay(self, start: StreamStart, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        self.committed = True
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        watchdog = Watchdog(loop, task)
        try:
            await self._relay_steps(start, send, watchdog)
        finally:
            watchdog.close()

    async def _relay_steps(self, start: StreamStart, send: Send, watchdog: Watchdog) -> None:
        steps = start.steps
        total_deadline = self.started + self.timeouts.total
        while True:
            over = start.check.over
            if over:
                if len(steps) > 1:
                    # What comes before the ending need not wait for the decision below.
                    body = self.encode(steps[:-1])
                    if body and not await self._send(
                        send, body, watchdog, total_deadline, more=True
                    ):
                        return
                    steps = steps[-1:]
                # Decided before the last byte goes out, so that a client which has seen
                # the end finds the request in the health report and the log already.
                self._decide(await self._ended(start.check))
            body = self.encode(steps) if steps else b""
            if body or over:
                if not await self._send(send, body, watchdog, total_deadline, more=not over):
                    return
                self.complete = over
            if over:
                return
            steps = await self._next_steps(start, send, watchdog, total_deadline)

    async def _send(
        self, send: Send, body: bytes, watchdog: Watchdog, deadline: float, *, more: bool
    ) -> bool:
        """Send a body message; False when the client took longer than the total timeout."""
        message = {"type": "http.response.body", "body": body, "more_body": more}
        # Bounded by the total timeout too: a client that stops reading must not hold the
        # upstream open forever.
        watchdog.arm(deadline)
        try:
            await send(message)
        except asyncio.CancelledError:
            if not watchdog.caught():
                raise
            if self.outcome is None:
                usage = await self._usage()
                seconds = self.timeouts.total
                self._decide(
                    Outcome.failure(
                        200,
                        "TimeoutException",
                        TOTAL_TIMEOUT,
                        f"the client read too slowly: total timeout of {seconds:g}s reached",
                        **self._details(usage),
                    )
                )
            return False
        finally:
            watchdog.disarm()
        return True

    async def _ended(self, check: StreamCheck) -> Outcome:
        details = self._details(await self._usage())
        ending = check.outcome
        if isinstance(ending, Fail):
            return Outcome.failure(
                200, ending.error_class, str(ending.code), ending.message, **details
            )
        return Outcome.success(**details)

    async def _next_steps(
        self, start: StreamStart, send: Send, watchdog: Watchdog, total_deadline: float
    ) -> list[Step]:
        """Read one upstream chunk under the idle and total timers; what to send for it."""
        ends = min(asyncio.get_running_loop().time() + self.timeouts.idle, total_deadline)
        check, name = start.check, start.provider
        try:
            if self.heartbeat:
                chunk = await self._read_with_heartbeats(start.chunks, send, ends)
            else:
                watchdog.arm(ends)
                try:
                    chunk = await anext(start.chunks)
                except asyncio.CancelledError:
                    if not watchdog.caught():
                        raise
                    raise TimeoutError from None
                finally:
                    watchdog.disarm()
        except StopAsyncIteration:
            return check.end_of_stream()
        except TimeoutError:
            if ends >= total_deadline:
                seconds = self.timeouts.total
                return [check.fail(TOTAL_TIMEOUT, f"{name}: total timeout of {seconds:g}s reached")]
            seconds = self.timeouts.idle
            return [check.fail(IDLE_TIMEOUT, f"{name}: no data for {seconds:g}s mid-stream")]
        except httpx.DecodingError as exc:
            message = f"{name}: undecodable body mid-stream"
            return [check.fail(MALFORMED, message, error_class=type(exc).__name__)]
        except httpx.RequestError as exc:  # every transport failure: reset, closed, protocol error
            kind = type(exc).__name__
            message = f"{name}: connection reset or closed mid-stream ({kind})"
            return [check.fail(RESET, message, error_class=kind)]
        return check.feed(chunk)

    async def _read_with_heartbeats(
        self, chunks: AsyncIterator[bytes], send: Send, ends: float
    ) -> bytes:
        """The next chunk, sending a `: keep-alive` comment for every `heartbeat` seconds of
        silence; TimeoutError at `ends`. The read is one task throughout, never restarted."""
        loop = asyncio.get_running_loop()
        read = asyncio.ensure_future(anext(chunks))
        try:
            while True:
                beat = min(ends, loop.time() + self.heartbeat)
                done, _ = await asyncio.wait({read}, timeout=max(0.0, beat - loop.time()))
                if done:
                    return read.result()
                if loop.time() >= ends:
                    raise TimeoutError
                async with asyncio.timeout_at(ends):
                    await send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
        finally:
            if not read.done():
                read.cancel()
                await asyncio.wait({read})

    def _decide(self, outcome: Outcome) -> None:
        """Record the request's outcome, once: in the health report and the log. It is done
        before the client gets the last byte, so that a client which has seen the end finds
        the request counted and logged already."""
        assert self.outcome is None
        assert self.begun is not None
        self.outcome = outcome
        record = self.health.end(self.begun, outcome)
        o = outcome
        what = o.result.value if o.result is not Result.FAILURE else "failed"
        if o.error_class and o.result is not Result.SUCCESS:
            what += f" {o.error_class} code={o.code}"
        usage = o.usage.describe() if o.usage is not None else "none"
        kind = "stream" if self.call.stream else "json"
        level = logging.WARNING if o.result is Result.FAILURE else logging.INFO
        tail = f": {o.message}" if o.message else ""
        logger.log(
            level,
            "%s %s %s: id=%d model=%s provider=%s status=%s attempts=%d chunks=%d usage %s "
            "(%.3fs)%s",
            self.call.api,
            kind,
            what,
            record.id,
            self.call.model,
            o.provider or "-",
            o.status or "-",
            o.attempts,
            o.chunks,
            usage,
            record.duration,
            tail,
        )


async def _drain(start: StreamStart) -> None:
    """After a clean end, read the rest of the upstream body if it comes at once, so that
    closing the response hands its connection back to the pool for the next request.

    The rest is the end of the chunked encoding, which usually arrives with `[DONE]`
    itself. An upstream that sends more (up to DRAIN_BYTES) or takes longer than
    DRAIN_SECONDS is not waited for: the read is cancelled and the connection closed, as
    before. A transport error here only means the connection cannot be reused, which
    closing it takes care of; the stream was already complete.
    """
    left = DRAIN_BYTES
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in start.chunks:
                left -= len(chunk)
                if left < 0:
                    return
    except (TimeoutError, httpx.HTTPError):
        return  # the connection is closed by the caller's aclose(), not reused


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # a stray http.request after the body was read carries nothing for us
