"""A gateway after a bad deploy: every request gets `500 {"error": {"message": "internal error"}}`.

Gateways end up like this when a dependency upgrade breaks the one code path every request
takes (one answered every streamed request `500 TypeError: immutable` for a whole release).
It fails before it gets anywhere near the upstream, which it never contacts.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

logger = logging.getLogger("gateway")


async def handle(request: Request) -> JSONResponse:
    try:
        request.headers["x-gateway-trace"] = "1"  # type: ignore[index]  # headers are immutable
    except TypeError as exc:
        logger.error("%s %s failed: %r", request.method, request.url.path, exc)
    return JSONResponse({"error": {"message": "internal error"}}, status_code=500)


def build(upstream: str) -> Starlette:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    app = Starlette(routes=[Route("/{path:path}", handle, methods=methods)])
    app.state.upstream = upstream  # where requests would go, if they ever got that far
    return app


def main() -> None:
    cli = argparse.ArgumentParser(prog="gateway")
    cli.add_argument("--upstream", required=True)
    cli.add_argument("--fd", type=int, default=None)
    cli.add_argument("--port", type=int, default=8080)
    opts = cli.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        build(opts.upstream),
        host="127.0.0.1",
        port=opts.port,
        fd=opts.fd,
        log_level="warning",
        loop="asyncio",
        http="h11",
    )


if __name__ == "__main__":
    main()
