"""The live feed (`/ws`) and the proxy's own key, in process.

The feed is driven through Starlette's `TestClient` (its WebSocket sessions run the ASGI
app on the client's event loop thread, so `on_loop` can make the `Health` begin and end
requests there, as the response code does) and sans-IO, on `Subscriber` and `Feed` with a
`Health` of their own. The key is checked on that feed alone and on the whole app from
`create_app` (its HTTP paths and its `/ws` route).
"""

from __future__ import annotations

import contextlib
import json
import socket
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from streamproof.proxy.app import STATIC_HEADERS, create_app
from streamproof.proxy.auth import OPEN_PATHS, key_matches, presented_key, proxy_key
from streamproof.proxy.config import Config, ConfigError, FeedConfig, HealthConfig, ServerConfig
from streamproof.proxy.feed import Feed, Subscriber, websocket_protocol
from streamproof.proxy.health import Health, Outcome, Started
from tests.test_proxy_config import MINIMAL, parse
from tests.test_proxy_dispatch import KEY as UPSTREAM_KEY
from tests.test_proxy_dispatch import make_config

with warnings.catch_warnings():
    # Starlette's TestClient would rather have httpx2; httpx is what the project has. Matched
    # by its text: StarletteDeprecationWarning is newer than the Starlette floor.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    # Older Starlettes name anyio.abc.BlockingPortal, an alias that newer anyio deprecates.
    warnings.filterwarnings("ignore", message="The anyio.abc.BlockingPortal alias is deprecated")
    from starlette.testclient import (
        TestClient,
        WebSocketDenialResponse,
        WebSocketTestSession,
    )

PROXY_KEY = "sp-proxy-key-5f1c0e9a7b"
KEY_VARIABLE = "STREAMPROOF_PROXY_KEY"
ENDED = "streamproof.ended"
NOW = 1_700_000_000.0  # the wall clock of the feed's Health
T = TypeVar("T")


# --- helpers -------------------------------------------------------------------------------


@contextlib.contextmanager
def feed_client(
    *,
    key: str = "",
    queue: int = 100,
    auth_timeout: float = 5.0,
    health: HealthConfig | None = None,
) -> Iterator[tuple[TestClient, Health, Feed]]:
    """A TestClient of an app that is only the feed, on a `Health` the test drives, whose
    wall clock stands still (a snapshot taken later says the same `time`)."""
    board = Health(health or HealthConfig(), clock=lambda: NOW)
    feed = Feed(board, FeedConfig(queue=queue, auth_timeout=auth_timeout), key)
    app = Starlette(routes=[WebSocketRoute("/ws", feed)])
    with TestClient(Tracked(app)) as client:
        yield client, board, feed


class Tracked:
    """The app, noting in each WebSocket's scope when its connection's app call ended.

    A TestClient session cancels the app as soon as it has sent its disconnect; landing in
    the middle of the feed's own cleanup, that cancellation escapes anyio's cancel scope and
    the session fails at exit. `connect` waits for the end first, as uvicorn would."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        scope[ENDED] = ended = anyio.Event()
        try:
            await self.app(scope, receive, send)
        finally:
            ended.set()


@contextlib.contextmanager
def connect(
    client: TestClient, headers: dict[str, str] | None = None
) -> Iterator[WebSocketTestSession]:
    """A feed connection; on exit the client leaves and the server is done with it."""
    with client.websocket_connect("/ws", headers=dict(headers or {})) as ws:
        try:
            yield ws
        finally:
            ws.close(1000)
            ended: anyio.Event = ws.scope[ENDED]

            async def wait() -> None:
                with anyio.fail_after(5):
                    await ended.wait()

            ws.portal.call(wait)


def on_loop(client: TestClient, function: Callable[[], T]) -> T:
    """Run `function` on the app's event loop thread, as the proxy's own code runs."""
    assert client.portal is not None
    return client.portal.call(function)


def refused(client: TestClient, headers: dict[str, str]) -> None:
    """Open a feed connection that the server must refuse (the session is entered, as the
    handshake happens then); fails if it is accepted."""
    with client.websocket_connect("/ws", headers=headers):
        pytest.fail("the handshake was accepted")


def recv_text(ws: WebSocketTestSession, timeout: float = 2.0) -> str:
    """The next text frame; WebSocketDisconnect when the server closed instead. Fails after
    `timeout` seconds rather than hang, unlike `receive_text`."""

    async def next_message() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(next_message)
    ws._raise_on_close(message)
    text = message["text"]
    assert isinstance(text, str)
    return text


def recv(ws: WebSocketTestSession, timeout: float = 2.0) -> dict[str, Any]:
    parsed = json.loads(recv_text(ws, timeout))
    assert isinstance(parsed, dict)
    return parsed


def close_of(ws: WebSocketTestSession) -> tuple[int, str]:
    """The close the server sends next: (code, reason); fails if a message comes first."""
    with pytest.raises(WebSocketDisconnect) as info:
        recv(ws)
    return info.value.code, info.value.reason


def begin(board: Health, model: str = "m") -> Started:
    return board.begin(model, stream=True, endpoint="/v1/chat/completions")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keyed_config(extra: str = "") -> Config:
    return make_config(f'[server]\napi_key_env = "{KEY_VARIABLE}"\n{extra}')


def environ(key: str | None = PROXY_KEY) -> dict[str, str]:
    env = {"STREAMPROOF_UPSTREAM_KEY": UPSTREAM_KEY}
    if key is not None:
        env[KEY_VARIABLE] = key
    return env


class Upstream:
    """Records what reaches the providers; answers 200 with an empty completion."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"object": "chat.completion", "choices": []})


