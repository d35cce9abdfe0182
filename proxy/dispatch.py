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

A wait that would outlast the deadline is not started. The sleeps here are the only ones in
the proxy; they are cancelled like everything else when the client goes away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from dataclasses import dataclass, field

from proxy.backoff import Backoff
from proxy.config import Config, Route
from proxy.errors import AttemptFailed, Failure, error_payload, redact
from proxy.providers import Provider, ProviderPool
from proxy.upstream import Answer, StreamStart, attempt
from proxy.validation import ChatCall

logger = logging.getLogger("proxy")


@dataclass(frozen=True, slots=True)
class Refusal:
    """The final answer when no attempt succeeded: a status with a JSON error body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(
        cls, status: int, message: str, type_: str, code: str, headers: dict[str, str] | None = None
    ) -> Refusal:
        return cls(status, error_payload(message, type_, code), headers or {})


class Dispatcher:
    def __init__(self, config: Config, pool: ProviderPool, rng: random.Random) -> None:
        self._config = config
        self._pool = pool
        self._rng = rng
        self._backoff = Backoff(config.retry.backoff_base, config.retry.backoff_max)

    async def dispatch(
        self, call: ChatCall, route: Route, started: float
    ) -> StreamStart | Answer | Refusal:
        """Try the chain until an attempt succeeds; `started` is the arrival, in loop time."""
        chain = [self._pool[name] for name in route.providers]
        usable = [provider for provider in chain if provider.usable]
        if not usable:
            message = "; ".join(provider.missing_key for provider in chain)
            return Refusal.error(503, message, "server_error", "provider_unconfigured")
        limits = self._config.timeouts.total, self._config.retry.deadline
        deadline = started + min(limits)
        failures: dict[str, str] = {}  # provider -> its last failure, for the final message
        last: AttemptFailed | None = None
        loop = asyncio.get_running_loop()
        for provider in usable:
            if last is not None and loop.time() >= deadline:
                break
            try:
                return await self._provider(provider, call, deadline, failures)
            except AttemptFailed as exc:
                last = exc
                if not exc.failure.is_retryable:
                    return self._pass_through(exc)
        assert last is not None  # every usable provider was tried at least once
        return self._exhausted(last, failures)

    async def _provider(
        self, provider: Provider, call: ChatCall, deadline: float, failures: dict[str, str]
    ) -> StreamStart | Answer:
        """Up to max_attempts at one provider; raises the last AttemptFailed."""
        loop = asyncio.get_running_loop()
        max_attempts = self._config.retry.max_attempts
        number = 1
        while True:
            request = provider.build_request(call.body, call.payload, call.stream)
            try:
                return await attempt(
                    provider.name,
                    provider.client,
                    request,
                    stream=call.stream,
                    timeouts=self._config.timeouts,
                    deadline=deadline,
                    secrets=self._pool.secrets,
                    include_usage=call.include_usage,
                    messages=call.messages,
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

    def _pass_through(self, failure: AttemptFailed) -> Refusal:
        status = failure.status or 502
        text = failure.body.decode(errors="replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return Refusal(status, redact(text, self._pool.secrets).encode())
        message = redact(str(failure), self._pool.secrets)
        return Refusal.error(status, message, "upstream_error", "upstream_client_error")

    def _exhausted(self, last: AttemptFailed, failures: dict[str, str]) -> Refusal:
        message = "; ".join(failures.values())
        if last.failure is Failure.RATE_LIMITED:
            # Tell the client when to come back; a whole second at least (delta-seconds).
            seconds = max(1, math.ceil(last.retry_after or 0))
            headers = {"retry-after": str(seconds)}
            return Refusal.error(429, message, "upstream_error", "upstream_rate_limited", headers)
        if last.failure.is_timeout:
            return Refusal.error(504, message, "upstream_error", "upstream_timeout")
        return Refusal.error(502, message, "upstream_error", "upstream_failed")
