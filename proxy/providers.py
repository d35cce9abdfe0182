"""The configured providers at run time: their API keys, their HTTP clients, their requests.

Keys come from the environment variable each provider names. A variable that is unset or
empty makes that provider unusable: this is logged once at startup (naming the variable,
never a value) and requests routed to it are refused with that reason. The literal
`${VAR}` or an empty `Bearer ` is never sent.

Each provider gets one long-lived `httpx.AsyncClient` so connections are reused (up to
`LIMITS`); the pool opens them in the app's lifespan and closes them on shutdown. Its
transport is the proxy's own (`proxy.transport`), unless the environment names an HTTP
proxy for the provider, which httpx's transport handles. Only the connect timeout is left
to the client: first-byte, idle and total are the proxy's own timers (see `upstream.py`).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from proxy.config import Config, ProviderConfig
from proxy.transport import Transport

logger = logging.getLogger("proxy")

# Up to 100 connections per provider, as httpx's default, and every one of them may be kept
# for the next request (httpx keeps 20): a stream that ended cleanly and was read to its
# end gives its connection back (see `responses._drain`); any other is closed.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=5.0)


class Provider:
    """One provider: its config, its key (None when missing) and, once opened, its client."""

    def __init__(self, config: ProviderConfig, key: str | None) -> None:
        self.config = config
        self.key = key
        self._client: httpx.AsyncClient | None = None
        # Loop time until which the provider is not asked (it answered 429 with Retry-After).
        self.cooling_until = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def usable(self) -> bool:
        return self.key is not None

    def cool_down(self, until: float) -> None:
        """Skip the provider until `until` (loop time); 0 ends a cooldown."""
        self.cooling_until = until

    @property
    def missing_key(self) -> str:
        """Why the provider is unusable, in words that name the variable but no value."""
        return (
            f"{self.name}: the API key variable {self.config.api_key_env} is not set or empty; "
            "the provider is unusable"
        )

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError(f"{self.name}: HTTP client used outside the app's lifespan")
        return self._client

    def open(
        self, connect_timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        # read/write/pool are None on purpose: the proxy's own deadlines bound every wait.
        timeout = httpx.Timeout(connect=connect_timeout, read=None, write=None, pool=None)
        if transport is None and not _proxied(self.config.base_url):
            transport = Transport(LIMITS)
        # With no transport given, httpx makes its own, which honours HTTP(S)_PROXY.
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, transport=transport, limits=LIMITS
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def build_request(self, body: bytes, payload: Mapping[str, Any], stream: bool) -> httpx.Request:
        """The upstream request: the client's body, with the model name mapped and, for a
        provider that rejects it (`stream_options = false`), `stream_options` removed.

        The body's bytes are forwarded unchanged when neither applies.
        """
        if self.key is None:
            raise RuntimeError(self.missing_key)
        model = payload["model"]
        changed = dict(payload)
        upstream_model = self.config.upstream_model(model)
        if upstream_model != model:
            changed["model"] = upstream_model
        if not self.config.stream_options:
            changed.pop("stream_options", None)
        if changed != payload:
            body = json.dumps(changed, ensure_ascii=False).encode()
        headers = {
            "authorization": f"Bearer {self.key}",
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            # Compressed bodies would hide chunk boundaries and delay the relay.
            "accept-encoding": "identity",
        }
        url = f"{self.config.base_url}/chat/completions"
        return self.client.build_request("POST", url, content=body, headers=headers)


def _proxied(url: str) -> bool:
    """Whether the environment names an HTTP proxy for `url` (HTTP_PROXY, HTTPS_PROXY,
    ALL_PROXY, less NO_PROXY), which only httpx's own transport knows how to use."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


class ProviderPool:
    """All providers, keyed by name, with their keys resolved from `environ`."""

    def __init__(
        self,
        config: Config,
        environ: Mapping[str, str],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._transport = transport  # tests only: httpx.MockTransport instead of sockets
        self._providers: dict[str, Provider] = {}
        for name, provider_config in config.providers.items():
            # Stripped: a key read with `$(cat file)` often carries a trailing newline.
            key = environ.get(provider_config.api_key_env, "").strip() or None
            provider = Provider(provider_config, key)
            if not provider.usable:
                logger.error("%s", provider.missing_key)
            self._providers[name] = provider

    def __getitem__(self, name: str) -> Provider:
        return self._providers[name]

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._providers.values())

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every key in use, so that messages built from upstream text can be redacted."""
        return tuple(provider.key for provider in self if provider.key)

    def open(self) -> None:
        for provider in self:
            if provider.usable:
                provider.open(self._config.timeouts.connect, self._transport)

    async def aclose(self) -> None:
        for provider in self:
            await provider.aclose()
