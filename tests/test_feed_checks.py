"""The feed's checks on hand-built messages, `Received`, `ws_url`, and the `Cutter` relay.

Each check has a case where it holds and one where it fails, and the failing one must say
what was seen. The Cutter relays a small TCP echo server on 127.0.0.1.
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from streamproof.fake_providers import Journal, Scenario
from streamproof.harness.checks import feed as checks
from streamproof.harness.cutter import Cutter
from streamproof.harness.feed import NO_CLOSE, Message, Received, ws_url
from streamproof.harness.sut import Exchange
from streamproof.harness.transcript import Arrival, Transcript, Transport

# --- ws_url and Received -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://127.0.0.1:8000", "/ws", "ws://127.0.0.1:8000/ws"),
        ("http://127.0.0.1:8000/", "/ws", "ws://127.0.0.1:8000/ws"),
        ("https://proxy.example:443", "/ws", "wss://proxy.example:443/ws"),
        ("http://127.0.0.1:9/prefix", "/feed", "ws://127.0.0.1:9/prefix/feed"),
    ],
)
def test_ws_url(base, path, url):
    assert ws_url(base, path) == url


def test_ws_url_defaults_to_ws():
    assert ws_url("http://127.0.0.1:1234") == "ws://127.0.0.1:1234/ws"


def test_received_sorts_frames():
    received = Received()
    assert received.take('{"type": "init", "seq": 1}') == {"type": "init", "seq": 1}
    assert received.take("[1, 2]") is None
    assert received.take("{oops") is None
    assert received.take(b'{"type": "pong"}') is None
    assert received.take('{"type": "pong", "seq": 2}') == {"type": "pong", "seq": 2}
    assert received.raw == [  # text frames only, in order
        '{"type": "init", "seq": 1}',
        "[1, 2]",
        "{oops",
        '{"type": "pong", "seq": 2}',
    ]
    assert received.not_json == ["[1, 2]", "{oops"]
    assert received.binary == 1
    assert [m["type"] for m in received.messages] == ["init", "pong"]
    assert received.of_type("pong") == [{"type": "pong", "seq": 2}]
    assert received.of_type("alert") == []
    assert received.close_code is None


def test_received_records_the_close_or_its_absence():
    received = Received()
    received.closed(ConnectionClosed(Close(1008, "too slow"), None))
    assert (received.close_code, received.close_reason) == (1008, "too slow")
    assert "closed: 1008 'too slow'" in received.describe()
    aborted = Received()
    aborted.closed(ConnectionClosed(None, None))
    assert (aborted.close_code, aborted.close_reason) == (NO_CLOSE, "")


def test_received_describe_shows_the_last_frames_and_the_bad_ones():
    received = Received()
    for n in range(1, 11):
        received.take(json.dumps({"seq": n}))
    received.take("nope")
    text = received.describe(last=2)
    assert text.splitlines()[0] == "11 text frame(s), 0 binary"
    assert "1 not JSON objects, first: nope" in text
    assert '{"seq": 10}' in text
    assert '{"seq": 9}' not in text


# --- frame and sequence checks -------------------------------------------------------------


def received_of(*frames: str | bytes) -> Received:
    received = Received()
    for frame in frames:
        received.take(frame)
    return received


def numbered(*seqs: Any) -> Received:
    return received_of(*(json.dumps({"type": "pong", "seq": seq}) for seq in seqs))


def test_frames_are_json_objects_holds_for_objects():
    finding = checks.frames_are_json_objects(numbered(1, 2))
    assert finding.ok
    assert finding.observed == "2 text frames"


def test_frames_are_json_objects_names_text_that_is_not_an_object():
    finding = checks.frames_are_json_objects(received_of('{"seq": 1}', "[1]"))
    assert not finding.ok
    assert "1 not JSON objects" in finding.observed
    assert "'[1]'" in finding.observed


def test_frames_are_json_objects_counts_binary_frames():
    finding = checks.frames_are_json_objects(received_of('{"seq": 1}', b"\x00"))
    assert not finding.ok
    assert "1 binary frames" in finding.observed


def test_seq_gap_free_holds_for_1_to_n():
    finding = checks.seq_gap_free(numbered(1, 2, 3))
    assert finding.ok
    assert finding.observed == "seq 1..3 in order"
    assert checks.seq_gap_free(Received()).ok  # nothing received, nothing missed


@pytest.mark.parametrize(
    ("seqs", "observed"),
    [
        pytest.param((1, 2, 4, 5), "message 3 of 4 has seq 4 (around it: [1, 2, 4, 5])", id="gap"),
        pytest.param((1, 1, 2), "message 2 of 3 has seq 1", id="twice"),
        pytest.param((2, 3), "message 1 of 2 has seq 2", id="no-1"),
        pytest.param((1, 3, 2), "message 2 of 3 has seq 3", id="reordered"),
        pytest.param((1, None), "message 2 of 2 has seq None", id="missing"),
        pytest.param((1, "2"), "message 2 of 2 has seq '2'", id="string"),
    ],
)
def test_seq_gap_free_names_the_first_wrong_message(seqs, observed):
    finding = checks.seq_gap_free(numbered(*seqs))
    assert not finding.ok
    assert observed in finding.observed


def test_seq_gap_free_shows_only_the_neighbourhood_of_the_gap():
    finding = checks.seq_gap_free(numbered(*range(1, 20), 21, *range(22, 40)))
    assert not finding.ok
    assert "message 20 of 38 has seq 21 (around it: [18, 19, 21, 22, 23])" in finding.observed


INIT: Message = {
    "type": "init",
    "seq": 1,
    "health": {"requests": {"total": 0}, "recent": [], "status": "ok"},
}


def test_is_init_holds_for_the_snapshot():
    finding = checks.is_init(INIT)
    assert finding.ok
    assert finding.observed == "type 'init', seq 1, health ['recent', 'requests', 'status']"


@pytest.mark.parametrize(
    ("message", "observed"),
    [
        pytest.param(None, "no message came", id="none"),
        pytest.param({**INIT, "type": "pong"}, "type 'pong'", id="type"),
        pytest.param({**INIT, "seq": 2}, "seq 2", id="seq"),
        pytest.param({**INIT, "health": "ok"}, "health ok", id="health-not-object"),
        pytest.param({**INIT, "health": {"requests": {}}}, "health ['requests']", id="no-recent"),
        pytest.param({**INIT, "health": {"recent": []}}, "health ['recent']", id="no-requests"),
    ],
)
def test_is_init_fails_and_says_what_came(message, observed):
    finding = checks.is_init(message)
    assert not finding.ok
    assert observed in finding.observed


def test_pong_answers_holds_for_its_id_and_seq():
    finding = checks.pong_answers({"type": "pong", "id": "p1", "seq": 4}, "p1", 4)
    assert finding.ok
    assert finding.check == "pong with id 'p1' and seq 4"


@pytest.mark.parametrize(
    ("message", "observed"),
    [
        pytest.param(None, "no reply came", id="none"),
        pytest.param({"type": "pong", "seq": 4}, "('pong', None, 4)", id="no-id"),
        pytest.param({"type": "pong", "id": "p2", "seq": 4}, "('pong', 'p2', 4)", id="other-id"),
        pytest.param({"type": "pong", "id": "p1", "seq": 5}, "('pong', 'p1', 5)", id="seq"),
        pytest.param({"type": "error", "id": "p1", "seq": 4}, "('error', 'p1', 4)", id="type"),
    ],
)
def test_pong_answers_fails_and_says_what_came(message, observed):
    finding = checks.pong_answers(message, "p1", 4)
    assert not finding.ok
    assert observed in finding.observed


def test_error_reply_holds_for_an_error_with_code_and_words():
    message = {"type": "error", "code": "invalid_json", "message": "not JSON", "seq": 2}
    finding = checks.error_reply(message)
    assert finding.ok
    assert "invalid_json" in finding.observed


@pytest.mark.parametrize(
    ("message", "observed"),
    [
        pytest.param(None, "no reply came", id="none"),
        pytest.param({"type": "pong", "seq": 2}, "'pong'", id="pong"),
        pytest.param({"type": "error", "message": "x"}, "'error'", id="no-code"),
        pytest.param({"type": "error", "code": 3, "message": "x"}, "'code': 3", id="int-code"),
        pytest.param({"type": "error", "code": "c"}, "'code': 'c'", id="no-message"),
    ],
)
def test_error_reply_fails_and_shows_the_reply(message, observed):
    finding = checks.error_reply(message)
    assert not finding.ok
    assert observed in finding.observed


def closed(code: int | None, reason: str = "") -> Received:
    received = Received()
    received.close_code, received.close_reason = code, reason
    return received


def test_still_open_holds_when_a_later_ping_was_answered():
    finding = checks.still_open(closed(None), replied=True)
    assert finding.ok
    assert finding.observed == "a later ping was answered"


def test_still_open_fails_without_an_answer_or_after_a_close():
    unanswered = checks.still_open(closed(None), replied=False)
    assert not unanswered.ok
    assert unanswered.observed == "no answer to a later ping"
    dropped = checks.still_open(closed(1003, "bad input"), replied=False)
    assert not dropped.ok
    assert "closed with 1003 'bad input'" in dropped.observed
    # an answer and then a close: the connection did not stay open
    assert not checks.still_open(closed(1008, "x"), replied=True).ok


def test_closed_with_holds_for_an_expected_code_and_reason():
    finding = checks.closed_with(closed(1008, "too slow"), (1008, 1013), "a slow client")
    assert finding.ok
    assert finding.check == "closed with 1008 or 1013 and a reason (a slow client)"
    assert finding.observed == "closed with 1008 'too slow'"
    assert checks.closed_with(closed(1008), (1008,), "x", reason=False).ok


@pytest.mark.parametrize(
    ("received", "observed"),
    [
        pytest.param(closed(None), "the connection was not closed", id="open"),
        pytest.param(closed(1000, "bye"), "closed with 1000 'bye'", id="other-code"),
        pytest.param(closed(NO_CLOSE), "closed with 1006 ''", id="no-close-frame"),
        pytest.param(closed(1008), "closed with 1008 ''", id="no-reason"),
    ],
)
def test_closed_with_fails_and_says_how_it_ended(received, observed):
    finding = checks.closed_with(received, (1008,), "a wrong key")
    assert not finding.ok
    assert finding.observed == observed


# --- events against streams ----------------------------------------------------------------


def event(kind: str, model: str, **record: Any) -> Message:
    return {"type": kind, "stream": {"model": model, **record}}


def test_stream_events_holds_for_one_start_then_one_end_each():
    messages = [
        {"type": "init", "seq": 1},
        event("stream_started", "a"),
        event("stream_started", "b"),
        event("stream_ended", "b"),
        event("stream_ended", "a"),
        event("stream_started", "someone-else"),  # not ours: ignored
        {"type": "alert", "change": "raised", "alert": {}},
    ]
    finding = checks.stream_events(messages, {"a", "b"})
    assert finding.ok
    assert finding.observed == "2 streams, 2 starts, 2 ends"


@pytest.mark.parametrize(
    ("messages", "observed"),
    [
        pytest.param(
            [event("stream_started", "a")],
            "1 streams wrong (a: 1 starts, 0 ends)",
            id="no-end",
        ),
        pytest.param(
            [event("stream_ended", "a")],
            "1 streams wrong (a: 0 starts, 1 ends)",
            id="no-start",
        ),
        pytest.param(
            [event("stream_started", "a")] * 2 + [event("stream_ended", "a")],
            "a: 2 starts, 1 ends",
            id="started-twice",
        ),
        pytest.param(
            [event("stream_ended", "a"), event("stream_started", "a")],
            "1 ended before they started (e.g. a)",
            id="end-before-start",
        ),
        pytest.param([], "1 streams, 0 starts, 0 ends", id="nothing"),
    ],
)
def test_stream_events_fails_and_names_the_stream(messages, observed):
    finding = checks.stream_events(messages, {"a"})
    assert not finding.ok
    assert observed in finding.observed


def test_ended_events_keeps_the_last_record_per_model():
    messages = [
        event("stream_ended", "a", result="failure"),
        event("stream_started", "b"),
        {"type": "stream_ended", "stream": "not a record"},
        event("stream_ended", "a", result="success"),
    ]
    assert checks.ended_events(messages) == {"a": {"model": "a", "result": "success"}}


# --- events against what the client saw ----------------------------------------------------

DONE = b"data: [DONE]\n\n"
ERROR_EVENT = b'data: {"error": {"message": "upstream reset"}}\n\n'


def chunk(content: str) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": None}
    return f"data: {json.dumps({'choices': [choice]})}\n\n".encode()


def exchange(
    *bodies: bytes,
    status: int | None = 200,
    transport: Transport = Transport.EOF,
    stream: bool = True,
    openai: bool = True,
    nonce: str = "a1",
) -> Exchange:
    request: dict[str, Any] = {"stream": stream}
    if openai:
        request["messages"] = [{"role": "user", "content": "hi"}]
    else:
        request["message"] = "hi"
    t = Transcript(request=request, sent_at=0.0, status=status, transport=transport, ended_at=1.0)
    if status is not None:
        t.headers = {"content-type": "text/event-stream" if stream else "application/json"}
    t.chunks = [Arrival(0.1 * n, body) for n, body in enumerate(bodies, start=1)]
    return Exchange(Scenario(nonce=nonce), t, Journal(nonce))


WHOLE = (chunk("Hel"), chunk("lo"), DONE)


@pytest.mark.parametrize(
    ("x", "results"),
    [
        pytest.param(exchange(*WHOLE), {"success"}, id="done"),
        pytest.param(
            exchange(b'{"choices": []}', stream=False), {"success"}, id="complete-not-streamed"
        ),
        pytest.param(exchange(chunk("Hel"), ERROR_EVENT), {"failure"}, id="error-event"),
        pytest.param(exchange(chunk("Hel")), {"failure"}, id="truncated"),
        pytest.param(exchange(chunk("Hel"), transport=Transport.RESET), {"failure"}, id="reset"),
        pytest.param(exchange(b"{}", status=502, stream=False), {"failure"}, id="http-error"),
        pytest.param(exchange(status=None), {"failure"}, id="no-response"),
        pytest.param(
            exchange(chunk("Hel"), transport=Transport.LEFT),
            {"cancelled", "success"},
            id="left",
        ),
        pytest.param(
            exchange(transport=Transport.TIMED_OUT), {"failure", "cancelled"}, id="timed-out"
        ),
    ],
)
def test_expected_results(x, results):
    assert checks.expected_results(x) == results


def record(result: str, status: int = 200, chunks: int = 2, **more: Any) -> Message:
    return {"result": result, "status": status, "chunks": chunks, "error_class": None, **more}


def test_event_agrees_holds_for_the_right_result_status_and_chunks():
    x = exchange(*WHOLE)
    finding = checks.event_agrees(record("success"), x)
    assert finding.ok
    assert finding.check == "stream_ended: success"
    assert "(the client: done, status 200, 2 chunks;" in finding.observed


@pytest.mark.parametrize(
    ("ended", "observed"),
    [
        pytest.param(None, "no stream_ended for streamproof", id="none"),
        pytest.param(record("failure"), "failure, status 200, 2 chunks", id="result"),
        pytest.param(record("success", status=502), "success, status 502", id="status"),
        pytest.param(record("success", chunks=3), "success, status 200, 3 chunks", id="chunks"),
    ],
)
def test_event_agrees_fails_and_says_both_sides(ended, observed):
    finding = checks.event_agrees(ended, exchange(*WHOLE))
    assert not finding.ok
    assert observed in finding.observed


def test_event_agrees_names_the_error_class_and_the_model():
    x = exchange(chunk("Hel"), transport=Transport.RESET)
    finding = checks.event_agrees(record("success", error_class="ReadError"), x)
    assert not finding.ok
    assert "error class ReadError" in finding.observed
    assert x.scenario.model in finding.observed


def test_event_agrees_does_not_count_chunks_of_a_client_that_left():
    x = exchange(chunk("Hel"), transport=Transport.LEFT)
    # the proxy may have written more than the client read before it hung up, and the
    # status it records is its own
    assert checks.event_agrees(record("cancelled", status=200, chunks=7), x).ok
    assert checks.event_agrees(record("success", status=499, chunks=7), x).ok
    assert not checks.event_agrees(record("failure"), x).ok


def test_event_agrees_does_not_count_chunks_of_the_simple_dialect():
    x = exchange(*WHOLE, openai=False)  # /api/chat reshapes chunks into fewer events
    assert checks.event_agrees(record("success", chunks=9), x).ok
    assert not checks.event_agrees(record("success", status=500, chunks=9), x).ok


def test_events_agree_holds_when_every_stream_agrees():
    first, second = exchange(*WHOLE, nonce="a1"), exchange(chunk("x"), nonce="b2")
    messages = [
        {"type": "stream_ended", "stream": {"model": first.scenario.model, **record("success")}},
        {
            "type": "stream_ended",
            "stream": {"model": second.scenario.model, **record("failure", chunks=1)},
        },
    ]
    finding = checks.events_agree(messages, [first, second])
    assert finding.ok
    assert finding.observed == "2 streams, 2 agree"


def test_events_agree_fails_and_shows_the_disagreement():
    first, second = exchange(*WHOLE, nonce="a1"), exchange(chunk("x"), nonce="b2")
    messages = [
        {"type": "stream_ended", "stream": {"model": first.scenario.model, **record("success")}},
        {"type": "stream_ended", "stream": {"model": second.scenario.model, **record("success")}},
    ]
    finding = checks.events_agree(messages, [first, second])
    assert not finding.ok
    assert finding.observed.startswith("2 streams, 1 agree; success, status 200, 2 chunks")
    assert second.scenario.model in finding.observed
    missing = checks.events_agree([], [first])
    assert not missing.ok
    assert "no stream_ended for" in missing.observed


def test_no_secret_holds_when_no_key_appears():
    finding = checks.no_secret(['{"type": "init"}', '{"type": "pong"}'], ["sk-1", ""])
    assert finding.ok
    assert finding.observed == "2 messages checked for 1 keys: none found"


def test_no_secret_counts_the_messages_that_leak():
    texts = ['{"type": "init", "key": "sk-1"}', '{"type": "pong"}', "x sk-2 y sk-1"]
    finding = checks.no_secret(texts, ["sk-1", "sk-2"])
    assert not finding.ok
    assert finding.observed == "3 messages checked for 2 keys: 2 contain one"


def test_no_secret_ignores_empty_keys():
    assert checks.no_secret(["anything"], ["", ""]).ok


# --- Cutter --------------------------------------------------------------------------------

WAIT = 5.0  # seconds: only a failing test waits this long


class EchoServer:
    """A TCP echo server on 127.0.0.1; `ended[i]` is set when connection i is over."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.ended: list[threading.Event] = []
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            ended = threading.Event()
            self.ended.append(ended)
            thread = threading.Thread(target=self._echo, args=(conn, ended), daemon=True)
            self._threads.append(thread)
            thread.start()

    @staticmethod
    def _echo(conn: socket.socket, ended: threading.Event) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass
        ended.set()

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        self.listener.close()
        self._accepter.join(WAIT)
        for thread in self._threads:
            thread.join(WAIT)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def cutter(echo: EchoServer) -> Iterator[Cutter]:
    with Cutter(echo.url) as relay:
        yield relay


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@pytest.fixture
def dial(cutter: Cutter) -> Iterator[Any]:
    """Connect to the relay; every socket is closed at the end."""
    opened: list[socket.socket] = []

    def connect() -> socket.socket:
        sock = socket.create_connection(address(cutter.url), timeout=WAIT)
        opened.append(sock)
        return sock

    yield connect
    for sock in opened:
        sock.close()


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        part = sock.recv(size - len(data))
        assert part, f"the connection ended after {len(data)} of {size} bytes"
        data += part
    return data


