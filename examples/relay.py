"""A naive streaming pass-through, as most people write one first: every request to
/v1/chat/completions goes to the upstream unchanged, and its answer comes back as it came.
The README's "Test your proxy in five minutes" runs streamproof against it.
"""

import argparse
import os

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


async def chat_completions(request: Request) -> StreamingResponse:
    upstream = client.build_request("POST", "/chat/completions", content=await request.body())
    response = await client.send(upstream, stream=True)
    return StreamingResponse(
        response.aiter_raw(),
        status_code=response.status_code,
        media_type=response.headers.get("content-type"),
        background=BackgroundTask(response.aclose),
    )


parser = argparse.ArgumentParser(description="A naive streaming pass-through.")
parser.add_argument("--upstream", required=True, help="the provider's base URL, ending in /v1")
parser.add_argument("--port", type=int, default=8000, help="listen on 127.0.0.1:PORT")
parser.add_argument("--fd", type=int, help="or on this inherited listening socket")
args = parser.parse_args()
# The key for the upstream: streamproof gives it in this variable (and as {api_key}).
key = os.environ["STREAMPROOF_UPSTREAM_KEY"]
client = httpx.AsyncClient(
    base_url=args.upstream,
    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
)
app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=args.port, fd=args.fd, log_level="warning")
