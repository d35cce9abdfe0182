"""The proxy's own key: `server.api_key_env` names the variable that holds it.

With a key, every HTTP request but those to `OPEN_PATHS` must carry it, as OpenAI clients
send theirs (`Authorization: Bearer KEY`) or as Anthropic-style clients do (`x-api-key`);
anything else gets a 401 with the error body of the API asked (Anthropic's on
`/v1/messages`, OpenAI's elsewhere). The comparison takes as long for any wrong
key of a given length (`hmac.compare_digest`). The WebSocket feed checks the key itself,
because a browser cannot send a header in its handshake (see proxy.feed).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from streamproof.proxy.apis import APIS, BY_PATH
from streamproof.proxy.config import ServerConfig
from streamproof.proxy.errors import ConfigError
from streamproof.proxy.validation import CHAT, MESSAGES

# What a person opening the dashboard or a load balancer probing health can reach without
# the key: the page and its script hold no data; the data comes over /ws, which wants it.
OPEN_PATHS = frozenset({"/", "/dashboard.js", "/health"})


def proxy_key(server: ServerConfig, environ: Mapping[str, str] | None = None) -> str:
    """The proxy's key, "" when it has none; a ConfigError when its variable is unset."""
    if not server.api_key_env:
        return ""
    key = (os.environ if environ is None else environ).get(server.api_key_env, "").strip()
    if not key:
        raise ConfigError(
            "server.api_key_env",
            f"the environment variable {server.api_key_env} holds no key "
            "(set it, or remove server.api_key_env to run without a proxy key)",
        )
    return key


def presented_key(headers: Headers) -> str | None:
    """The key a request carries, if any."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, key = authorization.partition(" ")
        return key.strip() if scheme.lower() == "bearer" else None
    return headers.get("x-api-key")


def key_matches(presented: str | None, key: str) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), key.encode())


class RequireKey:
    """ASGI middleware: HTTP requests outside OPEN_PATHS must carry the proxy's key."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self._app = app
        self._key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] not in OPEN_PATHS
            and not key_matches(presented_key(Headers(scope=scope)), self._key)
        ):
            api = BY_PATH.get(scope["path"], APIS[CHAT])
            message = "missing or invalid proxy key: send Authorization: Bearer KEY"
            if api.name == MESSAGES:
                message = "missing or invalid proxy key: send x-api-key: KEY"
            body = api.error_body(401, message, "invalid_request_error", "invalid_api_key")
            response = Response(
                body,
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
                media_type="application/json",
            )
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)
