"""A deliberately broken streaming proxy, one bug per flag, for proving the harness fails.

    python tests/broken_proxy.py --upstream URL --fd N --bug {replay,done-after-error,buffer}

Apart from its one bug it behaves like a plain pass-through: it checks the upstream status
before answering (so it can retry a reset or a 5xx before the first byte), relays the
upstream's bytes unchanged, and reports a mid-stream failure with one error event. Each
bug is one that real proxies have shipped (see ../shared/FAILURES.md):

    replay            after a mid-stream failure, ask again and stream the new answer from
                      its first token (the seed guide's StreamingRetryClient)
    done-after-error  end a broken stream with an error event *and* `data: [DONE]`
    buffer            read the whole upstream answer before sending any of it
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

BUGS = ("replay", "done-after-error", "buffer")
FAILURES = (httpx.TransportError, httpx.TimeoutException)
ERROR_EVENT = b'data: {"error": {"message": "upstream failed", "type": "upstream_error"}}\n\n'


class UpstreamStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def build(upstream: str, bug: str) -> Starlette:
    key = os.environ.get("STREAMPROOF_UPSTREAM_KEY", "")
    client = httpx.AsyncClient(
        base_url=upstream,
        headers={"authorization": f"Bearer {key}"},
        timeout=httpx.Timeout(1.0, read=0.3),
    )

    async def open_stream(body: dict[str, Any]) -> httpx.Response:
        """Retry resets and 5xx before the first byte: this part is right."""
        for attempt in range(3):
            response = await client.send(
                client.build_request("POST", "/chat/completions", json=body), stream=True
            )
            if response.status_code < 500 or attempt == 2:
                return response
            await response.aclose()
        raise AssertionError("unreachable")

    async def relay(body: dict[str, Any], first: httpx.Response) -> AsyncIterator[bytes]:
        response = first
        for attempt in range(3):
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
                return
            except FAILURES:
                await response.aclose()
                if bug != "replay" or attempt == 2:
                    break
            response = await open_stream(body)  # BUG (replay): starts again from token 1
        yield ERROR_EVENT
        if bug == "done-after-error":
            yield b"data: [DONE]\n\n"  # BUG: a broken stream dressed up as a clean one

    async def chat(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "invalid JSON"}}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return JSONResponse({"error": {"message": "messages required"}}, status_code=400)
        try:
            response = await _retrying(open_stream, body)
        except FAILURES:
            return JSONResponse({"error": {"message": "upstream failed"}}, status_code=502)
        if response.status_code != 200:
            content = await response.aread()
            return Response(content, response.status_code, media_type="application/json")
        if not body.get("stream"):
            return Response(await response.aread(), media_type="application/json")
        if bug == "buffer":  # BUG: the client waits for the whole answer
            chunks = [chunk async for chunk in relay(body, response)]
            return Response(b"".join(chunks), media_type="text/event-stream")
        return StreamingResponse(
            relay(body, response),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", health),
        ]
    )


async def _retrying(open_stream: Any, body: dict[str, Any]) -> httpx.Response:
    for attempt in range(3):
        try:
            return await open_stream(body)  # type: ignore[no-any-return]
        except FAILURES:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--bug", choices=BUGS, required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.upstream, args.bug), fd=args.fd, log_level="warning")


if __name__ == "__main__":
    main()
