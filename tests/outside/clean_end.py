"""The seed dashboard's passthrough route, lifted into a proxy of its own.

Written the way many first proxies are: check the upstream's status, then yield whatever it
sends. An upstream failure before the headers is a 502 JSON error; after them the exception
is caught and the generator just returns, so the chunked body ends cleanly with neither an
error event nor `[DONE]`, and half an answer looks like a whole one.
"""

import argparse
import os
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

UPSTREAM_URL = "http://localhost:8001/v1"
TIMEOUT = httpx.Timeout(60.0, connect=0.25, read=0.3)


async def chat_completions(request: Request) -> Response:
    body = await request.body()
    try:
        data = await request.json()
    except ValueError:
        return JSONResponse({"error": {"message": "Invalid JSON"}}, status_code=400)

    api_key = os.environ.get("STREAMPROOF_UPSTREAM_KEY", "")
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    client = httpx.AsyncClient(timeout=TIMEOUT, trust_env=False)
    req = client.build_request(
        "POST", f"{UPSTREAM_URL}/chat/completions", content=body, headers=headers
    )
    try:
        response = await client.send(req, stream=True)
    except httpx.HTTPError as e:
        await client.aclose()
        print(f"Upstream request failed: {e!r}")
        error = {"message": f"Upstream request failed: {e}", "type": "upstream_error"}
        return JSONResponse({"error": error}, status_code=502)

    if response.status_code != 200 or not (isinstance(data, dict) and data.get("stream")):
        content = await response.aread()
        await client.aclose()
        return Response(content, status_code=response.status_code, media_type="application/json")

    async def stream_chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.TimeoutException) as e:
            print(f"Stream interrupted: {e!r}")
            return
        finally:
            await response.aclose()
            await client.aclose()

    return StreamingResponse(stream_chunks(), media_type="text/event-stream")


app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", default=UPSTREAM_URL)
    parser.add_argument("--fd", type=int, default=None)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    UPSTREAM_URL = args.upstream.rstrip("/")
    uvicorn.run(app, port=args.port, fd=args.fd, log_level="warning", loop="asyncio", http="h11")
