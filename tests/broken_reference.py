"""The reference proxy with one deliberate bug, for the cases a plain pass-through cannot
reach: fallback chains, the health report, metrics, the log, alerts and `/api/chat`.

    python tests/broken_reference.py --bug NAME --config FILE --fd N

It patches one thing in the `proxy` package, then runs `python -m streamproof.proxy` as
usual, so every other behaviour is the reference proxy's own and only the bug can make a case fail.
`test_broken_proxies.py` runs the suites against each bug with `--target-offers all`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import dataclasses
import json
import logging
import os
import re
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# The working tree's `proxy`, not an installed copy: this file runs from tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from streamproof.proxy import __main__ as main_module
from streamproof.proxy import (
    app,
    config,
    events,
    feed,
    health,
    metrics,
    relay,
    responses,
    simple,
    transport,
)
from streamproof.proxy.config import Route
from streamproof.proxy.dispatch import Dispatcher
from streamproof.proxy.errors import AttemptFailed, Failure
from streamproof.proxy.relay import Fail, Step

BUGS = {
    "no-fallback": "asks only the first provider of a chain",
    "count-as-success": "counts every request as a success in its health report",
    "metrics-drift": "keeps its own failure counter for /metrics, which misses some failures",
    "log-no-class": "logs a failure without naming its error class",
    "log-twice": "logs every request's line twice",
    "chunks-off-by-one": "counts one chunk more than it relayed, per request",
    "alerts-off-by-one": "raises each alert one step late or at its threshold, not past it",
    "empty-rate-zero": "reports a success rate of 0 before any request (the seed's report "
    "divides by zero there)",
    "no-partial-usage": "records no usage for a stream that failed or was left",
    "api-chat-done-after-error": "ends a broken /api/chat stream with [DONE] after its error",
    "api-chat-raw": "streams OpenAI chunks from /api/chat, not {'chunk': text}",
    "errors-as-200": "sends every error status as 200",
    "feed-broadcast-churn": "broadcasts as the seed did: awaits each send in turn over the live "
    "set of clients, which changes under it when clients come and go",
    "feed-seq-skip": "skips a seq number under load (a message numbered, then not sent)",
    "feed-drop-under-load": "silently drops an event for a client that has one waiting",
    "feed-unbounded": "never drops a client that stops reading: its queue grows without bound",
    "feed-one-sender": "sends to one client at a time (a lock around every send), so a client "
    "that stops reading holds up all the others",
    "feed-closes-on-bad-message": "ends the connection on a message that is not valid JSON",
    "feed-no-init": "sends no snapshot on connect, only the events that follow",
    "feed-pong-without-id": "answers a ping with a bare pong, dropping its id",
    "feed-ignores-key": "serves the feed without asking for the proxy's key",
    "feed-leaks-key": "puts the providers' keys in its init snapshot (the seed's dashboard "
    "endpoint returned an API key)",
    "feed-ends-as-success": "reports every stream's end as a success",
    "feed-no-size-limit": "accepts client messages of any size",
    "feed-abrupt-shutdown": "drops its WebSocket connections at shutdown without a close frame",
    "page-send-twice": "its dashboard registers the Ping button's handler in connect(), again "
    "on every reconnect, so one click sends a ping per connection made so far",
    "page-rows-twice": "its dashboard adds the streams of every init snapshot to what it "
    "shows, so a reconnect shows the earlier streams twice",
    "tls-no-verify": "does not verify the upstream's certificate (CERT_NONE, no host check)",
    "tls-one-timer": "connects under the connect timer, then shakes hands under no timer of "
    "its own: a stalled handshake waits for the first-byte timer",
    "tls-stale-pool": "a request that failed on a connection taken from its pool is given up "
    "at once: the dead connection is taken for the upstream's answer, never retried",
    "tls-handshake-fatal": "a connect that fails inside the TLS handshake is taken for a "
    "certificate it must refuse: never retried (a reset there is as fatal as a bad CA)",
    "tls-record-eof": "reads TLS by hand, and a read that ends inside a record (no bytes "
    "decrypted yet, some pending) is taken for the end of the stream",
    "typed-fake-end": "ends a broken Messages or Responses stream with its API's end event "
    "(message_stop, response.completed) instead of an error",
    "typed-no-event-lines": "relays Messages and Responses events without their event: lines",
    "typed-sum-usage": "adds up Anthropic's cumulative output_tokens in the message_delta "
    "events it relays",
    "typed-lose-after-ping": "loses the Messages event that follows a ping",
    "typed-drop-signature": "drops the signature_delta of every thinking block",
    "typed-error-chat-shape": "ends a broken Messages or Responses stream with a chat "
    'completions error event (data: {"error": ...}, no event: line)',
    "reasoning-into-content": "relays a chat chunk's reasoning_content as content",
}


def _unverified(*args: Any, **kwargs: Any) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _tls_no_verify() -> None:
    httpx.create_ssl_context = _unverified  # what transport.Transport asks for its context


def _tls_one_timer() -> None:
    connect = transport.Transport._connect

    async def handshake_untimed(
        self: transport.Transport, origin: transport.Origin, timeout: float | None
    ) -> Any:
        scheme, host, port = origin
        if scheme != b"https":
            return await connect(self, origin, timeout)
        conn = await connect(self, (b"http", host, port), timeout)  # TCP, under the timer
        loop = asyncio.get_running_loop()
        assert conn.transport is not None
        try:  # BUG: the handshake outside the connect timer
            conn.transport = await loop.start_tls(
                conn.transport, conn, httpx.create_ssl_context(), server_hostname=host
            )
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise httpx.ConnectError(str(exc)) from exc
        conn.origin = origin
        return conn

    transport.Transport._connect = handshake_untimed  # type: ignore[method-assign]


# Whether this request's last connection came from the pool / failed in its TLS handshake
# (each request is one task: what its transport call set, its dispatcher sees).
_REUSED: contextvars.ContextVar[bool] = contextvars.ContextVar("reused", default=False)
_HANDSHAKE: contextvars.ContextVar[bool] = contextvars.ContextVar("handshake", default=False)


def _no_retry_when(flag: contextvars.ContextVar[bool], failures: set[Failure]) -> None:
    wait = Dispatcher._wait

    def giving_up(self: Dispatcher, failure: AttemptFailed, retry: int) -> float | None:
        if flag.get() and failure.failure in failures:
            return None  # BUG: no retry (the dispatcher gives up when there is no wait)
        return wait(self, failure, retry)

    Dispatcher._wait = giving_up  # type: ignore[method-assign]


def _tls_stale_pool() -> None:
    pooled = transport.Transport._pooled

    def noting(self: transport.Transport, origin: transport.Origin) -> Any:
        conn = pooled(self, origin)
        _REUSED.set(conn is not None)
        return conn

    transport.Transport._pooled = noting  # type: ignore[method-assign]
    _no_retry_when(_REUSED, {Failure.RESET})


def _tls_handshake_fatal() -> None:
    connect = transport.Transport._connect

    async def noting(
        self: transport.Transport, origin: transport.Origin, timeout: float | None
    ) -> Any:
        _HANDSHAKE.set(False)
        try:
            return await connect(self, origin, timeout)
        except httpx.ConnectError as exc:
            tls = isinstance(exc.__cause__, (ssl.SSLError, ConnectionResetError))
            _HANDSHAKE.set(origin[0] == b"https" and tls)
            raise

    transport.Transport._connect = noting  # type: ignore[method-assign]
    _no_retry_when(_HANDSHAKE, {Failure.CONNECT})


class _TlsTransport:
    """What the transport's connection writes through: TLS by hand over a memory BIO."""

    def __init__(self, reader: _RecordReader) -> None:
        self._reader = reader

    def write(self, data: bytes) -> None:
        self._reader.tls.write(data)
        self._reader.flush()

    def writelines(self, pieces: Any) -> None:
        self.write(b"".join(pieces))

    def close(self) -> None:
        self._reader.raw.close()

    def is_closing(self) -> bool:
        return self._reader.raw.is_closing()

    def pause_reading(self) -> None:
        self._reader.raw.pause_reading()

    def resume_reading(self) -> None:
        self._reader.raw.resume_reading()


