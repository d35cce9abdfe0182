"""The proxy's other endpoints and stream options, in process: /api/chat, /health and
/metrics after real requests, the per-request log line, and SSE heartbeats."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import httpx
import pytest

from tests.test_proxy_dispatch import KEY, Upstream, chunk, make_config, proxy, sse, status

HELLO = sse(chunk(None), chunk("Hel"), chunk("lo"), chunk(None, "stop"), b"data: [DONE]\n\n")


def data_events(body: bytes) -> list[bytes]:
    return [line.removeprefix(b"data: ") for line in body.split(b"\n") if line.startswith(b"data:")]


@pytest.mark.asyncio
async def test_api_chat_streams_chunks_then_done():
    upstream = Upstream(HELLO)
    async with proxy(upstream) as http:
        response = await http.post("/api/chat", json={"message": "hi", "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert data_events(response.content) == [b'{"chunk": "Hel"}', b'{"chunk": "lo"}', b"[DONE]"]
    sent = json.loads(upstream.requests[0].content)
    assert sent == {
        "model": "kimi-for-coding",  # server.default_model
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


@pytest.mark.asyncio
async def test_api_chat_failure_after_the_commit_point_is_one_error_event_without_done():
    upstream = Upstream(sse(chunk("Hel"), httpx.ReadError("reset")))
    async with proxy(upstream) as http:
        response = await http.post(
            "/api/chat", json={"message": "hi", "stream": True, "model": "x"}
        )
    events = data_events(response.content)
    assert events[0] == b'{"chunk": "Hel"}'
    assert json.loads(events[1])["error"]["code"] == "upstream_reset"
    assert len(events) == 2
    assert json.loads(upstream.requests[0].content)["model"] == "x"


@pytest.mark.asyncio
async def test_api_chat_not_streamed_answers_the_whole_text():
    answer = {
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }

    async def ok(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    async with proxy(Upstream(ok)) as http:
        response = await http.post("/api/chat", json={"message": "hi"})
    assert response.json() == {"response": "Hello", "model": "m", "usage": answer["usage"]}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (b"[]", "invalid_body"),
        (b"{}", "invalid_message"),
        (b'{"message": 1}', "invalid_message"),
        (b'{"message": "hi", "stream": "yes"}', "invalid_stream"),
        (b'{"message": "hi", "model": ""}', "invalid_model"),
    ],
)
async def test_api_chat_bad_requests_are_400_json(body, code):
    upstream = Upstream(HELLO)
    async with proxy(upstream) as http:
        response = await http.post("/api/chat", content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert upstream.requests == []


@pytest.mark.asyncio
async def test_health_records_each_request_with_its_error_class():
    upstream = Upstream(HELLO, sse(chunk("Hel"), httpx.ReadError("reset")), status(500))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with proxy(upstream) as http:
        await http.post("/v1/chat/completions", json=body)
        await http.post("/v1/chat/completions", json=body)
        await http.post("/v1/chat/completions", json=body)  # three 500s: a 502
        report = (await http.get("/health")).json()
        metrics = (await http.get("/metrics")).text
    assert report["requests"]["succeeded"] == 1
    assert report["requests"]["failed"] == 2
    assert report["failures_by_class"] == {"ReadError": 1, "HTTPStatusError": 1}
    newest, middle, oldest = report["recent"]
    assert (oldest["result"], oldest["chunks"], oldest["attempts"]) == ("success", 4, 1)
    assert (middle["error_class"], middle["code"], middle["status"]) == (
        "ReadError",
        "upstream_reset",
        200,
    )
    assert middle["usage"]["estimated"] is True  # partial usage of the failed stream
    assert (newest["status"], newest["attempts"], newest["code"]) == (502, 3, "upstream_failed")
    assert report["providers"]["fake"] == {"usable": True, "cooling_down": False}
    assert 'streamproof_proxy_failures_total{error_class="ReadError"} 1.0' in metrics
    assert KEY not in json.dumps(report)
    assert KEY not in metrics


@pytest.mark.asyncio
async def test_log_has_one_line_per_request_naming_the_error_class(caplog):
    upstream = Upstream(sse(chunk("Hel"), httpx.ReadError("reset")))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with caplog.at_level(logging.INFO, logger="proxy"):
        async with proxy(upstream) as http:
            await http.post("/v1/chat/completions", json=body)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat ")]
    assert len(lines) == 1
    assert lines[0].startswith("chat stream failed ReadError code=upstream_reset: ")
    assert "connection reset" in lines[0]
    assert "chunks=1" in lines[0]


@pytest.mark.asyncio
async def test_heartbeats_are_sse_comments_while_the_upstream_is_silent():
    upstream = Upstream(sse(chunk("Hel"), 0.25, chunk("lo", "stop"), b"data: [DONE]\n\n"))
    config = make_config()
    config = replace(
        config,
        server=replace(config.server, heartbeat=0.05),
        timeouts=replace(config.timeouts, idle=1.0),
    )
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with proxy(upstream, config) as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.content.count(b": keep-alive\n\n") >= 2
    events = data_events(response.content)
    assert [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]] == [
        "Hel",
        "lo",
    ]
    assert events[-1] == b"[DONE]"


@pytest.mark.asyncio
async def test_heartbeats_do_not_hold_off_the_idle_timeout():
    upstream = Upstream(sse(chunk("Hel"), 5.0, chunk("lo", "stop")))
    config = make_config()
    config = replace(config, server=replace(config.server, heartbeat=0.05))  # idle is 0.2
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with proxy(upstream, config) as http:
        response = await http.post("/v1/chat/completions", json=body)
    events = data_events(response.content)
    assert json.loads(events[-1])["error"]["code"] == "upstream_idle_timeout"
    assert b": keep-alive" in response.content
