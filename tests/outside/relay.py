"""A plain relay for the OpenAI chat completions, Anthropic Messages and OpenAI Responses
APIs, by a careful newcomer, with no retries.

Upstream errors pass as they came (status, JSON body, `Retry-After`), an unreachable upstream
is a 502 and a silent one a 504, each in the API's own error shape; mid-stream, a reset, a
stall or an answer that stops before it finished (no `[DONE]` or finish_reason, no
`message_stop`, no `response.completed`) ends with one error event in the API's shape, and
nothing after it. A client that hangs up while it waits for the upstream cancels the
upstream request."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")  # a blank line, whatever the EOLs
SEQUENCE = re.compile(rb'"sequence_number": ?(\d+)')


@dataclass(frozen=True)
class Api:
    path: str  # upstream, under the base URL
    last: re.Pattern[bytes]  # an event after which the answer is over: finished, or failed


CHAT = Api(
    "/chat/completions",
    re.compile(rb'(?<![^\r\n])data: ?(\[DONE]|\{"error"|[^\r\n]*"finish_reason": ?"\w)'),
)
MESSAGES = Api("/messages", re.compile(rb"(?<![^\r\n])event: ?(message_stop|error)[\r\n]"))
RESPONSES = Api(
    "/responses",
    re.compile(rb"(?<![^\r\n])event: ?(response\.(completed|incomplete|failed)|error)[\r\n]"),
)
ANTHROPIC_TYPES = {400: "invalid_request_error", 504: "timeout_error"}  # else api_error


def error(api: Api, message: str, code: str, status: int) -> dict[str, Any]:
    """An error body in the API's shape: Anthropic's for Messages, OpenAI's otherwise."""
    if api is MESSAGES:
        kind = ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"{message} ({code})"}}
    kind = "invalid_request" if status == 400 else "upstream_error"
    return {"error": {"message": message, "type": kind, "code": code}}


def error_event(api: Api, message: str, code: str, sequence: int) -> bytes:
    """One in-band error event in the API's shape (`sequence`: the Responses event number)."""
    if api is CHAT:
        return b"data: " + json.dumps(error(api, message, code, 502)).encode() + b"\n\n"
    document = error(api, message, code, 502)
    if api is RESPONSES:
        document = {"type": "error", "code": code, "message": message, "param": None}
        document["sequence_number"] = sequence
    return b"event: error\ndata: " + json.dumps(document).encode() + b"\n\n"


async def relay(api: Api, response: httpx.Response) -> AsyncIterator[bytes]:
    held, ended = b"", False  # held: an event not finished yet; ended: the answer is over
    sequence = -1  # the last sequence number relayed (Responses)
    try:
        async for chunk in response.aiter_raw():
            start, held = max(len(held) - 3, 0), held + chunk
            cut = max((end.end() for end in EVENT_END.finditer(held, start)), default=0)
            if cut:  # whole events only, so an error event never lands inside a half one
                ended = ended or api.last.search(held, 0, cut) is not None
                numbers = SEQUENCE.findall(held, 0, cut)
                sequence = int(numbers[-1]) if numbers else sequence
                yield held[:cut]
                held = held[cut:]
        if ended or api.last.search(held):
            yield held
            return
        problem = ("upstream stream ended before it finished", "incomplete_stream")
    except httpx.TimeoutException:
        problem = ("upstream stopped sending", "upstream_timeout")
    except httpx.HTTPError as exc:
        problem = (f"upstream connection failed ({type(exc).__name__})", "upstream_failed")
    finally:
        await response.aclose()
    yield error_event(api, *problem, sequence + 1)


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


def endpoint(api: Api) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def handle(request: Request) -> Response:
        body = await request.body()
        try:
            streaming = json.loads(body).get("stream") is True
        except (ValueError, RecursionError, AttributeError):
            return JSONResponse(error(api, "not a JSON object", "invalid_json", 400), 400)
        try:
            outgoing = client.build_request(
                "POST", api.path, content=body, headers=_passed(request)
            )
            response = await unless_gone(request, client.send(outgoing, stream=True))
            if response is None:
                return Response(status_code=499)  # the client left before the upstream answered
            content_type = response.headers.get("content-type", "application/json")
            if response.is_success and streaming:
                closing = BackgroundTask(response.aclose)  # also runs when the client has left
                headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
                return StreamingResponse(relay(api, response), 200, headers, content_type, closing)
            content = await response.aread()  # closes the response, also when it fails
        except httpx.TimeoutException:
            return JSONResponse(error(api, "upstream did not answer in time", "timeout", 504), 504)
        except httpx.HTTPError as exc:
            failed = f"upstream failed ({type(exc).__name__})"
            return JSONResponse(error(api, failed, "bad_gateway", 502), 502)
        keep = {k: v for k, v in response.headers.items() if k == "retry-after"}
        return Response(content, response.status_code, keep, media_type=content_type)

    return handle


def _passed(request: Request) -> dict[str, str]:
    """The client's headers the upstream needs to read the request (never its key)."""
    return {k: v for k, v in request.headers.items() if k.startswith("anthropic-")}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A plain streaming relay, no retries.")
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://host/v1")
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument("--port", type=int, default=8000, help="or on 127.0.0.1:PORT")
    parser.add_argument("--connect", type=float, default=0.25, help="connect timeout (s)")
    parser.add_argument("--idle", type=float, default=0.3, help="longest upstream silence (s)")
    args = parser.parse_args()
    key = os.environ["STREAMPROOF_UPSTREAM_KEY"]
    auth = {
        "Authorization": f"Bearer {key}",
        "x-api-key": key,  # the Messages API's header
        "Content-Type": "application/json",
    }
    wait = httpx.Timeout(args.idle, connect=args.connect)
    client = httpx.AsyncClient(base_url=args.upstream, headers=auth, timeout=wait, trust_env=False)
    routes = [
        Route(f"/v1{api.path}", endpoint(api), methods=["POST"])
        for api in (CHAT, MESSAGES, RESPONSES)
    ]
    uvicorn.run(
        Starlette(routes=routes),
        port=args.port,
        fd=args.fd,
        log_level="warning",
        loop="asyncio",
        http="h11",
    )