@contextlib.contextmanager
def proxy_client(config: Config, env: dict[str, str]) -> Iterator[tuple[TestClient, Upstream]]:
    """A TestClient of the whole proxy app, its lifespan run; the providers answer from
    `Upstream` through a mock transport."""
    upstream = Upstream()
    app = create_app(config, env, transport=httpx.MockTransport(upstream))
    with TestClient(Tracked(app)) as client:
        yield client, upstream


# --- Subscriber, sans-IO -------------------------------------------------------------------


def test_subscriber_numbers_each_message_and_signals_its_writer():
    subscriber = Subscriber(limit=10)
    assert not subscriber.ready.is_set()
    assert subscriber.offer('{"type":"a"}')
    assert subscriber.send({"type": "b", "n": 1})
    assert subscriber.ready.is_set()
    assert [json.loads(text) for text in subscriber.pending] == [
        {"seq": 1, "type": "a"},
        {"seq": 2, "type": "b", "n": 1},
    ]
    assert subscriber.seq == 2
    assert subscriber.closing is None


def test_subscriber_at_its_limit_is_dropped_with_its_queue_emptied():
    subscriber = Subscriber(limit=2)
    assert subscriber.offer('{"type":"a"}')
    assert subscriber.offer('{"type":"b"}')
    subscriber.ready.clear()
    assert not subscriber.offer('{"type":"c"}')
    assert list(subscriber.pending) == []
    assert subscriber.closing == (1008, "too slow: 2 messages were waiting")
    assert subscriber.ready.is_set()  # its writer wakes to send the close
    assert not subscriber.offer('{"type":"d"}')  # nothing more, ever
    assert list(subscriber.pending) == []
    assert subscriber.seq == 2


def test_subscriber_close_keeps_what_is_queued_and_the_first_reason():
    subscriber = Subscriber(limit=5)
    subscriber.send({"type": "a"})
    subscriber.close(1012, "going away")
    subscriber.close(1008, "later")
    assert subscriber.closing == (1012, "going away")
    assert not subscriber.send({"type": "b"})
    assert [json.loads(text)["type"] for text in subscriber.pending] == ["a"]


# --- Feed, sans-IO -------------------------------------------------------------------------


def test_feed_publish_without_subscribers_does_nothing():
    board = Health(HealthConfig())
    feed = Feed(board, FeedConfig())
    message: dict[str, Any] = {"type": "stream_started"}
    feed.publish(message)
    assert message == {"type": "stream_started"}  # not even a summary computed
    started = begin(board)  # the listeners run, with no one to tell
    board.end(started, Outcome.success(chunks=1))
    assert feed.clients == 0


def test_feed_drops_a_subscriber_at_its_limit_and_the_others_still_get_events(caplog):
    board = Health(HealthConfig())
    feed = Feed(board, FeedConfig(queue=2))
    slow, other = Subscriber(2), Subscriber(10)
    feed._subscribe(slow)  # init: one waiting
    feed._subscribe(other)
    assert feed.clients == 2
    begin(board, "first")  # slow: two waiting
    begin(board, "second")  # slow: full, dropped
    assert feed.clients == 1
    assert list(slow.pending) == []
    assert slow.closing is not None
    assert slow.closing[0] == 1008
    assert "too slow" in slow.closing[1]
    begin(board, "third")
    assert list(slow.pending) == []
    got = [json.loads(text) for text in other.pending]
    assert [(m["seq"], m["type"]) for m in got] == [
        (1, "init"),
        (2, "stream_started"),
        (3, "stream_started"),
        (4, "stream_started"),
    ]
    assert [m["stream"]["model"] for m in got[1:]] == ["first", "second", "third"]
    assert "dropped a client" in caplog.text


