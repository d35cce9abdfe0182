"""Retry and fallback before the commit point.

For each provider in the route's chain, up to `retry.max_attempts` attempts, all inside one
overall deadline (`retry.deadline`, capped by `timeouts.total`) that starts when the request
arrives, so per-attempt timeouts never multiply by the retry count:

- a retryable failure (connect error or timeout, reset before the first byte, first-byte or
  idle timeout, 5xx, a malformed or empty opening) waits a backoff with full jitter and
  tries the same provider again; a 429 waits its Retry-After instead when that is given and
  at most `retry.retry_after_cap`, and moves straight to the next provider when it is longer;
- after the last attempt at a provider, the next provider in the chain is tried at once;
- a 4xx other than 429 is the client's problem: its status and JSON body are passed through;
- when nothing is left, the client gets a real status, never a 200: 429 with Retry-After if
  the last failure was a 429, 504 if it was a timeout, 502 otherwise.

A 429 with a Retry-After also puts its provider in a cooldown for that long: later requests
skip it while another provider of their chain is ready, and when every provider of a
chain is cooling down the client gets a fast 503 with a Retry-After, not a wait. An answer
from the provider ends its cooldown.

A wait that would outlast the deadline is not started. The sleeps here are the only ones in
the proxy; they are cancelled like everything else when the client goes away.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass, field

from streamproof.proxy import jsonio
from streamproof.proxy.apis import APIS
from streamproof.proxy.backoff import Backoff
from streamproof.proxy.config import Config, Route
from streamproof.proxy.errors import AttemptFailed, Failure, redact
from streamproof.proxy.providers import Provider, ProviderPool
from streamproof.proxy.upstream import Answer, StreamStart, attempt
from streamproof.proxy.validation import CHAT, ChatCall

logger = logging.getLogger("proxy")


@dataclass(frozen=True, slots=True)
class Refusal:
    """The final answer when no attempt succeeded: a status with a JSON error body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    error_class: str = "HTTPStatusError"  # what the health report calls the last failure
    code: str = ""
    message: str = ""

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        type_: str,
        code: str,
        headers: dict[str, str] | None = None,
        *,
        error_class: str,
        api: str = CHAT,
    ) -> Refusal:
        """A refusal with a JSON error body in the shape of the client's API."""
        body = APIS[api].error_body(status, message, type_, code)
        return cls(status, body, headers or {}, error_class, code, message)


@dataclass(slots=True)
class Trace:
    """What one dispatch did, for the health report: attempts made, by provider."""

    attempts: int = 0


