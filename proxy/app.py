"""The Starlette application: routes, JSON errors, and the providers' lifespan.

`create_app(config)` builds everything from the config and the environment without doing
any IO; the HTTP clients are opened on startup and closed on shutdown. Every error the app
itself produces is an OpenAI-style JSON body, including 404 for unknown paths and 405 for
other methods, so a client never has to parse an HTML or plain-text error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from proxy import tokens
from proxy.config import Config
from proxy.dispatch import Dispatcher
from proxy.errors import RequestRejected
from proxy.providers import ProviderPool
from proxy.responses import ChatResponse
from proxy.validation import read_chat_call

logger = logging.getLogger("proxy")


def create_app(
    config: Config,
    environ: Mapping[str, str] | None = None,
    *,
    rng: random.Random | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The proxy app.

    `environ` holds the API keys (default: os.environ), `rng` draws the backoff jitter, and
    `transport` replaces the providers' network transport (for tests).
    """
    pool = ProviderPool(config, os.environ if environ is None else environ, transport)
    dispatcher = Dispatcher(config, pool, rng or random.Random())

    async def models(request: Request) -> Response:
        names = {
            model: provider.name
            for provider in config.providers.values()
            for model in provider.models
        }
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": owner}
            for model, owner in sorted(names.items())
        ]
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.open()
        # The token encoding takes a moment to load: once, on a thread, not at import and
        # not on the event loop in the middle of someone's stream.
        await asyncio.to_thread(tokens.encoding)
        try:
            yield
        finally:
            await pool.aclose()

    return Starlette(
        routes=[
            Route("/v1/chat/completions", ChatCompletions(config, dispatcher), methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={
            RequestRejected: _rejected,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )


class ChatCompletions:
    """POST /v1/chat/completions, as a plain ASGI app because its response is one too.

    A `RequestRejected` raised here reaches the app's exception handler like any other.
    """

    def __init__(self, config: Config, dispatcher: Dispatcher) -> None:
        self._config = config
        self._dispatcher = dispatcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = asyncio.get_running_loop().time()
        call = await read_chat_call(Request(scope, receive))
        route = self._config.route_for(call.model)
        if route is None:
            message = f"no route for model {call.model!r} in the proxy's config"
            raise RequestRejected(404, "model_not_found", message)
        response = ChatResponse(self._dispatcher, self._config.timeouts, call, route, started)
        await response(scope, receive, send)


def error_response(status: int, code: str, message: str, type_: str) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "code": code}}
    return JSONResponse(body, status_code=status)


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRejected)
    logger.info("%s %s: %d %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(exc.status, exc.code, exc.message, "invalid_request_error")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    logger.info("%s: %d", message, exc.status_code)
    response = error_response(exc.status_code, code, message, "invalid_request_error")
    if exc.headers:  # 405 carries Allow
        response.headers.update(exc.headers)
    return response