def test_feed_subscribe_sends_init_with_the_report_then_events():
    # One wall-clock moment for the whole test: the report carries the time it was made.
    board = Health(HealthConfig(), clock=lambda: 1_700_000_000.0)
    feed = Feed(board, FeedConfig())
    done = begin(board, "done")
    board.end(done, Outcome.success(chunks=2))
    running = begin(board, "running")
    subscriber = Subscriber(10)
    feed._subscribe(subscriber)
    init = json.loads(subscriber.pending[0])
    assert init == {"seq": 1, "type": "init", "health": board.report()}
    assert init["health"]["active_requests"] == [running.as_json()]
    assert [r["model"] for r in init["health"]["recent"]] == ["done"]


# --- the feed over a WebSocket -------------------------------------------------------------


def test_feed_seq_counts_every_message_from_1_replies_included():
    with feed_client() as (client, board, _), connect(client) as ws:
        got = [recv(ws)]
        ws.send_json({"type": "ping"})
        got.append(recv(ws))
        started = on_loop(client, lambda: begin(board))
        got.append(recv(ws))
        ws.send_text("not json")
        got.append(recv(ws))
        on_loop(client, lambda: board.end(started, Outcome.success(chunks=3)))
        got.append(recv(ws))
    assert [(m["seq"], m["type"]) for m in got] == [
        (1, "init"),
        (2, "pong"),
        (3, "stream_started"),
        (4, "error"),
        (5, "stream_ended"),
    ]


def test_feed_seq_is_per_connection():
    with (
        feed_client() as (client, board, _),
        connect(client) as first,
        connect(client) as second,
    ):
        assert recv(first)["seq"] == recv(second)["seq"] == 1
        first.send_json({"type": "ping"})
        assert recv(first)["seq"] == 2  # the pong is first's alone
        on_loop(client, lambda: begin(board))
        assert (recv(first)["seq"], recv(second)["seq"]) == (3, 2)


def test_feed_init_is_first_and_carries_the_report():
    with feed_client() as (client, board, _):
        done = begin(board, "done")  # no client yet: nobody to tell, no loop needed
        board.end(done, Outcome.failure(502, "ReadError", "upstream_reset", "reset"))
        running = begin(board, "running")
        with connect(client) as ws:
            init = recv(ws)
    assert init["type"] == "init"
    assert init["seq"] == 1
    assert init["health"] == json.loads(json.dumps(board.report()))
    assert init["health"]["active_requests"] == [running.as_json()]
    assert init["health"]["recent"][0]["error_class"] == "ReadError"
    assert init["health"]["requests"]["active"] == 1


def test_feed_events_on_begin_and_end_carry_the_stream_and_the_summary():
    with feed_client() as (client, board, _), connect(client) as ws:
        recv(ws)
        started = on_loop(client, lambda: begin(board, "kimi"))
        begun = recv(ws)
        summary_begun = json.loads(json.dumps(board.summary()))
        record = on_loop(client, lambda: board.end(started, Outcome.success(chunks=4)))
        ended = recv(ws)
    assert begun["type"] == "stream_started"
    assert begun["stream"] == started.as_json()
    assert begun["summary"]["requests"]["active"] == 1
    assert begun["summary"] == summary_begun
    assert ended["type"] == "stream_ended"
    assert ended["stream"] == json.loads(json.dumps(record.as_json()))
    assert ended["stream"]["chunks"] == 4
    assert ended["summary"]["requests"] == {
        "total": 1,
        "succeeded": 1,
        "failed": 0,
        "cancelled": 0,
        "active": 0,
    }
    assert ended["summary"]["success_rate"] == 1.0


