"""Retry, fallback and the statuses before the commit point, without sockets.

The providers' HTTP clients get an `httpx.MockTransport`, so each case scripts exactly what
the upstream answers per attempt; the proxy app runs in process via httpx.ASGITransport.
Wire-level behaviour (real resets, stalls, splits, disconnects) is in test_proxy_relay.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from streamproof.proxy.app import create_app
from streamproof.proxy.config import Config, parse_config

KEY = "sk-dispatch-secret"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def make_config(extra: str = "", apis: str = '["chat"]') -> Config:
    """The tests' config; `apis` is what both providers speak."""
    return parse_config(
        tomllib.loads(
            f"""
            [timeouts]
            connect = 1.0
            first_byte = 0.2
            idle = 0.2
            total = 5.0

            [retry]
            max_attempts = 3
            backoff_base = 0.001
            backoff_max = 0.01
            retry_after_cap = 1.0
            deadline = 3.0

            [providers.fake]
            base_url = "http://fake.test/v1"
            api_key_env = "STREAMPROOF_UPSTREAM_KEY"
            apis = {apis}

            [providers.backup]
            base_url = "http://backup.test/v1"
            api_key_env = "STREAMPROOF_UPSTREAM_KEY"
            apis = {apis}
            models = {{ "m-fallback" = "backup-model" }}

            [[routes]]
            model = "m-fallback"
            providers = ["fake", "backup"]

            [[routes]]
            model = "*"
            providers = ["fake"]
            {extra}
            """
        )
    )


class Upstream:
    """Scripted answers, one handler per attempt (the last one repeats); records requests."""

    def __init__(self, *answers: Handler) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        await request.aread()
        index = min(len(self.requests), len(self.answers)) - 1
        return await self.answers[index](request)

    def hosts(self) -> list[str]:
        return [request.url.host for request in self.requests]


def status(code: int, body: object = None, headers: dict[str, str] | None = None) -> Handler:
    async def answer(request: httpx.Request) -> httpx.Response:
        payload = body if body is not None else {"error": {"message": f"boom {code}"}}
        return httpx.Response(code, json=payload, headers=headers)

    return answer


def ok_json() -> Handler:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"object": "chat.completion", "choices": []})

    return answer


def raises(error: type[httpx.TransportError]) -> Handler:
    async def answer(request: httpx.Request) -> httpx.Response:
        raise error("scripted", request=request)

    return answer


def stalls() -> Handler:
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never set: the proxy's timer must end this
        raise AssertionError("unreachable")

    return answer


def sse(*parts: bytes | BaseException | float) -> Handler:
    """A 200 event stream: bytes are written, a float stalls that long, an exception raises."""

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            if isinstance(part, BaseException):
                raise part
            if isinstance(part, float):
                await asyncio.sleep(part)  # a scripted upstream stall, not synchronisation
                continue
            yield part

    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return answer


def chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    data = json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    return f"data: {data}\n\n".encode()


async def call(
    upstream: Upstream, body: dict[str, Any], config: Config | None = None
) -> httpx.Response:
    (response,) = await calls(upstream, [body], config)
    return response


async def calls(
    upstream: Upstream, bodies: list[dict[str, Any]], config: Config | None = None
) -> list[httpx.Response]:
    """The requests one after the other, through one proxy app."""
    async with proxy(upstream, config) as http:
        return [await http.post("/v1/chat/completions", json=body) for body in bodies]


