"""A small forwarding proxy in the style of one on PyPI: pass everything through, log errors.

When the upstream fails (refused, reset, timed out; before or after its headers) it logs the
error and parks the request until its upstream is marked healthy again, which nothing ever
does: the client's response stays open, silent, forever. It never retries.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

log = logging.getLogger("forwarder")
HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}


class Forwarder:
    def __init__(self, upstream: str, api_key: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=upstream,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(30.0, connect=0.25, read=0.3),
            trust_env=False,
        )
        self.healthy = asyncio.Event()  # set by the health checker (planned for 0.3)
        self.healthy.set()

    async def _unavailable(self, exc: httpx.HTTPError) -> None:
        log.error("upstream failed: %s: %s", type(exc).__name__, exc)
        self.healthy.clear()
        await self.healthy.wait()  # hold the client until the upstream is back

    async def _relay(self, upstream: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            await self._unavailable(exc)
        finally:
            await upstream.aclose()

    async def forward(self, request: Request) -> Response:
        outgoing = self.client.build_request(
            request.method,
            request.url.path.removeprefix("/v1"),
            content=await request.body(),
            headers={"Content-Type": request.headers.get("content-type", "application/json")},
        )
        try:
            upstream = await self.client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            await self._unavailable(exc)
            return Response(status_code=503)
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(self._relay(upstream), upstream.status_code, headers)


def main() -> None:
    parser = argparse.ArgumentParser(description="Forward /v1 requests to an upstream.")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--fd", type=int)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    forwarder = Forwarder(args.upstream, os.environ.get("STREAMPROOF_UPSTREAM_KEY", ""))
    app = Starlette(routes=[Route("/v1/chat/completions", forwarder.forward, methods=["POST"])])
    uvicorn.run(
        app,
        port=args.port,
        fd=args.fd,
        log_level="warning",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