def wait_reset(sock: socket.socket) -> int:
    """Wait for the connection to be reset (or WAIT seconds); the socket's pending error.
    A poll for no event reports only hang-ups and errors: it returns once the reset came."""
    poller = select.poll()
    poller.register(sock, 0)
    events = poller.poll(WAIT * 1000)
    assert events, "the connection was not reset"
    assert events[0][1] & (select.POLLHUP | select.POLLERR)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


RESET_ERRORS = (errno.ECONNRESET, errno.EPIPE)


def test_cutter_relays_both_ways(cutter, dial, echo):
    assert cutter.url.startswith("http://127.0.0.1:")
    sock = dial()
    payload = bytes(range(256)) * 128  # 32 KiB, more than one read
    sock.sendall(payload)
    assert read_exactly(sock, len(payload)) == payload
    sock.sendall(b"again")
    assert read_exactly(sock, 5) == b"again"
    assert cutter.relayed == 1
    assert len(echo.ended) == 1


def test_cutter_relays_an_orderly_end(cutter, dial, echo):
    sock = dial()
    sock.sendall(b"last words")
    sock.shutdown(socket.SHUT_WR)  # the echo server sees the end, echoes, and closes
    assert read_exactly(sock, 10) == b"last words"
    assert sock.recv(10) == b""  # and that end reaches the client
    assert echo.ended[0].wait(WAIT)