class _RecordReader(asyncio.Protocol):
    """TLS by hand: the handshake, then each read decrypted for the transport's connection."""

    def __init__(
        self,
        conn: transport._Connection,
        context: ssl.SSLContext,
        host: str,
        done: asyncio.Future[None],
    ) -> None:
        self.conn = conn
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=host)
        self.done = done
        self.raw: asyncio.Transport
        self._header = bytearray()  # of the record being received, while incomplete
        self._left = 0  # bytes of that record's body still to come

    def _inside_a_record(self, data: bytes) -> bool:
        """Follow the record framing (5-byte headers): whether `data` ends inside one."""
        at = 0
        while at < len(data):
            if self._left == 0:
                taken = data[at : at + 5 - len(self._header)]
                self._header += taken
                at += len(taken)
                if len(self._header) == 5:
                    self._left = int.from_bytes(self._header[3:5], "big")
                    self._header.clear()
            else:
                taken_size = min(self._left, len(data) - at)
                self._left -= taken_size
                at += taken_size
        return bool(self._header) or self._left > 0

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.raw.write(data)

    def connection_made(self, raw: asyncio.BaseTransport) -> None:
        self.raw = raw  # type: ignore[assignment]
        self._handshake()

    def _handshake(self) -> None:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.flush()
            return
        except (ssl.SSLError, OSError) as exc:
            self.flush()
            self.done.set_exception(exc)
            self.raw.close()
            return
        self.flush()
        self.conn.connection_made(_TlsTransport(self))  # type: ignore[arg-type]
        self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if not self.done.done():
            self._handshake()
            return
        inside = self._inside_a_record(data)
        plain = bytearray()
        try:
            while chunk := self.tls.read(65536):
                plain += chunk
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            self.raw.close()
            self.conn.connection_lost(exc)
            return
        if plain:
            self.conn.data_received(bytes(plain))
        elif inside:
            self.raw.close()  # BUG: a record still in pieces, taken for the stream's end

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionResetError("closed in the handshake"))
        else:
            self.conn.connection_lost(exc)


