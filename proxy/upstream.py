"""One attempt at one provider, up to the commit point.

An attempt sends the request and waits for an answer the client can be given:

- streaming: status 200 and the first event worth forwarding (so that a reset, a stall or a
  malformed event before any content can still be retried or fall back; nothing has reached
  the client yet). It returns a `StreamStart`: the open response plus the steps to send
  together with the headers. The caller owns the response from then on and must close it.
- non-streaming: status 200 and the whole body, which must be a JSON object that is not an
  error. It returns an `Answer`, with the provider's usage or, when it gave none, a marked
  estimate added to the body (see `proxy.usage`).

Anything else raises `AttemptFailed`, with the response already closed.

The first-byte and idle timers are `asyncio.timeout_at` deadlines around each read of the
upstream, never checks made when a read returns: a stalled upstream is cut when the timer
fires, not when its late byte finally arrives. Every timer is also capped by the request's
overall pre-commit deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from streamproof.proxy import jsonio
from streamproof.proxy.apis import APIS, Api
from streamproof.proxy.backoff import parse_retry_after
from streamproof.proxy.config import Timeouts
from streamproof.proxy.errors import AttemptFailed, Failure
from streamproof.proxy.relay import MALFORMED, Fail, Finish, Step, StreamCheck
from streamproof.proxy.transport import body_chunks
from streamproof.proxy.usage import Usage
from streamproof.proxy.validation import ChatCall

ERROR_BODY_LIMIT = 64 * 1024  # an upstream error body is for reading, not for streaming


@dataclass(frozen=True, slots=True)
class StreamStart:
    provider: str
    response: httpx.Response
    chunks: AsyncIterator[bytes]
    check: StreamCheck
    steps: list[Step]


@dataclass(frozen=True, slots=True)
class Answer:
    provider: str
    body: bytes
    usage: Usage | None = None


class _Timer:
    """The deadline for the next read: first-byte until a byte arrives, then idle."""

    def __init__(self, name: str, timeouts: Timeouts, deadline: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._name = name
        self._timeouts = timeouts
        self._deadline = deadline
        self._failure = Failure.FIRST_BYTE_TIMEOUT
        self._ends = min(self._loop.time() + timeouts.first_byte, deadline)

    def ends(self) -> float:
        return self._ends

    def restart_idle(self) -> None:
        self._failure = Failure.IDLE_TIMEOUT
        self._ends = min(self._loop.time() + self._timeouts.idle, self._deadline)

    def expired(self, waiting_for: str) -> AttemptFailed:
        if self._ends >= self._deadline:
            return AttemptFailed(
                self._name, Failure.DEADLINE, f"overall deadline ran out waiting for {waiting_for}"
            )
        seconds = (
            self._timeouts.first_byte
            if self._failure is Failure.FIRST_BYTE_TIMEOUT
            else self._timeouts.idle
        )
        return AttemptFailed(self._name, self._failure, f"no {waiting_for} within {seconds:g}s")


async def attempt(
    name: str,
    send: Callable[[httpx.Request], Awaitable[httpx.Response]],
    request: httpx.Request,
    *,
    stream: bool,
    timeouts: Timeouts,
    deadline: float,
    call: ChatCall,
    secrets: tuple[str, ...] = (),
) -> StreamStart | Answer:
    """Make one attempt for `call`; see the module docstring. `deadline` is in loop time;
    `send` sends the request and returns the response with its body still to read.

    `secrets` are redacted from any upstream error text the stream check forwards. The
    call's API says how its stream is checked and its whole answer read (`proxy.apis`).
    """
    api = APIS[call.api]
    timer = _Timer(name, timeouts, deadline)
    try:
        async with asyncio.timeout_at(timer.ends()):
            response = await send(request)
    except TimeoutError:
        raise timer.expired("response headers") from None
    except httpx.RequestError as exc:
        raise _transport_failure(name, exc, "before response headers") from exc
    keep_open = False
    try:
        if response.status_code != 200:
            raise await _status_failure(name, response, timer)
        chunks = body_chunks(response)
        if stream:
            check = api.check(name, secrets, call)
            start = await _first_steps(check, response, chunks, timer)
            keep_open = True
            return start
        body, answer = await _whole_body(name, chunks, timer, api)
        return Answer(name, *api.whole(body, answer, call))
    finally:
        if not keep_open:
            await response.aclose()


async def _first_steps(
    check: StreamCheck, response: httpx.Response, chunks: AsyncIterator[bytes], timer: _Timer
) -> StreamStart:
    name = check.provider
    received = False
    steps: list[Step] = []  # what comes before the first content: pings, kept to send
    while True:
        chunk = await _read(name, chunks, timer, "the first event" if received else "first byte")
        if chunk is None and received:
            raise AttemptFailed(name, Failure.EMPTY, "stream ended before any event (status 200)")
        if chunk is None:
            detail = "connection closed before the first body byte (status 200)"
            raise AttemptFailed(name, Failure.RESET, detail)
        received = True
        steps += check.feed(chunk)
        if check.over and check.forwarded == 0:
            # The stream opened with an error or its end: no content.
            raise _no_content(name, next(s for s in steps if isinstance(s, Fail | Finish)))
        if check.forwarded:
            return StreamStart(name, response, chunks, check, steps)


async def _whole_body(
    name: str, chunks: AsyncIterator[bytes], timer: _Timer, api: Api
) -> tuple[bytes, dict[str, Any]]:
    body = bytearray()
    while (chunk := await _read(name, chunks, timer, "body bytes")) is not None:
        body += chunk
    try:
        answer = jsonio.loads(body)
    except ValueError:
        detail = "empty body (status 200)" if not body else "body is not valid JSON (status 200)"
        raise AttemptFailed(
            name, Failure.EMPTY if not body else Failure.MALFORMED, detail
        ) from None
    if not isinstance(answer, dict):
        raise AttemptFailed(name, Failure.MALFORMED, "body is not a JSON object (status 200)")
    if api.is_error(answer):
        detail = f"error in a 200 body: {_error_message(bytes(body))}"
        raise AttemptFailed(name, Failure.ERROR_EVENT, detail)
    return bytes(body), answer


async def _read(
    name: str, chunks: AsyncIterator[bytes], timer: _Timer, waiting_for: str
) -> bytes | None:
    """The next non-empty chunk, or None at the end of the body."""
    while True:
        try:
            async with asyncio.timeout_at(timer.ends()):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise timer.expired(waiting_for) from None
        # RequestError: every transport failure, and DecodingError (not a TransportError).
        except httpx.RequestError as exc:
            raise _transport_failure(name, exc, f"before {waiting_for}") from exc
        if chunk:
            timer.restart_idle()
            return chunk


async def _status_failure(name: str, response: httpx.Response, timer: _Timer) -> AttemptFailed:
    status = response.status_code
    body = await _error_body(name, response, timer)
    detail = f"HTTP {status} from upstream"
    if message := _error_message(body):
        detail += f": {message}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return AttemptFailed(
            name, Failure.RATE_LIMITED, detail, status=status, retry_after=retry_after
        )
    failure = Failure.CLIENT_ERROR if 400 <= status < 500 else Failure.SERVER_ERROR
    return AttemptFailed(name, failure, detail, status=status, body=body)


async def _error_body(name: str, response: httpx.Response, timer: _Timer) -> bytes:
    """Up to ERROR_BODY_LIMIT bytes of an error body; what arrived if reading it fails."""
    body = bytearray()
    chunks = response.aiter_bytes()
    while len(body) < ERROR_BODY_LIMIT:
        try:
            chunk = await _read(name, chunks, timer, "the error body")
        except AttemptFailed:
            # The status already says what happened; a cut error body is still worth quoting.
            break
        if chunk is None:
            break
        body += chunk
    return bytes(body)


def _error_message(body: bytes) -> str:
    """A short human message from an error body (OpenAI shape, or the text itself)."""
    try:
        parsed = jsonio.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:200] if message is not None else ""


def _transport_failure(name: str, exc: httpx.RequestError, where: str) -> AttemptFailed:
    kind = type(exc).__name__  # ReadError, RemoteProtocolError, ConnectError, ...
    if isinstance(exc, httpx.ConnectTimeout):
        return AttemptFailed(name, Failure.CONNECT_TIMEOUT, "connect timed out", error_class=kind)
    if isinstance(exc, httpx.ConnectError):
        detail = f"cannot connect: connection refused or unreachable ({exc or kind})"
        return AttemptFailed(name, Failure.CONNECT, detail, error_class=kind)
    if isinstance(exc, httpx.DecodingError):
        return AttemptFailed(name, Failure.MALFORMED, f"undecodable body {where}", error_class=kind)
    detail = f"connection reset or closed {where} ({kind})"
    return AttemptFailed(name, Failure.RESET, detail, error_class=kind)


def _no_content(name: str, step: Step) -> AttemptFailed:
    if isinstance(step, Fail):
        failure = Failure.MALFORMED if step.code == MALFORMED else Failure.ERROR_EVENT
        return AttemptFailed(name, failure, step.message.removeprefix(f"{name}: "))
    return AttemptFailed(name, Failure.EMPTY, "stream sent [DONE] before any content")
