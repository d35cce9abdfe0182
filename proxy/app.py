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
from importlib import resources

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from streamproof.proxy import simple, tokens
from streamproof.proxy.apis import APIS, BY_PATH
from streamproof.proxy.auth import RequireKey, proxy_key
from streamproof.proxy.config import Config
from streamproof.proxy.dispatch import Dispatcher
from streamproof.proxy.errors import RequestRejected
from streamproof.proxy.feed import Feed
from streamproof.proxy.health import Alert, Health
from streamproof.proxy.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from streamproof.proxy.metrics import exposition, registry_for
from streamproof.proxy.providers import ProviderPool
from streamproof.proxy.responses import ChatResponse
from streamproof.proxy.validation import (
    CHAT,
    MESSAGES,
    RESPONSES,
    parse_chat_call,
    parse_messages_call,
    parse_responses_call,
    read_body,
)

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
    `transport` replaces the providers' network transport (for tests). A ConfigError if
    the proxy's own key variable is configured but unset.
    """
    environ = os.environ if environ is None else environ
    key = proxy_key(config.server, environ)
    pool = ProviderPool(config, environ, transport)
    dispatcher = Dispatcher(config, pool, rng or random.Random())
    health = Health(config.health)
    registry = registry_for(health)
    health.alert_listeners.append(_log_alert)
    feed = Feed(health, config.feed, key)

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

    async def health_report(request: Request) -> Response:
        report = health.report()
        report["providers"] = {
            provider.name: {
                "usable": provider.usable,
                "cooling_down": provider.cooling_until > asyncio.get_running_loop().time(),
            }
            for provider in pool
        }
        return JSONResponse(report)

    async def metrics(request: Request) -> Response:
        return Response(exposition(registry), media_type=METRICS_CONTENT_TYPE)

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
            Route(
                "/v1/chat/completions",
                ChatEndpoint(config, dispatcher, health, "/v1/chat/completions"),
                methods=["POST"],
            ),
            Route(
                "/api/chat",
                ChatEndpoint(config, dispatcher, health, "/api/chat"),
                methods=["POST"],
            ),
            *(
                Route(path, ChatEndpoint(config, dispatcher, health, path), methods=["POST"])
                for path in (APIS[MESSAGES].path, APIS[RESPONSES].path)
            ),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health_report, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/", dashboard, methods=["GET"]),
            Route("/dashboard.js", dashboard_script, methods=["GET"]),
            WebSocketRoute("/ws", feed),
        ],
        middleware=[Middleware(RequireKey, key=key)] if key else [],
        exception_handlers={
            RequestRejected: _rejected,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )


class ChatEndpoint:
    """POST /v1/chat/completions (OpenAI), /api/chat (the seed's simple dialect),
    /v1/messages (Anthropic) or /v1/responses (OpenAI), as a plain ASGI app because its
    response is one too.

    A `RequestRejected` raised here reaches the app's exception handler like any other.
    """

    def __init__(self, config: Config, dispatcher: Dispatcher, health: Health, path: str) -> None:
        self._config = config
        self._dispatcher = dispatcher
        self._health = health
        self._path = path
        self._simple = path == "/api/chat"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = asyncio.get_running_loop().time()
        request = Request(scope, receive)
        body = await read_body(request)
        if self._simple:
            call = simple.parse_simple_call(body, self._config.server.default_model)
        elif self._path == APIS[MESSAGES].path:
            call = parse_messages_call(body, request.headers)
        elif self._path == APIS[RESPONSES].path:
            call = parse_responses_call(body)
        else:
            call = parse_chat_call(body)
        route = self._config.route_for(call.model)
        if route is None:
            message = f"no route for model {call.model!r} in the proxy's config"
            raise RequestRejected(404, "model_not_found", message)
        if not any(self._config.providers[name].speaks(call.api) for name in route.providers):
            api = APIS[call.api]
            message = f"no provider for model {call.model!r} speaks {api.title} ({api.path})"
            raise RequestRejected(404, "model_not_found", message)
        response = ChatResponse(
            self._dispatcher,
            self._config.timeouts,
            call,
            route,
            started,
            self._health,
            endpoint=self._path,
            heartbeat=self._config.server.heartbeat,
        )
        if self._simple:
            response.encode, response.reshape = simple.encode_simple, simple.simple_answer
        await response(scope, receive, send)


# The dashboard: a page and its script, no other asset and nothing from the network.
_STATIC = resources.files("streamproof.proxy") / "static"
DASHBOARD = (_STATIC / "index.html").read_bytes()
DASHBOARD_SCRIPT = (_STATIC / "dashboard.js").read_bytes()
STATIC_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


async def dashboard(request: Request) -> Response:
    return Response(DASHBOARD, media_type="text/html; charset=utf-8", headers=STATIC_HEADERS)


async def dashboard_script(request: Request) -> Response:
    return Response(
        DASHBOARD_SCRIPT, media_type="text/javascript; charset=utf-8", headers=STATIC_HEADERS
    )


def _log_alert(change: str, alert: Alert) -> None:
    if change == "raised":
        logger.warning("alert raised: %s: %s", alert.name, alert.message)
    else:
        logger.info("alert cleared: %s", alert.name)


def error_response(status: int, code: str, message: str, type_: str, path: str = "") -> Response:
    """A JSON error in the shape of the API at `path` (OpenAI's unless it is Anthropic's)."""
    api = BY_PATH.get(path, APIS[CHAT])
    body = api.error_body(status, message, type_, code)
    return Response(body, status_code=status, media_type="application/json")


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRejected)
    path = request.url.path
    logger.info("%s %s: %d %s", request.method, path, exc.status, exc.message)
    return error_response(exc.status, exc.code, exc.message, "invalid_request_error", path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    logger.info("%s: %d", message, exc.status_code)
    path = request.url.path
    response = error_response(exc.status_code, code, message, "invalid_request_error", path)
    if exc.headers:  # 405 carries Allow
        response.headers.update(exc.headers)
    return response
