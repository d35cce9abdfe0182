"""A plain relay for an OpenAI-compatible API by a careful newcomer, with no retries.

Upstream errors pass as they came (status, JSON body, `Retry-After`), an unreachable upstream
is a 502 and a silent one a 504; mid-stream, a reset, a stall or an answer that stops before
it finished ends with one `data: {"error": ...}` event and no `[DONE]`. A client that hangs
up while it waits for the upstream cancels the upstream request."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")  # a blank line, whatever the EOLs
LAST = re.compile(rb'(?<![^\r\n])data: ?(\[DONE]|\{"error"|[^\r\n]*"finish_reason": ?"\w)')


def error(message: str, code: str, kind: str = "upstream_error") -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "code": code}}


async def relay(response: httpx.Response) -> AsyncIterator[bytes]:
    held, ended = b"", False  # held: an event not finished yet; ended: [DONE], finish or error
    try:
        async for chunk in response.aiter_raw():
            start, held = max(len(held) - 3, 0), held + chunk
            cut = max((end.end() for end in EVENT_END.finditer(held, start)), default=0)
            if cut:  # whole events only, so an error event never lands inside a half one
                ended = ended or LAST.search(held, 0, cut) is not None
                yield held[:cut]
                held = held[cut:]
        if ended or LAST.search(held):
            yield held
            return
        problem = error("upstream stream ended before it finished", "incomplete_stream")
    except httpx.TimeoutException:
        problem = error("upstream stopped sending", "upstream_timeout")
    except httpx.HTTPError as exc:
        problem = error(f"upstream connection failed ({type(exc).__name__})", "upstream_failed")
    finally:
        await response.aclose()
    yield b"data: " + json.dumps(problem).encode() + b"\n\n"


async def unless_gone(
    request: Request, answer: Coroutine[Any, Any, httpx.Response]
) -> httpx.Response | None:
    """The upstream's answer, or None if the client hangs up first (the upstream request is
    cancelled then, which closes it: nobody would read what it generates)."""

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            continue

    waiting, watching = asyncio.create_task(answer), asyncio.create_task(hung_up())
    await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
    watching.cancel()
    if waiting.done():
        return waiting.result()
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    return None


async def chat_completions(request: Request) -> Response:
    body = await request.body()
    try:
        streaming = json.loads(body).get("stream") is True
    except (ValueError, RecursionError, AttributeError):
        return JSONResponse(error("not a JSON object", "invalid_json", "invalid_request"), 400)
    try:
        outgoing = client.build_request("POST", "/chat/completions", content=body)
        response = await unless_gone(request, client.send(outgoing, stream=True))
        if response is None:
            return Response(status_code=499)  # the client left before the upstream answered
        content_type = response.headers.get("content-type", "application/json")
        if response.is_success and streaming:
            closing = BackgroundTask(response.aclose)  # also runs when the client has left
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(relay(response), 200, headers, content_type, closing)
        content = await response.aread()  # closes the response, also when it fails
    except httpx.TimeoutException:
        return JSONResponse(error("upstream did not answer in time", "timeout"), 504)
    except httpx.HTTPError as exc:
        return JSONResponse(error(f"upstream failed ({type(exc).__name__})", "bad_gateway"), 502)
    keep = {k: v for k, v in response.headers.items() if k == "retry-after"}
    return Response(content, response.status_code, keep, media_type=content_type)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A plain streaming relay, no retries.")
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://host/v1")
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument("--port", type=int, default=8000, help="or on 127.0.0.1:PORT")
    parser.add_argument("--connect", type=float, default=0.25, help="connect timeout (s)")
    parser.add_argument("--idle", type=float, default=0.3, help="longest upstream silence (s)")
    args = parser.parse_args()
    key = os.environ["STREAMPROOF_UPSTREAM_KEY"]
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    wait = httpx.Timeout(args.idle, connect=args.connect)
    client = httpx.AsyncClient(base_url=args.upstream, headers=auth, timeout=wait, trust_env=False)
    app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])
    uvicorn.run(app, port=args.port, fd=args.fd, log_level="warning", loop="asyncio", http="h11")