class Dispatcher:
    def __init__(self, config: Config, pool: ProviderPool, rng: random.Random) -> None:
        self._config = config
        self._pool = pool
        self._rng = rng
        self._backoff = Backoff(config.retry.backoff_base, config.retry.backoff_max)

    async def dispatch(
        self, call: ChatCall, route: Route, started: float, trace: Trace | None = None
    ) -> StreamStart | Answer | Refusal:
        """Try the chain until an attempt succeeds; `started` is the arrival, in loop time."""
        trace = trace if trace is not None else Trace()
        chain = [self._pool[name] for name in route.providers]
        chain = [provider for provider in chain if provider.speaks(call.api)]
        assert chain, "the endpoint refuses a call no provider of its route can take"
        loop = asyncio.get_running_loop()
        ready = [provider for provider in chain if provider.cooling_until <= loop.time()]
        if not ready:
            return self._cooling_down(chain, loop.time(), call.api)
        limits = self._config.timeouts.total, self._config.retry.deadline
        deadline = started + min(limits)
        failures: dict[str, str] = {}  # provider -> its last failure, for the final message
        last: AttemptFailed | None = None
        for provider in ready:
            if last is not None and loop.time() >= deadline:
                break
            try:
                answer = await self._provider(provider, call, deadline, failures, trace)
            except AttemptFailed as exc:
                last = exc
                if exc.failure is Failure.RATE_LIMITED and exc.retry_after is not None:
                    provider.cool_down(loop.time() + exc.retry_after)
                if not exc.failure.is_retryable:
                    return self._pass_through(exc, call.api)
            else:
                provider.cool_down(0.0)
                return answer
        assert last is not None  # every ready provider was tried at least once
        return self._exhausted(last, failures, call.api)

    async def _provider(
        self,
        provider: Provider,
        call: ChatCall,
        deadline: float,
        failures: dict[str, str],
        trace: Trace,
    ) -> StreamStart | Answer:
        """Up to max_attempts at one provider; raises the last AttemptFailed."""
        loop = asyncio.get_running_loop()
        max_attempts = self._config.retry.max_attempts
        number = 1
        while True:
            request = provider.build_request(call)
            trace.attempts += 1
            try:
                return await attempt(
                    provider.name,
                    provider.send,
                    request,
                    stream=call.stream,
                    timeouts=self._config.timeouts,
                    deadline=deadline,
                    call=call,
                    secrets=self._pool.secrets,
                )
            except AttemptFailed as exc:
                message = redact(f"{exc} (attempt {number} of {max_attempts})", self._pool.secrets)
                failures[provider.name] = message
                logger.info("attempt failed: %s", message)
                if not exc.failure.is_retryable or number >= max_attempts:
                    raise
                wait = self._wait(exc, number - 1)
                # Not worth starting a wait the deadline would cut; the next provider (if
                # any) is tried at once instead.
                if wait is None or loop.time() + wait >= deadline:
                    raise
            await asyncio.sleep(wait)
            number += 1

    def _wait(self, failure: AttemptFailed, retry: int) -> float | None:
        """Seconds before the next attempt at the same provider; None to move on."""
        if failure.failure is Failure.RATE_LIMITED and failure.retry_after is not None:
            if failure.retry_after > self._config.retry.retry_after_cap:
                return None
            return failure.retry_after
        return self._backoff.delay(retry, self._rng)

    def _pass_through(self, failure: AttemptFailed, api: str) -> Refusal:
        status = failure.status or 502
        text = failure.body.decode(errors="replace")
        try:
            parsed = jsonio.loads(text)
        except ValueError:
            parsed = None
        message = redact(str(failure), self._pool.secrets)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            body = redact(text, self._pool.secrets).encode()
            return Refusal(status, body, {}, failure.error_class, "upstream_client_error", message)
        return Refusal.error(
            status,
            message,
            "upstream_error",
            "upstream_client_error",
            error_class=failure.error_class,
            api=api,
        )

    def _exhausted(self, last: AttemptFailed, failures: dict[str, str], api: str) -> Refusal:
        message = "; ".join(failures.values())
        kind = last.error_class
        if last.failure is Failure.RATE_LIMITED:
            # Tell the client when to come back; a whole second at least (delta-seconds).
            headers = {"retry-after": _delta_seconds(last.retry_after or 0)}
            return Refusal.error(
                429,
                message,
                "upstream_error",
                "upstream_rate_limited",
                headers,
                error_class=kind,
                api=api,
            )
        if last.failure.is_timeout:
            return Refusal.error(
                504, message, "upstream_error", "upstream_timeout", error_class=kind, api=api
            )
        return Refusal.error(
            502, message, "upstream_error", "upstream_failed", error_class=kind, api=api
        )

    def _cooling_down(self, providers: list[Provider], now: float, api: str) -> Refusal:
        wait = min(provider.cooling_until for provider in providers) - now
        names = ", ".join(provider.name for provider in providers)
        message = f"every provider for this model is cooling down after a 429 ({names})"
        headers = {"retry-after": _delta_seconds(wait)}
        return Refusal.error(
            503,
            message,
            "server_error",
            "providers_cooling_down",
            headers,
            error_class="CoolingDown",
            api=api,
        )


def _delta_seconds(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least one (RFC 9110 delta-seconds)."""
    return str(max(1, math.ceil(seconds)))