def test_feed_alert_raised_and_cleared_are_events_with_the_summary():
    thresholds = HealthConfig(
        max_consecutive_failures=1, min_success_rate=0, min_chunks_per_stream=0
    )
    with (
        feed_client(health=thresholds) as (client, board, _),
        connect(client) as ws,
    ):
        recv(ws)

        def fail_then_succeed() -> None:
            board.end(begin(board), Outcome.failure(502, "ConnectError", "upstream_failed", "x"))
            board.end(begin(board), Outcome.success(chunks=1))

        on_loop(client, fail_then_succeed)
        got = [recv(ws) for _ in range(6)]
    assert [m["type"] for m in got] == [
        "stream_started",
        "stream_ended",
        "alert",
        "stream_started",
        "stream_ended",
        "alert",
    ]
    raised, cleared = got[2], got[5]
    assert (raised["change"], raised["alert"]["name"]) == ("raised", "consecutive_failures")
    assert raised["summary"]["status"] == "degraded"
    assert raised["summary"]["failures_by_class"] == {"ConnectError": 1}
    assert (cleared["change"], cleared["alert"]["name"]) == ("cleared", "consecutive_failures")
    assert cleared["summary"]["status"] == "ok"


def test_feed_summary_alerts_say_the_numbers_of_their_own_event():
    """While an alert holds, each event's summary carries it with the figures of that
    moment (one `alert` event when raised, one when cleared): a page that draws the alert
    next to the success rate from one message shows one moment."""
    thresholds = HealthConfig(
        window=8,
        min_requests=4,
        min_success_rate=0.75,
        max_consecutive_failures=0,
        min_chunks_per_stream=0,
    )
    ok, bad = Outcome.success(chunks=3), Outcome.failure(200, "ReadError", "upstream_reset", "x")
    outcomes = [ok, ok, ok, bad, bad, ok, bad, ok, ok, ok, ok, ok]
    with feed_client(health=thresholds) as (client, board, _), connect(client) as ws:
        recv(ws)

        def run() -> None:
            for outcome in outcomes:
                board.end(begin(board), outcome)

        on_loop(client, run)
        got = [recv(ws) for _ in range(2 * len(outcomes) + 2)]  # one raise, one clear
    changes = [(m["change"], m["alert"]["name"]) for m in got if m["type"] == "alert"]
    assert changes == [("raised", "low_success_rate"), ("cleared", "low_success_rate")]
    shown = []
    for message in got:
        if message["type"] != "stream_ended":
            continue
        summary = message["summary"]
        rate = summary["success_rate"]
        assert summary["status"] == ("degraded" if summary["alerts"] else "ok")
        for alert in summary["alerts"]:
            assert alert["value"] == rate
            shown.append(alert["message"])
    assert shown == [
        "success rate 60.0 % is below 75.0 % over the last 5 requests",
        "success rate 66.7 % is below 75.0 % over the last 6 requests",
        "success rate 57.1 % is below 75.0 % over the last 7 requests",
        *["success rate 62.5 % is below 75.0 % over the last 8 requests"] * 4,
    ]
    # The raise comes after the end that raised it, whose summary already carries it.
    kinds = [m["type"] for m in got]
    raised = kinds.index("alert")
    assert kinds[raised - 1] == "stream_ended"
    assert got[raised - 1]["summary"]["alerts"] == [got[raised]["alert"]]


def test_feed_drops_a_client_that_falls_behind_with_1008():
    with feed_client(queue=3) as (client, board, feed), connect(client) as ws:
        assert recv(ws)["type"] == "init"
        # Four events with no await in between: the writer cannot send any of them.
        on_loop(client, lambda: [begin(board) for _ in range(4)])
        code, reason = close_of(ws)  # the queued three are dropped with the client
        assert feed.clients == 0
    assert code == 1008
    assert reason == "too slow: 3 messages were waiting"


def test_feed_a_client_that_leaves_is_unsubscribed():
    with feed_client() as (client, _, feed):
        with connect(client) as ws:
            recv(ws)
            assert feed.clients == 1
        assert feed.clients == 0


BAD_MESSAGES = [
    pytest.param("text", "{not json", "invalid_json", id="invalid-json"),
    pytest.param("text", "", "invalid_json", id="empty"),
    pytest.param("text", "[1, 2]", "not_an_object", id="array"),
    pytest.param("text", '"ping"', "not_an_object", id="string"),
    pytest.param("text", '{"type": "subscribe"}', "unknown_type", id="unknown-type"),
    pytest.param("text", '{"id": 1}', "unknown_type", id="no-type"),
    pytest.param("text", '{"type": "auth", "key": "k"}', "unexpected_auth", id="auth-again"),
    pytest.param("bytes", b'{"type": "ping"}', "binary_not_accepted", id="binary"),
]


