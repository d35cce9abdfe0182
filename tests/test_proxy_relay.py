"""The proxy end to end on real sockets: uvicorn on a thread, against the fake provider.

Faults happen on the wire here (real RSTs, stalls, splits inside CRLF and UTF-8), which the
in-process tests in test_proxy_dispatch.py cannot show. Each proxy serves on a socket bound
to 127.0.0.1:0 before it starts, so no port is guessed and nothing waits on a sleep: the
listening socket queues connections until uvicorn accepts them, and readiness is an event
set at the end of uvicorn's startup. What the proxy did upstream is read from the fake
provider's journal, waiting on its condition variable rather than on time.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import tomllib
from collections.abc import Generator, Iterator

import httpx
import pytest
import uvicorn

from streamproof.fake_providers import FakeProvider, Journal, fingerprint
from streamproof.proxy.app import create_app
from streamproof.proxy.config import parse_config

KEY = "sk-relay-test-key"
CONFIG = """
[timeouts]
connect = 1.0
first_byte = {first_byte}
idle = {idle}
total = 10.0

[retry]
max_attempts = 3
backoff_base = 0.01
backoff_max = 0.05
retry_after_cap = 0.5
deadline = 5.0

[providers.fake]
base_url = "{base_url}"
api_key_env = "STREAMPROOF_UPSTREAM_KEY"

[[routes]]
model = "*"
providers = ["fake"]
"""
_ids = itertools.count()


class ThreadedServer(uvicorn.Server):
    """uvicorn on its own thread and event loop; `ready` is set once it serves."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def serve_proxy(base_url: str, *, first_byte: float, idle: float) -> Generator[str]:
    text = CONFIG.format(base_url=base_url, first_byte=first_byte, idle=idle)
    app = create_app(parse_config(tomllib.loads(text)), {"STREAMPROOF_UPSTREAM_KEY": KEY})
    # IPPROTO_TCP explicitly, so asyncio sets TCP_NODELAY on the accepted connections.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = ThreadedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert server.ready.wait(10), "the proxy did not start"
    host, port = sock.getsockname()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(stall_limit=5.0) as provider:
        yield provider


@pytest.fixture(scope="module")
def proxy_url(fake: FakeProvider) -> Iterator[str]:
    """A proxy with small timers, like the harness's: stalls cost a fraction of a second."""
    yield from serve_proxy(fake.base_url, first_byte=0.5, idle=0.3)


@pytest.fixture(scope="module")
def patient_proxy_url(fake: FakeProvider) -> Iterator[str]:
    """A proxy whose timers outlast the test, so only the client's leaving can end a stall."""
    yield from serve_proxy(fake.base_url, first_byte=5.0, idle=5.0)


MESSAGES = [{"role": "user", "content": "hi"}]  # the fake refuses a request without any


def scenario(*tokens: str) -> tuple[str, str]:
    nonce = f"relay{next(_ids)}x{time.monotonic_ns() % 10**9}"
    return ".".join(["streamproof", f"id-{nonce}", *tokens]), nonce


def chat(url: str, model: str, stream: bool = True) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)


def events(body: bytes) -> list[bytes]:
    """The proxy writes only `data: <payload>\\n\\n` events; anything else is a bug."""
    assert body.endswith(b"\n\n")
    parts = body[:-2].split(b"\n\n")
    assert all(part.startswith(b"data: ") for part in parts), body
    return [part.removeprefix(b"data: ") for part in parts]


def content_of(payloads: list[bytes]) -> str:
    chunks = [json.loads(p) for p in payloads if p != b"[DONE]" and b'"error"' not in p]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def error_code(payload: bytes) -> str:
    return str(json.loads(payload)["error"]["code"])


def test_relay_clean_stream_is_relayed_with_done(fake, proxy_url):
    model, nonce = scenario("chunks-5")
    response = chat(proxy_url, model)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    payloads = events(response.content)
    assert payloads[-1] == b"[DONE]"
    assert payloads.count(b"[DONE]") == 1
    (attempt,) = fake.journal(nonce).attempts
    assert content_of(payloads) == attempt.content_written
    assert attempt.headers["authorization"] == fingerprint(f"Bearer {KEY}")
    assert attempt.body["model"] == model


def test_relay_clean_streams_reuse_the_upstream_connection(fake):
    # A proxy of its own, so that its pool holds only what this test opened.
    proxy = serve_proxy(fake.base_url, first_byte=5.0, idle=5.0)
    url = next(proxy)
    try:
        before = fake.accepted
        for _ in range(3):
            model, _ = scenario("chunks-5")
            assert events(chat(url, model).content)[-1] == b"[DONE]"
        assert fake.accepted - before == 1  # read to its end, the connection went back
        model, _ = scenario("chunks-6", "reset_after-3")
        assert error_code(events(chat(url, model).content)[-1]) == "upstream_reset"
        model, _ = scenario("chunks-5")
        assert events(chat(url, model).content)[-1] == b"[DONE]"
        assert fake.accepted - before == 2  # the reset one was not reused
    finally:
        proxy.close()


@pytest.mark.parametrize(
    "tokens",
    [
        ("eol-crlf", "split_eol"),
        ("eol-cr", "chop-1"),
        ("split_utf8",),
        ("coalesce",),
        ("chop-7", "eol-crlf"),
    ],
    ids=lambda tokens: ".".join(tokens),
)
def test_relay_split_writes_do_not_change_the_content(fake, proxy_url, tokens):
    clean_model, _ = scenario("chunks-6")
    model, _ = scenario("chunks-6", *tokens)
    clean = events(chat(proxy_url, clean_model).content)
    split = events(chat(proxy_url, model).content)
    assert content_of(split) == content_of(clean)
    assert split[-1] == b"[DONE]"


