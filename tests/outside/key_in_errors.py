"""A relay whose author wanted errors you can debug: each one carries the upstream request.

Otherwise a careful relay (502/504 before the headers, one error event mid-stream, no
retries), it embeds the request it made upstream, headers and all, in every error it sends
back: its `Authorization: Bearer <key>` reaches the client in a 502 and in an error event."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

BLANK_LINES = (b"\r\n\r\n", b"\n\n", b"\r\r")
ENDED = re.compile(rb'data: ?(\[DONE\]|\{"error"|.*"finish_reason": ?"\w)')


def debug_error(exc: httpx.HTTPError | None, message: str, req: httpx.Request) -> dict[str, Any]:
    sent = {"method": req.method, "url": str(req.url), "headers": dict(req.headers)}
    detail = f"{message}: {exc!r}" if exc else message
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "upstream_error"
    return {"error": {"message": detail, "type": "upstream_error", "code": code, "request": sent}}


async def events(upstream: httpx.Response) -> AsyncIterator[bytes]:
    buffer, finished = b"", False
    try:
        async for data in upstream.aiter_raw():
            buffer += data
            cut = max(buffer.rfind(sep) + len(sep) if sep in buffer else 0 for sep in BLANK_LINES)
            whole, buffer = buffer[:cut], buffer[cut:]
            finished = finished or bool(ENDED.search(whole))
            if whole:
                yield whole
        if finished or ENDED.search(buffer):
            yield buffer
            return
        error = debug_error(None, "stream ended before finish_reason or [DONE]", upstream.request)
    except httpx.HTTPError as exc:
        error = debug_error(exc, "upstream stream failed", upstream.request)
    finally:
        await upstream.aclose()
    yield f"data: {json.dumps(error)}\n\n".encode()


async def proxy(request: Request) -> Response:
    client: httpx.AsyncClient = request.app.state.client
    body = await request.body()
    try:
        wants_stream = json.loads(body).get("stream", False)
    except (ValueError, RecursionError, AttributeError):
        return JSONResponse({"error": {"message": "invalid JSON body", "type": "bad_request"}}, 400)
    req = client.build_request("POST", "chat/completions", content=body)
    try:
        upstream = await client.send(req, stream=True)
        if upstream.is_success and wants_stream:
            return StreamingResponse(events(upstream), media_type=upstream.headers["content-type"])
        content = await upstream.aread()
    except httpx.HTTPError as exc:
        status = 504 if isinstance(exc, httpx.TimeoutException) else 502
        return JSONResponse(debug_error(exc, "upstream request failed", req), status)
    passed = {h: v for h, v in upstream.headers.items() if h in ("content-type", "retry-after")}
    return Response(content, upstream.status_code, passed)


if __name__ == "__main__":
    cli = argparse.ArgumentParser()
    cli.add_argument("--upstream", required=True)
    cli.add_argument("--fd", type=int)
    cli.add_argument("--port", type=int, default=4000)
    cli.add_argument("--connect-timeout", type=float, default=0.25)
    cli.add_argument("--read-timeout", type=float, default=0.3)
    args = cli.parse_args()
    app = Starlette(routes=[Route("/v1/chat/completions", proxy, methods=["POST"])])
    key = os.environ["STREAMPROOF_UPSTREAM_KEY"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timeout = httpx.Timeout(args.read_timeout, connect=args.connect_timeout)
    app.state.client = httpx.AsyncClient(
        base_url=args.upstream, headers=headers, timeout=timeout, trust_env=False
    )
    uvicorn.run(app, port=args.port, fd=args.fd, log_level="warning", loop="asyncio", http="h11")