@pytest.mark.parametrize(("kind", "payload", "code"), BAD_MESSAGES)
def test_feed_bad_message_gets_its_error_and_the_connection_stays_open(kind, payload, code):
    with feed_client() as (client, _, _), connect(client) as ws:
        recv(ws)
        if kind == "bytes":
            ws.send_bytes(payload)
        else:
            ws.send_text(payload)
        error = recv(ws)
        ws.send_json({"type": "ping", "id": "after"})
        pong = recv(ws)
    assert error["type"] == "error"
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["seq"] == 2
    assert (pong["type"], pong["id"], pong["seq"]) == ("pong", "after", 3)


@pytest.mark.parametrize(
    ("ping_id", "echoed"),
    [
        pytest.param("abc", True, id="short-string"),
        pytest.param("x" * 64, True, id="string-at-the-limit"),
        pytest.param("x" * 65, False, id="string-over-the-limit"),
        pytest.param(42, True, id="int"),
        pytest.param(2.5, True, id="float"),
        pytest.param({"a": 1}, False, id="object"),
        pytest.param([1], False, id="array"),
        pytest.param(None, False, id="null"),
    ],
)
def test_feed_ping_id_is_echoed_only_when_short_string_or_number(ping_id, echoed):
    with feed_client() as (client, _, _), connect(client) as ws:
        recv(ws)
        ws.send_json({"type": "ping", "id": ping_id})
        pong = recv(ws)
    assert pong["type"] == "pong"
    assert pong["seq"] == 2
    assert ("id" in pong) is echoed
    if echoed:
        assert pong["id"] == ping_id


def test_feed_ping_without_id_gets_a_pong_without_id():
    with feed_client() as (client, _, _), connect(client) as ws:
        recv(ws)
        ws.send_text('{"type": "ping"}')
        assert recv(ws) == {"seq": 2, "type": "pong"}


def test_feed_ping_with_an_out_of_range_number_id_is_answered():
    with feed_client() as (client, _, _), connect(client) as ws:
        recv(ws)
        ws.send_text('{"type": "ping", "id": 1e400}')  # valid JSON; too big for a double
        pong = recv(ws)
        ws.send_json({"type": "ping", "id": "after"})
        after = recv(ws)
    assert pong["type"] in ("pong", "error")
    assert "id" not in pong
    assert (after["type"], after["id"]) == ("pong", "after")


# --- the key on the feed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [bearer(PROXY_KEY), {"x-api-key": PROXY_KEY}, {"Authorization": f"bearer {PROXY_KEY}"}],
    ids=["bearer", "x-api-key", "lowercase-scheme"],
)
def test_feed_right_key_in_the_handshake_gets_init_at_seq_1(headers):
    with (
        feed_client(key=PROXY_KEY) as (client, _, _),
        connect(client, headers) as ws,
    ):
        init = recv(ws)
    assert (init["type"], init["seq"]) == ("init", 1)


@pytest.mark.parametrize(
    "headers",
    [bearer("wrong"), bearer(""), {"x-api-key": PROXY_KEY + "x"}],
    ids=["wrong-bearer", "empty-bearer", "wrong-x-api-key"],
)
def test_feed_wrong_key_in_the_handshake_is_refused_with_401(headers):
    with feed_client(key=PROXY_KEY) as (client, _, feed):
        with pytest.raises(WebSocketDenialResponse) as info:
            refused(client, headers)
        assert feed.clients == 0
    denial = info.value
    assert denial.status_code == 401
    assert denial.json()["error"]["code"] == "invalid_api_key"
    assert PROXY_KEY not in denial.text


def test_feed_without_header_asks_for_the_key_then_sends_init():
    with (
        feed_client(key=PROXY_KEY) as (client, board, feed),
        connect(client) as ws,
    ):
        asked = recv(ws)
        hidden = on_loop(client, lambda: begin(board, "before-auth"))  # not for this client
        assert feed.clients == 0
        ws.send_json({"type": "auth", "key": PROXY_KEY})
        init = recv(ws)
        on_loop(client, lambda: begin(board, "after-auth"))
        event = recv(ws)
    assert (asked["type"], asked["seq"]) == ("auth_required", 1)
    assert (init["type"], init["seq"]) == ("init", 2)
    assert init["health"]["active_requests"] == [hidden.as_json()]
    assert (event["type"], event["seq"], event["stream"]["model"]) == (
        "stream_started",
        3,
        "after-auth",
    )


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        pytest.param({"type": "auth", "key": "wrong"}, "invalid proxy key", id="wrong-key"),
        pytest.param({"type": "auth", "key": PROXY_KEY + "x"}, "invalid proxy key", id="longer"),
        pytest.param({"type": "auth", "key": 12}, "authenticate first", id="key-not-a-string"),
        pytest.param({"type": "ping"}, "authenticate first", id="ping-first"),
        pytest.param("not json", "authenticate first", id="not-json"),
        pytest.param(b"\x00", "authenticate first", id="binary"),
    ],
)
def test_feed_without_header_anything_but_the_right_key_is_closed_1008(first, reason):
    with (
        feed_client(key=PROXY_KEY) as (client, _, feed),
        connect(client) as ws,
    ):
        assert recv(ws)["type"] == "auth_required"
        if isinstance(first, bytes):
            ws.send_bytes(first)
        elif isinstance(first, str):
            ws.send_text(first)
        else:
            ws.send_json(first)
        code, said = close_of(ws)
        assert feed.clients == 0
    assert code == 1008
    assert reason in said
    assert PROXY_KEY not in said


