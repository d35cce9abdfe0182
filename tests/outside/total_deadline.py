"""A relay with one deadline for the whole exchange, as people write after a hung request.

No connect or read timeout, only `--total` seconds (default 3) from request to last byte: an
upstream that never answers gets a 504, a stream still running at the deadline is cut with
one error event however healthy it is, and any stall shorter than that is waited out."""

import argparse
import asyncio
import json
import os
import re
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

EVENT_BREAK = re.compile(rb"\r?\n\r?\n|\r\r")
FINISHED = re.compile(rb'(?<![^\r\n])data: ?(?:\[DONE\]|\{"error"|.*"finish_reason": ?"\w)')
conf = argparse.Namespace(total=3.0)


def oops(message: str, code: str) -> dict[str, dict[str, str]]:
    return {"error": {"message": message, "type": "upstream_error", "code": code}}


async def pipe(upstream: httpx.Response, deadline: float) -> AsyncIterator[bytes]:
    reads, pending, finished = upstream.aiter_raw(), b"", False
    try:
        while True:
            async with asyncio.timeout_at(deadline):
                if (chunk := await anext(reads, None)) is None:
                    break
            start, pending = max(len(pending) - 3, 0), pending + chunk
            cut = max((m.end() for m in EVENT_BREAK.finditer(pending, start)), default=0)
            finished = finished or FINISHED.search(pending, 0, cut) is not None
            if cut:
                yield pending[:cut]
                pending = pending[cut:]
        if finished or FINISHED.search(pending):
            yield pending
            return
        error = oops("upstream ended the stream before finishing", "incomplete")
    except TimeoutError:
        error = oops(f"no complete answer within {conf.total:g} s", "deadline_exceeded")
    except httpx.HTTPError as exc:
        error = oops(f"upstream failed mid-stream: {type(exc).__name__}", "upstream_failed")
    finally:
        await upstream.aclose()
    yield b"data: " + json.dumps(error).encode() + b"\n\n"


async def completions(request: Request) -> Response:
    deadline = asyncio.get_running_loop().time() + conf.total
    raw = await request.body()
    try:
        streaming = json.loads(raw).get("stream") is True
    except (ValueError, RecursionError, AttributeError):
        return JSONResponse(oops("the body must be a JSON object", "bad_request"), 400)
    try:
        async with asyncio.timeout_at(deadline):
            outgoing = client.build_request("POST", "chat/completions", content=raw)
            upstream = await client.send(outgoing, stream=True)
            if upstream.is_success and streaming:
                media_type = upstream.headers.get("content-type", "text/event-stream")
                return StreamingResponse(pipe(upstream, deadline), media_type=media_type)
            body = await upstream.aread()
    except TimeoutError:
        return JSONResponse(oops(f"no answer within {conf.total:g} s", "timeout"), 504)
    except httpx.HTTPError as exc:
        return JSONResponse(oops(f"upstream unreachable: {type(exc).__name__}", "bad_gateway"), 502)
    kept = {k: v for k, v in upstream.headers.items() if k in ("content-type", "retry-after")}
    return Response(body, upstream.status_code, kept)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--fd", type=int)
    parser.add_argument("--total", type=float, default=3.0, help="seconds for a whole exchange")
    parser.parse_args(namespace=conf)
    key = os.environ["STREAMPROOF_UPSTREAM_KEY"]
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    client = httpx.AsyncClient(base_url=conf.upstream, headers=auth, timeout=None, trust_env=False)
    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", fd=conf.fd, log_level="warning", http="h11")