@asynccontextmanager
async def proxy(
    upstream: Upstream, config: Config | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a proxy app whose providers all answer from `upstream`."""
    app = create_app(
        config or make_config(),
        {"STREAMPROOF_UPSTREAM_KEY": KEY},
        rng=random.Random(0),
        transport=httpx.MockTransport(upstream),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
            yield http


def request(model: str = "m", stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.mark.asyncio
async def test_dispatch_retries_5xx_then_succeeds():
    upstream = Upstream(status(503), status(500), ok_json())
    response = await call(upstream, request())
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"
    assert len(upstream.requests) == 3


@pytest.mark.asyncio
async def test_dispatch_forwards_body_with_key_and_unmapped_model():
    upstream = Upstream(ok_json())
    await call(upstream, request())
    sent = upstream.requests[0]
    assert sent.url == "http://fake.test/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept-encoding"] == "identity"
    assert json.loads(sent.content) == request()


@pytest.mark.asyncio
async def test_dispatch_all_5xx_is_502_naming_provider_and_attempts():
    upstream = Upstream(status(500))
    response = await call(upstream, request())
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "upstream_failed"
    assert error["type"] == "upstream_error"
    assert "fake: HTTP 500 from upstream: boom 500 (attempt 3 of 3)" in error["message"]
    assert len(upstream.requests) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "code", "status_code", "words"),
    [
        (httpx.ConnectError, "upstream_failed", 502, "cannot connect"),
        (httpx.ConnectTimeout, "upstream_timeout", 504, "connect timed out"),
        (
            httpx.RemoteProtocolError,
            "upstream_failed",
            502,
            "reset or closed before response headers",
        ),
        (httpx.ReadError, "upstream_failed", 502, "reset or closed before response headers"),
    ],
)
async def test_dispatch_transport_errors_are_retried_then_reported(error, code, status_code, words):
    upstream = Upstream(raises(error))
    response = await call(upstream, request(stream=True))
    assert response.status_code == status_code
    assert error_of(response)["code"] == code
    assert words in error_of(response)["message"]
    assert len(upstream.requests) == 3


@pytest.mark.asyncio
async def test_dispatch_first_byte_timeout_is_504():
    upstream = Upstream(stalls())
    response = await call(upstream, request(stream=True))
    assert response.status_code == 504
    error = error_of(response)
    assert error["code"] == "upstream_timeout"
    assert "no response headers within 0.2s (attempt 3 of 3)" in error["message"]


@pytest.mark.asyncio
async def test_dispatch_stall_after_headers_before_first_byte_is_retried():
    upstream = Upstream(sse(5.0), sse(chunk("hi"), chunk(None, "stop"), b"data: [DONE]\n\n"))
    response = await call(upstream, request(stream=True))
    assert response.status_code == 200
    assert response.content.endswith(b"data: [DONE]\n\n")
    assert len(upstream.requests) == 2


@pytest.mark.asyncio
async def test_dispatch_overall_deadline_bounds_all_attempts():
    config = make_config()
    config = replace(config, retry=replace(config.retry, max_attempts=50, deadline=0.5))
    upstream = Upstream(stalls())
    started = asyncio.get_running_loop().time()
    response = await call(upstream, request(stream=True), config)
    elapsed = asyncio.get_running_loop().time() - started
    assert response.status_code == 504
    assert elapsed < 1.5
    assert len(upstream.requests) <= 4


@pytest.mark.asyncio
async def test_dispatch_429_waits_retry_after_then_succeeds():
    upstream = Upstream(status(429, headers={"retry-after": "0"}), ok_json())
    response = await call(upstream, request())
    assert response.status_code == 200
    assert len(upstream.requests) == 2


@pytest.mark.asyncio
async def test_dispatch_429_beyond_the_cap_is_not_waited_for():
    upstream = Upstream(status(429, headers={"retry-after": "30"}))
    response = await call(upstream, request())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert error_of(response)["code"] == "upstream_rate_limited"
    assert len(upstream.requests) == 1


@pytest.mark.asyncio
async def test_dispatch_all_429_is_429_with_retry_after():
    upstream = Upstream(status(429))
    response = await call(upstream, request(stream=True))
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert len(upstream.requests) == 3


@pytest.mark.asyncio
async def test_dispatch_4xx_is_passed_through_unretried_and_redacted():
    body = {"error": {"message": f"invalid key {KEY}", "type": "auth", "code": "bad_key"}}
    upstream = Upstream(status(401, body))
    response = await call(upstream, request(stream=True))
    assert response.status_code == 401
    assert KEY not in response.text
    assert error_of(response) == {
        "message": "invalid key [redacted]",
        "type": "auth",
        "code": "bad_key",
    }
    assert len(upstream.requests) == 1


@pytest.mark.asyncio
async def test_dispatch_4xx_without_json_gets_a_json_error():
    async def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>nope</html>")

    response = await call(Upstream(html), request())
    assert response.status_code == 404
    assert "fake: HTTP 404 from upstream" in error_of(response)["message"]


@pytest.mark.asyncio
async def test_dispatch_falls_back_to_the_next_provider_with_its_model_name():
    upstream = Upstream(status(500), status(500), status(500), ok_json())
    response = await call(upstream, request("m-fallback"))
    assert response.status_code == 200
    assert upstream.hosts() == ["fake.test"] * 3 + ["backup.test"]
    assert json.loads(upstream.requests[-1].content)["model"] == "backup-model"


@pytest.mark.asyncio
async def test_dispatch_fallback_failure_names_every_provider():
    upstream = Upstream(status(500))
    response = await call(upstream, request("m-fallback"))
    message = error_of(response)["message"]
    assert "fake: HTTP 500" in message
    assert "backup: HTTP 500" in message


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"error": {"message": "overloaded"}}'],
    ids=["empty", "invalid", "array", "error"],
)
async def test_dispatch_non_streaming_bad_200_is_retried_and_never_a_200(body):
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    upstream = Upstream(answer)
    response = await call(upstream, request())
    assert response.status_code == 502
    assert len(upstream.requests) == 3


@pytest.mark.asyncio
async def test_dispatch_stream_relays_events_and_done():
    events = chunk("Hel") + chunk("lo") + chunk(None, "stop") + b"data: [DONE]\n\n"
    upstream = Upstream(sse(events[:7], events[7:30], events[30:]))
    response = await call(upstream, request(stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.content == events


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "opening",
    [
        b"data: {broken\n\n",
        b'data: {"error": {"message": "overloaded"}}\n\n',
        b"data: [DONE]\n\n",
        b": just a comment\n\n",
        httpx.DecodingError("bad gzip"),
    ],
    ids=["malformed", "error-event", "done", "comment-only", "undecodable"],
)
async def test_dispatch_stream_bad_opening_is_retried_before_the_commit_point(opening):
    good = chunk("hi") + chunk(None, "stop") + b"data: [DONE]\n\n"
    upstream = Upstream(sse(opening), sse(good))
    response = await call(upstream, request(stream=True))
    assert response.status_code == 200
    assert response.content == good
    assert len(upstream.requests) == 2


@pytest.mark.asyncio
async def test_dispatch_stream_reset_after_content_is_one_error_event_without_done():
    upstream = Upstream(sse(chunk("a"), chunk("b"), httpx.ReadError("reset")))
    response = await call(upstream, request(stream=True))
    assert response.status_code == 200
    assert len(upstream.requests) == 1  # never retried after the commit point
    events = response.content.split(b"\n\n")
    assert events[:2] == [chunk("a").strip(), chunk("b").strip()]
    error = json.loads(events[2].removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_reset"
    assert b"[DONE]" not in response.content
    assert response.content.endswith(b"\n\n")
    assert events[3:] == [b""]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("tail", "code"),
    [
        ((), "upstream_truncated"),
        ((1.0,), "upstream_idle_timeout"),
        ((b"data: {nope\n\n",), "upstream_malformed"),
        ((httpx.DecodingError("bad gzip"),), "upstream_malformed"),
        ((httpx.RemoteProtocolError("peer closed"),), "upstream_reset"),
    ],
    ids=["truncated", "idle", "malformed", "undecodable", "protocol-error"],
)
async def test_dispatch_stream_failures_after_commit(tail, code):
    upstream = Upstream(sse(chunk("a"), *tail, chunk("late"), chunk(None, "stop")))
    if not tail:
        upstream = Upstream(sse(chunk("a")))
    response = await call(upstream, request(stream=True))
    assert response.status_code == 200
    assert response.content.count(b'"error"') == 1
    assert f'"code": "{code}"'.encode() in response.content
    assert b"data: [DONE]" not in response.content
    assert b"late" not in response.content


@pytest.mark.asyncio
async def test_dispatch_stream_finish_without_done_gets_done():
    upstream = Upstream(sse(chunk("a"), chunk(None, "stop")))
    response = await call(upstream, request(stream=True))
    assert response.content == chunk("a") + chunk(None, "stop") + b"data: [DONE]\n\n"


@pytest.mark.asyncio
async def test_dispatch_every_provider_cooling_down_is_a_fast_503():
    upstream = Upstream(status(429, headers={"retry-after": "30"}))
    first, second = await calls(upstream, [request(), request()])
    assert first.status_code == 429
    assert second.status_code == 503
    assert error_of(second)["code"] == "providers_cooling_down"
    assert 29 <= int(second.headers["retry-after"]) <= 30
    assert len(upstream.requests) == 1  # the second request never reached the provider


@pytest.mark.asyncio
async def test_dispatch_a_cooling_provider_is_skipped_for_the_next_in_the_chain():
    upstream = Upstream(status(429, headers={"retry-after": "30"}), ok_json())
    first, second = await calls(upstream, [request("m-fallback"), request("m-fallback")])
    assert (first.status_code, second.status_code) == (200, 200)
    assert upstream.hosts() == ["fake.test", "backup.test", "backup.test"]


@pytest.mark.asyncio
async def test_dispatch_an_answer_ends_the_cooldown():
    # Retry-After 1 is within the cap: the proxy waits it out, and the answer clears it.
    upstream = Upstream(status(429, headers={"retry-after": "1"}), ok_json())
    config = replace(make_config(), retry=replace(make_config().retry, retry_after_cap=2.0))
    first, second = await calls(upstream, [request(), request()], config)
    assert (first.status_code, second.status_code) == (200, 200)
    assert len(upstream.requests) == 3