def test_feed_without_header_and_no_auth_in_time_is_closed_1008():
    with (
        feed_client(key=PROXY_KEY, auth_timeout=0.05) as (client, _, _),
        connect(client) as ws,
    ):
        assert recv(ws)["type"] == "auth_required"
        code, reason = close_of(ws)  # the server's own timer, 50 ms
    assert code == 1008
    assert "in time" in reason


def test_feed_never_sends_the_key():
    texts: list[str] = []
    with (
        feed_client(key=PROXY_KEY) as (client, board, _),
        connect(client) as ws,
    ):
        texts.append(recv_text(ws))
        ws.send_json({"type": "auth", "key": PROXY_KEY})
        texts.append(recv_text(ws))
        for message in (
            json.dumps({"type": "auth", "key": PROXY_KEY}),
            json.dumps({"type": PROXY_KEY}),
            json.dumps({"type": "ping", "id": {"key": PROXY_KEY}}),
            json.dumps({"type": "ping", "id": PROXY_KEY * 4}),  # too long to echo
            PROXY_KEY,
            "{" + PROXY_KEY,
        ):
            ws.send_text(message)
            texts.append(recv_text(ws))
        on_loop(client, lambda: board.end(begin(board), Outcome.success(chunks=1)))
        texts += [recv_text(ws), recv_text(ws)]
    assert len(texts) == 10
    assert [json.loads(t)["type"] for t in texts[:2]] == ["auth_required", "init"]
    assert all(PROXY_KEY not in text for text in texts), texts


# --- the key on the real app ---------------------------------------------------------------


def test_app_feed_wants_the_proxy_key():
    with proxy_client(keyed_config(), environ()) as (client, _):
        with pytest.raises(WebSocketDenialResponse) as info:
            refused(client, bearer(UPSTREAM_KEY))
        assert info.value.status_code == 401
        with connect(client, bearer(PROXY_KEY)) as ws:
            init = recv(ws)
        with connect(client) as ws:
            asked = recv(ws)
    assert (init["type"], init["seq"]) == ("init", 1)
    assert asked["type"] == "auth_required"


def test_app_feed_without_a_configured_key_wants_none():
    with proxy_client(make_config(), environ(None)) as (client, _):
        with connect(client) as ws:
            first = recv(ws)
            ws.send_json({"type": "auth", "key": "anything"})
            again = recv(ws)
        with connect(client, bearer("whatever")) as ws:
            with_header = recv(ws)
    assert (first["type"], first["seq"]) == ("init", 1)
    assert again["code"] == "unexpected_auth"
    assert (with_header["type"], with_header["seq"]) == ("init", 1)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        bearer(UPSTREAM_KEY),
        {"Authorization": f"Basic {PROXY_KEY}"},
        {"Authorization": PROXY_KEY},
        {"x-api-key": PROXY_KEY[:-1]},
    ],
    ids=["none", "wrong", "upstream-key", "basic-scheme", "no-scheme", "truncated"],
)
def test_app_http_without_the_key_is_401_json(headers):
    with proxy_client(keyed_config(), environ()) as (client, upstream):
        models = client.get("/v1/models", headers=headers)
        metrics = client.get("/metrics", headers=headers)
        chat = client.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
    for response in (models, metrics, chat):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert PROXY_KEY not in response.text
    assert upstream.requests == []


