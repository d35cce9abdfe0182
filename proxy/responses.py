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
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
from starlette.types import Receive, Scope, Send

from proxy.config import Route, Timeouts
from proxy.dispatch import Dispatcher, Refusal
from proxy.relay import IDLE_TIMEOUT, MALFORMED, RESET, TOTAL_TIMEOUT, Fail, Step, StreamCheck
from proxy.upstream import Answer, StreamStart
from proxy.usage import Usage
from proxy.validation import ChatCall

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


@dataclass(slots=True)
class ChatResponse:
    dispatcher: Dispatcher
    timeouts: Timeouts
    call: ChatCall
    route: Route
    started: float  # loop time when the request arrived
    outcome: str = "client disconnected before the response"
    complete: bool = False  # the last body message has been sent
    provider: str | None = None  # the provider that answered, once one did
    usage: Usage | None = None  # of what was relayed, also when the stream failed or was left
    relayed: StreamCheck | None = None  # the stream that was relayed, if any

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        work = asyncio.create_task(self._respond(send))
        watch = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            if self.complete:
                # A server reports `http.disconnect` as soon as the response is complete; the
                # work is only closing the upstream by then and must not be cut short.
                await asyncio.wait({work})
        finally:
            client_left = not work.done()
            work.cancel()  # no-op when it is done; otherwise its finally closes the upstream
            watch.cancel()
            await asyncio.wait({work, watch})
        if client_left and self.outcome.startswith("streaming"):
            self.outcome = "client disconnected mid-stream"
        if self.relayed is not None:
            # Counting a long answer is CPU work: off the event loop, after the upstream is
            # closed and the client has its last byte.
            self.usage = await asyncio.to_thread(self.relayed.usage)
        self._log()
        for task in (work, watch):
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def _respond(self, send: Send) -> None:
        result = await self.dispatcher.dispatch(self.call, self.route, self.started)
        if isinstance(result, Refusal):
            self.outcome = f"{result.status} {result.body.decode(errors='replace')}"
            await send_json(send, result.status, result.body, result.headers)
            self.complete = True
        elif isinstance(result, Answer):
            self.provider, self.usage = result.provider, result.usage
            self.outcome = f"200 via {result.provider}"
            await send_json(send, 200, result.body, {})
            self.complete = True
        else:
            # Its usage is worked out once the response is over, also when the client left.
            self.provider, self.relayed = result.provider, result.check
            try:
                await self._relay(result, send)
            finally:
                await result.response.aclose()

    async def _relay(self, start: StreamStart, send: Send) -> None:
        self.outcome = f"streaming via {start.provider}"
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        steps = start.steps
        total_deadline = self.started + self.timeouts.total
        while True:
            over = start.check.over
            if steps or over:
                body = b"".join(step.encode() for step in steps)
                message = {"type": "http.response.body", "body": body, "more_body": not over}
                try:
                    # Bounded by the total timeout too: a client that stops reading must not
                    # hold the upstream open forever.
                    async with asyncio.timeout_at(total_deadline):
                        await send(message)
                except TimeoutError:
                    self.outcome = f"200 via {start.provider}, client too slow: total_timeout"
                    return
                self.complete = over
            if over:
                self.outcome = f"200 via {start.provider}, ended: {_ending(start.check.outcome)}"
                return
            steps = await self._next_steps(start, total_deadline)

    async def _next_steps(self, start: StreamStart, total_deadline: float) -> list[Step]:
        """Read one upstream chunk under the idle and total timers; what to send for it."""
        loop = asyncio.get_running_loop()
        ends = min(loop.time() + self.timeouts.idle, total_deadline)
        check, name = start.check, start.provider
        try:
            async with asyncio.timeout_at(ends):
                chunk = await anext(start.chunks)
        except StopAsyncIteration:
            return check.end_of_stream()
        except TimeoutError:
            if ends >= total_deadline:
                seconds = self.timeouts.total
                return [check.fail(TOTAL_TIMEOUT, f"{name}: total timeout of {seconds:g}s reached")]
            seconds = self.timeouts.idle
            return [check.fail(IDLE_TIMEOUT, f"{name}: no data for {seconds:g}s mid-stream")]
        except httpx.DecodingError:
            return [check.fail(MALFORMED, f"{name}: undecodable body mid-stream")]
        except httpx.RequestError:  # every transport failure: reset, closed, protocol error
            return [check.fail(RESET, f"{name}: connection reset mid-stream")]
        return check.feed(chunk)

    def _log(self) -> None:
        elapsed = asyncio.get_running_loop().time() - self.started
        stream = "stream" if self.call.stream else "json"
        usage = self.usage.describe() if self.usage is not None else "none"
        logger.info(
            "chat %s model=%s provider=%s: %s; usage %s (%.3fs)",
            stream,
            self.call.model,
            self.provider or "-",
            self.outcome,
            usage,
            elapsed,
        )


def _ending(outcome: object) -> str:
    return f"error {outcome.code}" if isinstance(outcome, Fail) else "[DONE]"


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # a stray http.request after the body was read carries nothing for us
