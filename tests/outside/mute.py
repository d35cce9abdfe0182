"""A half-built streaming proxy: the client side was written first, the upstream side never.

Someone scaffolding a proxy writes the SSE response and a queue for the relay to fill, and
deploys it before the relay exists. Every request of the three APIs it routes (chat
completions, Messages, Responses) gets a 200 `text/event-stream` at once and then nothing,
ever: no upstream contact, no event, no end (failure or not).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncGenerator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

UPSTREAM = ""


async def sse(queue: asyncio.Queue[bytes | None]) -> AsyncGenerator[bytes, None]:
    while True:
        chunk = await queue.get()
        if chunk is None:
            return
        yield chunk


async def relay(request: Request) -> StreamingResponse:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    # TODO: POST the body to UPSTREAM + the request's path after /v1, and put each chunk on
    # the queue (None at the end).
    return StreamingResponse(
        sse(queue),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/responses")
app = Starlette(routes=[Route(path, relay, methods=["POST"]) for path in PATHS])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--fd", type=int)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    UPSTREAM = args.upstream
    uvicorn.run(
        app,
        port=args.port,
        fd=args.fd,
        log_level="warning",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=1,  # open streams never end by themselves
    )