@pytest.mark.parametrize(
    "headers",
    [bearer(PROXY_KEY), {"x-api-key": PROXY_KEY}, {"Authorization": f"BEARER  {PROXY_KEY}"}],
    ids=["bearer", "x-api-key", "upper-scheme-extra-space"],
)
def test_app_http_with_the_key_is_served(headers):
    with proxy_client(keyed_config(), environ()) as (client, upstream):
        models = client.get("/v1/models", headers=headers)
        chat = client.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert models.status_code == 200
    assert models.json()["object"] == "list"
    assert chat.status_code == 200
    assert len(upstream.requests) == 1
    assert upstream.requests[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_app_open_paths_need_no_key():
    assert frozenset({"/", "/dashboard.js", "/health"}) == OPEN_PATHS
    with proxy_client(keyed_config(), environ()) as (client, _):
        responses = {path: client.get(path) for path in sorted(OPEN_PATHS)}
    assert {path: r.status_code for path, r in responses.items()} == dict.fromkeys(OPEN_PATHS, 200)
    assert responses["/health"].json()["requests"]["total"] == 0


def test_app_without_a_configured_key_needs_none():
    with proxy_client(make_config(), environ(None)) as (client, _):
        statuses = [client.get(path).status_code for path in ("/v1/models", "/metrics", "/health")]
    assert statuses == [200, 200, 200]


def test_app_serves_the_dashboard_with_its_static_headers():
    with proxy_client(make_config(), environ(None)) as (client, _):
        page = client.get("/")
        script = client.get("/dashboard.js")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text.lstrip().lower().startswith("<!doctype html>")
    assert "dashboard.js" in page.text
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "WebSocket" in script.text
    for response in (page, script):
        assert (
            response.headers["content-security-policy"]
            == (STATIC_HEADERS["Content-Security-Policy"])
        )
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("value", [None, "", "  \n"], ids=["unset", "empty", "blank"])
def test_create_app_with_the_key_variable_unset_is_a_config_error(value):
    env = environ(None) if value is None else environ(value)
    with pytest.raises(ConfigError) as info:
        create_app(keyed_config(), env)
    assert info.value.key == "server.api_key_env"
    assert KEY_VARIABLE in str(info.value)


def test_create_app_reads_the_key_from_the_given_environ_only(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, PROXY_KEY)
    with pytest.raises(ConfigError):
        create_app(keyed_config(), environ(None))


# --- proxy.auth ----------------------------------------------------------------------------


def test_proxy_key_is_empty_without_a_variable_and_stripped_with_one():
    assert proxy_key(ServerConfig(), {KEY_VARIABLE: "ignored"}) == ""
    server = ServerConfig(api_key_env=KEY_VARIABLE)
    assert proxy_key(server, {KEY_VARIABLE: f"  {PROXY_KEY}\n"}) == PROXY_KEY
    with pytest.raises(ConfigError, match=KEY_VARIABLE):
        proxy_key(server, {})


@pytest.mark.parametrize(
    ("headers", "presented"),
    [
        ({"authorization": "Bearer k1"}, "k1"),
        ({"authorization": "bearer  k1 "}, "k1"),
        ({"authorization": "Basic k1"}, None),
        ({"authorization": "Bearer k1", "x-api-key": "k2"}, "k1"),
        ({"x-api-key": "k2"}, "k2"),
        ({}, None),
    ],
    ids=["bearer", "lowercase-spaces", "basic", "authorization-wins", "x-api-key", "none"],
)
def test_presented_key(headers, presented):
    assert presented_key(Headers(headers)) == presented


def test_key_matches_only_the_same_key():
    assert key_matches(PROXY_KEY, PROXY_KEY)
    assert not key_matches(None, PROXY_KEY)
    assert not key_matches("", PROXY_KEY)
    assert not key_matches(PROXY_KEY[:-1] + "X", PROXY_KEY)
    assert not key_matches(PROXY_KEY + "X", PROXY_KEY)


# --- config: [feed] and server.api_key_env -------------------------------------------------


def test_config_feed_and_key_defaults():
    config = parse(MINIMAL)
    assert config.feed == FeedConfig(queue=1000, send_buffer=65536, auth_timeout=10.0)
    assert config.server.api_key_env == ""


def test_config_feed_and_key_values():
    config = parse(
        "[feed]\nqueue = 5\nsend_buffer = 0\nauth_timeout = 2\n"
        f'[server]\napi_key_env = "{KEY_VARIABLE}"\n' + MINIMAL
    )
    assert config.feed == FeedConfig(queue=5, send_buffer=0, auth_timeout=2.0)
    assert isinstance(config.feed.auth_timeout, float)
    assert config.server.api_key_env == KEY_VARIABLE


@pytest.mark.parametrize(
    ("text", "key", "accepted"),
    [
        pytest.param("[feed]\nqeue = 5\n", "feed.qeue", "unknown key", id="typo"),
        pytest.param("[feed]\nqueue = 0\n", "feed.queue", "at least 1", id="queue-zero"),
        pytest.param("[feed]\nqueue = 1.5\n", "feed.queue", "integer", id="queue-float"),
        pytest.param("[feed]\nqueue = true\n", "feed.queue", "integer", id="queue-bool"),
        pytest.param(
            "[feed]\nsend_buffer = -1\n", "feed.send_buffer", "at least 0", id="buffer-neg"
        ),
        pytest.param(
            "[feed]\nsend_buffer = '64k'\n", "feed.send_buffer", "integer", id="buffer-str"
        ),
        pytest.param(
            "[feed]\nauth_timeout = 0\n", "feed.auth_timeout", "greater than 0", id="auth-zero"
        ),
        pytest.param("[feed]\nauth_timeout = inf\n", "feed.auth_timeout", "seconds", id="auth-inf"),
        pytest.param(
            "[feed]\nauth_timeout = 'soon'\n", "feed.auth_timeout", "number", id="auth-str"
        ),
        pytest.param("feed = 1\n", "feed", "table", id="not-a-table"),
        pytest.param(
            "[server]\napi_key_env = ''\n", "server.api_key_env", "non-empty", id="key-empty"
        ),
        pytest.param(
            "[server]\napi_key_env = 3\n", "server.api_key_env", "non-empty", id="key-int"
        ),
        pytest.param(
            "[server]\napi_key_env = '${KEY}'\n",
            "server.api_key_env",
            "environment variable name",
            id="key-env-syntax",
        ),
        pytest.param(
            "[server]\napi_key = 'sk-x'\n", "server.api_key", "unknown key", id="key-itself"
        ),
    ],
)
def test_config_feed_and_key_mistakes_are_named(text, key, accepted):
    with pytest.raises(ConfigError) as info:
        parse(text + MINIMAL)
    assert info.value.key == key
    assert accepted in str(info.value)


# --- proxy.health: what the feed needs ------------------------------------------------------


def test_health_begin_tells_its_listeners_and_counts_the_active():
    board = Health(HealthConfig())
    heard: list[Started] = []
    board.begin_listeners.append(heard.append)
    started = board.begin("m", stream=False, endpoint="/api/chat")
    assert heard == [started]
    assert started.as_json() == {
        "id": 1,
        "model": "m",
        "endpoint": "/api/chat",
        "stream": False,
        "started_at": round(started.started_at, 3),
    }
    assert board.summary()["requests"]["active"] == 1
    assert board.report()["active_requests"] == [started.as_json()]
    board.end(started, Outcome.cancelled(200))
    assert board.report()["active_requests"] == []
    assert board.summary()["requests"] == {
        "total": 1,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 1,
        "active": 0,
    }


def test_health_summary_is_the_head_of_the_report():
    board = Health(HealthConfig(max_consecutive_failures=2, min_success_rate=0), clock=lambda: NOW)
    for _ in range(2):
        board.end(begin(board), Outcome.failure(502, "ReadError", "upstream_reset", "x"))
    summary = board.summary()
    assert set(summary) == {
        "time",
        "status",
        "requests",
        "success_rate",
        "window",
        "consecutive_failures",
        "failures_by_class",
        "alerts",
    }
    assert summary["time"] == NOW
    assert summary["status"] == "degraded"
    assert summary["success_rate"] == 0.0
    assert summary["window"] == {"size": 100, "requests": 2}
    assert summary["consecutive_failures"] == 2
    assert summary["failures_by_class"] == {"ReadError": 2}
    assert [alert["message"] for alert in summary["alerts"]] == [
        "2 consecutive failures (threshold 2)"
    ]
    report = board.report()
    assert {key: report[key] for key in summary} == summary


# --- websocket_protocol --------------------------------------------------------------------


class FakeTransport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


@pytest.mark.parametrize("send_buffer", [0, 50_000])
def test_websocket_protocol_sets_the_send_buffer(monkeypatch, send_buffer):
    made: list[object] = []
    monkeypatch.setattr(
        WebSocketsSansIOProtocol, "connection_made", lambda self, transport: made.append(transport)
    )
    protocol_class = websocket_protocol(send_buffer)
    assert issubclass(protocol_class, WebSocketsSansIOProtocol)
    protocol = protocol_class.__new__(protocol_class)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        transport = FakeTransport(sock)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert made == [transport]  # uvicorn's own setup still runs
    if send_buffer:
        assert send_buffer <= size <= 2 * send_buffer  # Linux doubles what it is given
        assert size != default
    else:
        assert size == default
