"""A relay by a platform team that gives clients one error shape, whatever the provider said.

Every upstream non-2xx becomes a 502 "upstream request failed" (its status, its body and its
`Retry-After` dropped), and an error the upstream sends mid-stream is replaced by the same
generic error event. Otherwise it relays like a careful relay would, without retries."""

from __future__ import annotations

import argparse
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

GENERIC = {"message": "upstream request failed", "type": "proxy_error", "code": "upstream_failed"}
GENERIC_EVENT = b"data: " + json.dumps({"error": GENERIC}).encode() + b"\n\n"
EVENT_END = re.compile(rb"(\r\n|\n|\r)\1")
AT = rb"(?<![^\r\n])"  # at the start of a line
ERROR = re.compile(AT + rb'(event: ?error|data: ?(\{"error"|.*"(object|finish_reason)": ?"error"))')
FINISHED = re.compile(AT + rb'data: ?(\[DONE]|.*"finish_reason": ?"\w)')


async def normalised(response: httpx.Response) -> AsyncIterator[bytes]:
    rest, finished = b"", False
    try:
        async for chunk in response.aiter_raw():
            start, rest = max(len(rest) - 3, 0), rest + chunk
            cut = max((m.end() for m in EVENT_END.finditer(rest, start)), default=0)
            ready, rest = rest[:cut], rest[cut:]
            if error := ERROR.search(ready):  # the events before it, then ours instead
                yield ready[: error.start()] + GENERIC_EVENT
                return
            finished = finished or FINISHED.search(ready) is not None
            yield ready
        if finished or FINISHED.search(rest):
            yield rest
            return
    except httpx.HTTPError:
        pass  # reported below like every other failure
    finally:
        await response.aclose()
    yield GENERIC_EVENT


def build(client: httpx.AsyncClient) -> Starlette:
    async def chat(request: Request) -> Response:
        body = await request.body()
        try:
            stream = json.loads(body).get("stream") is True
        except (ValueError, RecursionError, AttributeError):
            return JSONResponse({"error": {**GENERIC, "message": "invalid JSON"}}, 400)
        try:
            outgoing = client.build_request("POST", "chat/completions", content=body)
            response = await client.send(outgoing, stream=True)
            if not response.is_success:
                await response.aclose()
                return JSONResponse({"error": GENERIC}, 502)
            kind = response.headers.get("content-type", "application/json")
            if stream:
                return StreamingResponse(normalised(response), media_type=kind)
            answer = await response.aread()
        except httpx.TimeoutException:
            return JSONResponse({"error": {**GENERIC, "code": "upstream_timeout"}}, 504)
        except httpx.HTTPError:
            return JSONResponse({"error": GENERIC}, 502)
        return Response(answer, response.status_code, media_type=kind)

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--fd", type=int)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--connect", type=float, default=0.25)
    parser.add_argument("--idle", type=float, default=0.3)
    args = parser.parse_args()
    key = os.environ["STREAMPROOF_UPSTREAM_KEY"]
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    wait = httpx.Timeout(args.idle, connect=args.connect)
    client = httpx.AsyncClient(base_url=args.upstream, headers=auth, timeout=wait, trust_env=False)
    uvicorn.run(build(client), port=args.port, fd=args.fd, log_level="warning", http="h11")