def _tls_record_eof() -> None:
    connect = transport.Transport._connect

    async def by_hand(
        self: transport.Transport, origin: transport.Origin, timeout: float | None
    ) -> Any:
        scheme, host, port = origin
        if scheme != b"https":
            return await connect(self, origin, timeout)
        loop = asyncio.get_running_loop()
        conn = transport._Connection(origin)
        done: asyncio.Future[None] = loop.create_future()
        context = httpx.create_ssl_context()
        raw: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(timeout):
                raw, _ = await loop.create_connection(
                    lambda: _RecordReader(conn, context, host, done), host, port
                )
                await done
        except TimeoutError:
            if raw is not None:
                raw.close()
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self._open.add(conn)
        return conn

    transport.Transport._connect = by_hand  # type: ignore[method-assign]


def _no_fallback() -> None:
    dispatch = Dispatcher.dispatch

    async def first_only(self: Dispatcher, call: Any, route: Route, *args: Any) -> Any:
        return await dispatch(self, call, Route(route.model, route.providers[:1]), *args)

    Dispatcher.dispatch = first_only  # type: ignore[method-assign,assignment]


def _count_as_success() -> None:
    end = health.Health.end

    def as_success(self: health.Health, started: Any, outcome: health.Outcome) -> Any:
        fake = dataclasses.replace(outcome, result=health.Result.SUCCESS, error_class=None)
        return end(self, started, fake)

    health.Health.end = as_success  # type: ignore[method-assign]


def _metrics_drift() -> None:
    collect = metrics.HealthCollector.collect

    def drifting(self: metrics.HealthCollector) -> Iterator[Any]:
        for family in collect(self):
            if family.name.endswith("_failures"):
                family.samples = family.samples[:-1]  # the last error class is never counted
            yield family

    metrics.HealthCollector.collect = drifting  # type: ignore[method-assign]


CLASSES = re.compile(r"\b[A-Z][A-Za-z]*(Error|Timeout|Exception|Stream)\b ?")