def test_cutter_cut_ends_a_blocked_reader_with_a_reset(cutter, dial, echo):
    sock = dial()
    sock.sendall(b"ping")
    assert read_exactly(sock, 4) == b"ping"
    outcome: list[bytes | OSError] = []

    def reader() -> None:
        try:
            outcome.append(sock.recv(10))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    cutter.cut()
    thread.join(WAIT)
    assert not thread.is_alive(), "the reader is still blocked after the cut"
    assert outcome[0] == b"" or isinstance(outcome[0], ConnectionResetError), outcome
    assert wait_reset(sock) in RESET_ERRORS
    assert echo.ended[0].wait(WAIT), "the target's side was not ended"


def test_cutter_resets_new_connections_until_restored(cutter, echo):
    with socket.socket() as first:
        first.settimeout(WAIT)
        first.connect(address(cutter.url))
        first.sendall(b"a")
        assert read_exactly(first, 1) == b"a"
    cutter.cut()
    with socket.socket() as refused:
        refused.settimeout(WAIT)
        error = refused.connect_ex(address(cutter.url))  # not ECONNREFUSED: it must listen
        if error == 0:
            error = wait_reset(refused)
        # else the reset came before connect() even returned
        assert error in RESET_ERRORS, errno.errorcode.get(error, error)
    assert cutter.refused == 1
    assert cutter.relayed == 1
    assert len(echo.ended) == 1  # nothing reached the target
    cutter.restore()
    with socket.socket() as again:
        again.settimeout(WAIT)
        again.connect(address(cutter.url))
        again.sendall(b"back")
        assert read_exactly(again, 4) == b"back"
    assert cutter.relayed == 2
    assert cutter.refused == 1


def test_cutter_cut_leaves_the_target_serving(cutter, echo):
    cutter.cut()
    with socket.create_connection(address(echo.url), timeout=WAIT) as direct:
        direct.sendall(b"still here")
        assert read_exactly(direct, 10) == b"still here"


def wait_in_accept(thread: threading.Thread) -> None:
    """Wait until `thread` is blocked in accept(), as the kernel reports it (Linux)."""
    wchan = Path(f"/proc/self/task/{thread.native_id}/wchan")
    if not wchan.exists():
        pytest.skip("no /proc/self/task/*/wchan to see where the accept thread is")
    deadline = time.monotonic() + WAIT
    while wchan.read_text() != "inet_csk_accept":
        assert time.monotonic() < deadline, f"the thread is in {wchan.read_text()!r}"
        os.sched_yield()


def test_cutter_close_stops_listening(echo):
    relay = Cutter(echo.url)
    wait_in_accept(relay._thread)
    relay.close()
    with socket.socket() as late:
        late.settimeout(WAIT)
        with pytest.raises(ConnectionRefusedError):
            late.connect(address(relay.url))