def test_relay_reset_before_headers_is_retried(fake, proxy_url):
    model, nonce = scenario("reset_before_headers", "first-2")
    response = chat(proxy_url, model)
    assert response.status_code == 200
    assert events(response.content)[-1] == b"[DONE]"
    assert len(fake.journal(nonce).attempts) == 3


def test_relay_reset_every_time_is_502(fake, proxy_url):
    model, _ = scenario("reset_before_headers")
    response = chat(proxy_url, model)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_failed"
    assert (
        "fake: connection reset or closed before response headers (ReadError) (attempt 3 of 3)"
        in error["message"]
    )
    assert KEY not in response.text


def test_relay_stall_before_headers_is_504_within_the_timers(fake, proxy_url):
    model, nonce = scenario("stall_before_headers")
    started = time.monotonic()
    response = chat(proxy_url, model)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert len(fake.journal(nonce).attempts) == 3
    assert 1.4 < elapsed < 3.0  # three first-byte timers of 0.5s, small backoffs


@pytest.mark.parametrize(
    ("tokens", "code"),
    [
        (("reset_after-3",), "upstream_reset"),
        (("stall_after-3",), "upstream_idle_timeout"),
        (("close_after-3",), "upstream_truncated"),
        (("malformed-4",), "upstream_malformed"),
    ],
    ids=["reset", "stall", "close", "malformed"],
)
def test_relay_failure_after_commit_is_one_error_event_without_done(fake, proxy_url, tokens, code):
    model, nonce = scenario("chunks-6", *tokens)
    response = chat(proxy_url, model)
    assert response.status_code == 200
    payloads = events(response.content)
    assert b"[DONE]" not in payloads
    assert error_code(payloads[-1]) == code
    assert sum(b'"error"' in p for p in payloads) == 1
    (attempt,) = fake.journal(nonce).attempts  # never retried after the commit point
    relayed = content_of(payloads)
    assert relayed
    # Everything before the failure, nothing after it (a malformed event stops the relay).
    assert attempt.content_written.startswith(relayed)
    if code != "upstream_malformed":
        assert relayed == attempt.content_written


def test_relay_idle_timeout_closes_the_upstream(fake, proxy_url):
    model, nonce = scenario("stall_after-2")
    response = chat(proxy_url, model)
    assert error_code(events(response.content)[-1]) == "upstream_idle_timeout"
    journal = fake.journal(nonce)
    assert journal.wait_for(lambda j: j.attempts[0].peer_closed_at is not None, timeout=2)


def test_relay_slow_healthy_stream_is_not_cut(fake, proxy_url):
    model, _ = scenario("chunks-4", "slow-150")  # 150 ms gaps, idle timer is 300 ms
    payloads = events(chat(proxy_url, model).content)
    assert payloads[-1] == b"[DONE]"


def test_relay_finish_without_done_is_completed_by_the_proxy(fake, proxy_url):
    model, _ = scenario("chunks-3", "no_done")
    payloads = events(chat(proxy_url, model).content)
    assert payloads[-1] == b"[DONE]"
    assert payloads.count(b"[DONE]") == 1


@pytest.mark.parametrize(
    ("tokens", "status", "attempts"),
    [
        (("status-503",), 502, 3),
        (("status-500", "first-2"), 200, 3),
        (("status-429",), 429, 3),
        (("status-429-0", "first-1"), 200, 2),
        (("status-400",), 400, 1),
        (("status-401",), 401, 1),
    ],
    ids=lambda value: ".".join(value) if isinstance(value, tuple) else str(value),
)
def test_relay_upstream_statuses(fake, proxy_url, tokens, status, attempts):
    model, nonce = scenario(*tokens)
    response = chat(proxy_url, model)
    assert response.status_code == status
    assert len(fake.journal(nonce).attempts) == attempts
    if status != 200:
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["message"]
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1


def test_relay_non_streaming_answer_is_passed_through(fake, proxy_url):
    model, _ = scenario("chunks-3")
    response = chat(proxy_url, model, stream=False)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == "stop"


def wait_closed(journal: Journal) -> bool:
    """Whether the proxy hung up on the upstream within 2 s."""
    return journal.wait_for(
        lambda j: bool(j.attempts) and j.attempts[-1].peer_closed_at is not None, timeout=2
    )


def test_relay_client_leaving_mid_stream_closes_the_upstream(fake, patient_proxy_url):
    model, nonce = scenario("chunks-6", "stall_after-3")
    body = {"model": model, "messages": MESSAGES, "stream": True}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{patient_proxy_url}/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        next(response.iter_raw())  # the first events arrived; the upstream now stalls
    # The proxy's idle timer is 5 s: only its noticing the client can close within 2 s.
    assert wait_closed(fake.journal(nonce))


def test_relay_client_leaving_before_headers_closes_the_upstream(fake, patient_proxy_url):
    model, nonce = scenario("stall_before_headers")
    body = json.dumps({"model": model, "messages": MESSAGES, "stream": True}).encode()
    journal = fake.journal(nonce)
    with socket.create_connection(("127.0.0.1", int(patient_proxy_url.rsplit(":", 1)[1]))) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: proxy\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        assert journal.wait_for(lambda j: bool(j.attempts), timeout=2)
    assert wait_closed(journal)
    assert len(journal.attempts) == 1  # no retry for a client who has left