class _NoClass(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = CLASSES.sub("", record.getMessage()), None
        return True


def _log_no_class() -> None:
    logging.getLogger("proxy").addFilter(_NoClass())


class _Twice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("chat ") and not getattr(record, "again", False):
            record.again = True
            logging.getLogger(record.name).handle(record)
        return True


def _log_twice() -> None:
    logging.getLogger("proxy").addFilter(_Twice())


def _chunks_off_by_one() -> None:
    end = health.Health.end

    def one_more(self: health.Health, started: Any, outcome: health.Outcome) -> Any:
        return end(self, started, dataclasses.replace(outcome, chunks=outcome.chunks + 1))

    health.Health.end = one_more  # type: ignore[method-assign]


def _alerts_off_by_one() -> None:
    parse = config._health

    def late(table: Any) -> config.HealthConfig:
        real = parse(table)
        return dataclasses.replace(
            real,
            max_consecutive_failures=real.max_consecutive_failures + 1,
            min_success_rate=real.min_success_rate + 1e-9,
            min_chunks_per_stream=real.min_chunks_per_stream + 1e-9,
        )

    config._health = late


def _empty_rate_zero() -> None:
    rate = health.Health.success_rate

    def zero(self: health.Health) -> float | None:
        value = rate(self)
        return 0.0 if value is None else value

    health.Health.success_rate = zero  # type: ignore[method-assign]


def _no_partial_usage() -> None:
    usage = responses.ChatResponse._usage

    async def only_when_clean(self: responses.ChatResponse) -> Any:
        relayed = self.relayed
        if relayed is None or not relayed.over or isinstance(relayed.outcome, Fail):
            return None
        return await usage(self)

    responses.ChatResponse._usage = only_when_clean  # type: ignore[method-assign]


def _api_chat_done_after_error() -> None:
    encode = simple.encode_simple

    def with_done(steps: list[Step]) -> bytes:
        body = encode(steps)
        return body + b"data: [DONE]\n\n" if any(isinstance(s, Fail) for s in steps) else body

    simple.encode_simple = with_done


def _api_chat_raw() -> None:
    simple.encode_simple = responses.encode_openai


def _errors_as_200() -> None:
    send_json = responses.send_json

    async def as_200(send: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
        await send_json(send, 200, body, headers)

    responses.send_json = as_200


def _typed_fake_end() -> None:
    """A broken typed stream is closed with its API's end event, as if it were whole."""
    ends = {
        events.MessagesCheck: events.MESSAGE_STOP,
        events.ResponsesCheck: events.encode_event(
            b"response.completed",
            b'{"type":"response.completed","response":{"status":"completed","output":[]}}',
        ),
    }
    for kind, end in ends.items():

        def dressed_up(
            self: events.EventCheck,
            code: str | int,
            message: str,
            type_: str,
            error_class: str,
            end: bytes = end,
        ) -> Fail:
            return events.EventFail(code, message, type_, error_class, end)

        kind._failure = dressed_up  # type: ignore[method-assign,assignment]


def _typed_no_event_lines() -> None:
    """Relays each typed event's data only, without its `event:` line."""
    events.Event.encode = lambda self: relay.Forward.encode(self)  # type: ignore[method-assign]


def _typed_sum_usage() -> None:
    """Takes each of Anthropic's `output_tokens` (message_start's, then every message_delta's,
    which are cumulative) for an increment, and relays their sum in each message_delta."""
    typed = events.MessagesCheck._typed

    def summing(self: events.MessagesCheck, kind: str, event: dict[str, Any]) -> Any:
        steps = typed(self, kind, event)
        holder = event.get("message") if kind == "message_start" else event
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
            return steps
        total = getattr(self, "summed", 0) + usage["output_tokens"]
        self.summed = total  # type: ignore[attr-defined]
        if kind != "message_delta":
            return steps
        rewritten = {**event, "usage": {**usage, "output_tokens": total}}
        self.forwarded += 1
        return [events.Event(json.dumps(rewritten).encode(), b"message_delta")]

    events.MessagesCheck._typed = summing  # type: ignore[method-assign]


def _typed_lose_after_ping() -> None:
    """Takes a ping for the end of what it read: the event right after one is lost."""
    event = events.MessagesCheck._event

    def losing(self: events.MessagesCheck, data: bytes, name: bytes) -> list[Step]:
        if getattr(self, "after_ping", False):
            self.after_ping = False  # type: ignore[attr-defined]
            return []
        self.after_ping = name == b"ping"  # type: ignore[attr-defined]
        return event(self, data, name)

    events.MessagesCheck._event = losing  # type: ignore[method-assign,assignment]


def _typed_drop_signature() -> None:
    """Drops the `signature_delta` of every thinking block (the block cannot be sent back)."""
    event = events.MessagesCheck._event

    def unsigned(self: events.MessagesCheck, data: bytes, name: bytes) -> list[Step]:
        if b'"signature_delta"' in data:
            return []
        return event(self, data, name)

    events.MessagesCheck._event = unsigned  # type: ignore[method-assign,assignment]


def _typed_error_chat_shape() -> None:
    """Ends a broken typed stream with a chat completions error event (`data: {"error"}`,
    no `event:` line), whatever the API."""

    def chat_shaped(
        self: events.EventCheck, code: str | int, message: str, type_: str, error_class: str
    ) -> Fail:
        return Fail(code, message, type_, error_class)

    events.MessagesCheck._failure = chat_shaped  # type: ignore[method-assign]
    events.ResponsesCheck._failure = chat_shaped  # type: ignore[method-assign]


def _reasoning_into_content() -> None:
    """Relays a chat chunk's `reasoning_content` as `content` (reasoning merged into the
    answer)."""
    event = relay.StreamCheck._event

    def merged(self: relay.StreamCheck, data: bytes, name: bytes) -> list[Step]:
        if b'"reasoning_content"' in data:
            data = data.replace(b'"reasoning_content"', b'"content"')
        return event(self, data, name)

    relay.StreamCheck._event = merged  # type: ignore[method-assign]


def _feed_broadcast_churn() -> None:
    tasks: set[asyncio.Task[None]] = set()

    async def broadcast(self: feed.Feed, body: str) -> None:
        for subscriber in self._subscribers:  # the live set
            subscriber.offer(body)
            await asyncio.sleep(0)  # where the seed awaited `websocket.send_text(...)`

    def publish(self: feed.Feed, message: dict[str, Any]) -> None:
        message["summary"] = self._health.summary()
        task = asyncio.get_running_loop().create_task(broadcast(self, feed._dumps(message)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    feed.Feed.publish = publish  # type: ignore[method-assign]


def _feed_seq_skip() -> None:
    offer = feed.Subscriber.offer

    def skipping(self: feed.Subscriber, body: str) -> bool:
        if self.pending:
            self.seq += 1  # numbered a message it then decided not to send
        return offer(self, body)

    feed.Subscriber.offer = skipping  # type: ignore[method-assign]


def _feed_drop_under_load() -> None:
    offer = feed.Subscriber.offer

    def shedding(self: feed.Subscriber, body: str) -> bool:
        if self.pending and body.startswith('{"type":"stream_'):
            return True  # "the client is busy": the event is gone, and nobody is told
        return offer(self, body)

    feed.Subscriber.offer = shedding  # type: ignore[method-assign]


def _feed_unbounded() -> None:
    init = feed.Subscriber.__init__

    def unbounded(self: feed.Subscriber, limit: int) -> None:
        init(self, sys.maxsize)

    feed.Subscriber.__init__ = unbounded  # type: ignore[method-assign]


def _feed_one_sender() -> None:
    lock = asyncio.Lock()
    write = feed._write

    async def serialised(websocket: Any, subscriber: feed.Subscriber) -> None:
        send_text = websocket.send_text

        async def one_at_a_time(text: str) -> None:
            async with lock:
                await send_text(text)

        websocket.send_text = one_at_a_time
        await write(websocket, subscriber)

    feed._write = serialised


def _feed_closes_on_bad_message() -> None:
    answer = feed._answer

    def strict(message: Any) -> dict[str, Any] | None:
        reply = answer(message)
        if reply is not None and reply.get("type") == "error":
            raise ValueError(reply["message"])  # as `json.loads` raising in the handler
        return reply

    feed._answer = strict


def _feed_no_init() -> None:
    def subscribe(self: feed.Feed, subscriber: feed.Subscriber) -> None:
        self._subscribers.add(subscriber)

    feed.Feed._subscribe = subscribe  # type: ignore[method-assign]


def _feed_pong_without_id() -> None:
    answer = feed._answer

    def bare(message: Any) -> dict[str, Any] | None:
        reply = answer(message)
        return {"type": "pong"} if reply is not None and reply.get("type") == "pong" else reply

    feed._answer = bare


def _feed_ignores_key() -> None:
    init = feed.Feed.__init__

    def keyless(self: feed.Feed, health: Any, config: Any, key: str = "") -> None:
        init(self, health, config, "")

    feed.Feed.__init__ = keyless  # type: ignore[method-assign]


def _feed_leaks_key() -> None:
    subscribe = feed.Feed._subscribe

    def leaky(self: feed.Feed, subscriber: feed.Subscriber) -> None:
        report = self._health.report
        keys = {name: value for name, value in os.environ.items() if name.endswith("_KEY")}

        def with_keys() -> dict[str, Any]:
            return {**report(), "providers": keys}

        self._health.report = with_keys  # type: ignore[method-assign]
        try:
            subscribe(self, subscriber)
        finally:
            self._health.report = report  # type: ignore[method-assign]

    feed.Feed._subscribe = leaky  # type: ignore[method-assign]


def _feed_ends_as_success() -> None:
    ended = feed.Feed._ended

    def as_success(self: feed.Feed, record: health.Record) -> None:
        outcome = dataclasses.replace(record.outcome, result=health.Result.SUCCESS)
        ended(self, dataclasses.replace(record, outcome=outcome))

    feed.Feed._ended = as_success  # type: ignore[method-assign]


def _feed_no_size_limit() -> None:
    main_module.WS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _feed_abrupt_shutdown() -> None:
    def shutdown(self: WebSocketsSansIOProtocol) -> None:
        self.transport.abort()

    WebSocketsSansIOProtocol.shutdown = shutdown  # type: ignore[method-assign]


def _patch_page(old: str, new: str) -> None:
    script = app.DASHBOARD_SCRIPT.decode()
    assert old in script, f"the dashboard's script has changed: {old!r} is gone"
    app.DASHBOARD_SCRIPT = script.replace(old, new).encode()


def _page_send_twice() -> None:
    _patch_page('$("ping").addEventListener("click", sendPing);\n', "")
    # A new function each time (the DOM ignores the same listener added twice).
    register = '$("ping").addEventListener("click", () => sendPing());'
    _patch_page("  socket = ws;\n", "  socket = ws;\n  " + register + "\n")


def _page_rows_twice() -> None:
    # Each snapshot's streams are given new keys, so none replaces one already shown.
    _patch_page("      streams.clear();\n", "      const generation = feed.connection;\n")
    _patch_page(
        "for (const record of [...message.health.recent].reverse()) remember(record, record);",
        "for (const record of [...message.health.recent].reverse()) "
        "remember({...record, id: `${generation}-${record.id}`}, record);",
    )


PATCHES: dict[str, Callable[[], None]] = {
    "no-fallback": _no_fallback,
    "count-as-success": _count_as_success,
    "metrics-drift": _metrics_drift,
    "log-no-class": _log_no_class,
    "log-twice": _log_twice,
    "chunks-off-by-one": _chunks_off_by_one,
    "alerts-off-by-one": _alerts_off_by_one,
    "empty-rate-zero": _empty_rate_zero,
    "no-partial-usage": _no_partial_usage,
    "api-chat-done-after-error": _api_chat_done_after_error,
    "api-chat-raw": _api_chat_raw,
    "errors-as-200": _errors_as_200,
    "feed-broadcast-churn": _feed_broadcast_churn,
    "feed-seq-skip": _feed_seq_skip,
    "feed-drop-under-load": _feed_drop_under_load,
    "feed-unbounded": _feed_unbounded,
    "feed-one-sender": _feed_one_sender,
    "feed-closes-on-bad-message": _feed_closes_on_bad_message,
    "feed-no-init": _feed_no_init,
    "feed-pong-without-id": _feed_pong_without_id,
    "feed-ignores-key": _feed_ignores_key,
    "feed-leaks-key": _feed_leaks_key,
    "feed-ends-as-success": _feed_ends_as_success,
    "feed-no-size-limit": _feed_no_size_limit,
    "feed-abrupt-shutdown": _feed_abrupt_shutdown,
    "page-send-twice": _page_send_twice,
    "page-rows-twice": _page_rows_twice,
    "tls-no-verify": _tls_no_verify,
    "tls-one-timer": _tls_one_timer,
    "tls-stale-pool": _tls_stale_pool,
    "tls-handshake-fatal": _tls_handshake_fatal,
    "tls-record-eof": _tls_record_eof,
    "typed-fake-end": _typed_fake_end,
    "typed-no-event-lines": _typed_no_event_lines,
    "typed-sum-usage": _typed_sum_usage,
    "typed-lose-after-ping": _typed_lose_after_ping,
    "typed-drop-signature": _typed_drop_signature,
    "typed-error-chat-shape": _typed_error_chat_shape,
    "reasoning-into-content": _reasoning_into_content,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bug", required=True, choices=sorted(BUGS))
    args, rest = parser.parse_known_args()
    PATCHES[args.bug]()
    return main_module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
