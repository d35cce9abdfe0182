"""The configured providers at run time: their API keys, their HTTP clients, their requests.

Keys come from the environment variable each provider names. A variable that is unset or
empty is a startup error (a `ConfigError` naming the provider and the variable, never a
value): a provider in the config is one the proxy can call. The literal `${VAR}` or an
empty `Bearer ` is never sent.

Each provider gets one long-lived httpx transport so connections are reused (up to
`LIMITS`); the pool opens them in the app's lifespan and closes them on shutdown. It is the
proxy's own (`proxy.transport`), unless the environment names an HTTP proxy for the
provider, which httpx's transport handles. Requests go straight to it, with no
`httpx.AsyncClient`: no cookie jar (an upstream's cookies are never sent back on another
client's request), no redirects, no default headers but a User-Agent. Only the connect
timeout is left to the transport: first-byte, idle and total are the proxy's own timers
(see `upstream.py`).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping

import httpx

from streamproof.proxy.apis import APIS
from streamproof.proxy.config import Config, ProviderConfig
from streamproof.proxy.errors import ConfigError
from streamproof.proxy.transport import Transport
from streamproof.proxy.validation import CHAT, ChatCall

# Up to 100 connections per provider, as httpx's default, and every one of them may be kept
# for the next request (httpx keeps 20): a stream that ended cleanly and was read to its
# end gives its connection back (see `responses._drain`); any other is closed.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=5.0)
USER_AGENT = f"python-httpx/{httpx.__version__}"  # what the upstream saw when httpx sent it


class Provider:
    """One provider: its config, its key (None when missing) and, once opened, its transport."""

    def __init__(self, config: ProviderConfig, key: str | None) -> None:
        self.config = config
        self.key = key
        self._transport: httpx.AsyncBaseTransport | None = None
        self._timeout: dict[str, float | None] = {}
        # The request headers by API, streamed (True) or not, made once (httpx.Request copies
        # them); none without a key, as no request is built then.
        self._headers: dict[tuple[str, bool], httpx.Headers] = {}
        self._urls: dict[str, httpx.URL] = {}
        # Loop time until which the provider is not asked (it answered 429 with Retry-After).
        self.cooling_until = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    def _url(self, api: str) -> httpx.URL:
        """An API's URL at this provider, parsed once (when its first request is built)."""
        url = self._urls.get(api)
        if url is None:
            url = self._urls[api] = httpx.URL(f"{self.config.base_url}{APIS[api].upstream_path}")
        return url

    def _headers_for(self, call: ChatCall, key: str) -> httpx.Headers:
        if call.headers:  # the client's own (Anthropic's version): not worth keeping
            return self._made_headers(call, key)
        made = self._headers.get((call.api, call.stream))
        if made is None:
            made = self._headers[call.api, call.stream] = self._made_headers(call, key)
        return made

    @staticmethod
    def _made_headers(call: ChatCall, key: str) -> httpx.Headers:
        return httpx.Headers(
            {
                **APIS[call.api].upstream_headers(key, call),
                "content-type": "application/json",
                "accept": "text/event-stream" if call.stream else "application/json",
                # Compressed bodies would hide chunk boundaries and delay the relay.
                "accept-encoding": "identity",
                "user-agent": USER_AGENT,
            }
        )

    def speaks(self, api: str) -> bool:
        return self.config.speaks(api)

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

    def open(
        self, connect_timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        # read/write/pool are None on purpose: the proxy's own deadlines bound every wait.
        self._timeout = {"connect": connect_timeout, "read": None, "write": None, "pool": None}
        if transport is None:
            proxy = _proxy_for(self.config.base_url)
            if proxy is None:
                transport = Transport(LIMITS)
            else:  # only httpx's own transport speaks to an HTTP proxy
                transport = httpx.AsyncHTTPTransport(proxy=proxy, limits=LIMITS)
        self._transport = transport

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send a request built by `build_request`; the response's body is left to read.

        Straight to the transport: no `httpx.AsyncClient` in between, as the proxy wants
        none of its cookies, redirects, auth or hooks.
        """
        if self._transport is None:
            raise RuntimeError(f"{self.name}: HTTP transport used outside the app's lifespan")
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response

    def build_request(self, call: ChatCall) -> httpx.Request:
        """The upstream request for the call's API: the client's body, with the model name
        mapped and, for a chat request to a provider that rejects it (`stream_options =
        false`), `stream_options` removed.

        The body's bytes are forwarded unchanged when neither applies.
        """
        if self.key is None:
            raise RuntimeError(self.missing_key)
        body, payload = call.body, call.payload
        model = payload["model"]
        changed = dict(payload)
        upstream_model = self.config.upstream_model(model)
        if upstream_model != model:
            changed["model"] = upstream_model
        if not self.config.stream_options and call.api == CHAT:
            changed.pop("stream_options", None)
        if changed != payload:
            body = json.dumps(changed, ensure_ascii=False).encode()
        return httpx.Request(
            "POST",
            self._url(call.api),
            content=body,
            headers=self._headers_for(call, self.key),
            extensions={"timeout": self._timeout},
        )


def _proxy_for(url: str) -> str | None:
    """The HTTP proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY,
    unless NO_PROXY exempts its host), or None."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


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
            self._providers[name] = Provider(provider_config, key)
        missing = [provider for provider in self._providers.values() if not provider.usable]
        if missing:
            first = missing[0]
            others = ", ".join(p.config.api_key_env for p in missing[1:])
            raise ConfigError(
                f"providers.{first.name}.api_key_env",
                f"the environment variable {first.config.api_key_env} holds no key"
                + (f" (nor do {others})" if others else "")
                + ": set it, or remove the provider from the config",
            )

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
