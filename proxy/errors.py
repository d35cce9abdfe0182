"""The proxy's exceptions and the OpenAI-style error bodies it sends.

Exception tree::

    ProxyError                      anything this package raises on purpose
     ├── ConfigError                the config file is unusable (names the key)
     ├── RequestRejected            the client's request is invalid (4xx, before any upstream)
     ├── SSEFramingError            the upstream's event stream cannot be framed (too large)
     └── AttemptFailed              one upstream attempt failed before the commit point

Errors are raised as these types inside and turned into bytes for the client in exactly one
place each: `RequestRejected` by the app, `AttemptFailed` by the dispatcher (a real HTTP
status), and post-commit failures by the relay (one in-band error event). Every message is
written for a person and never holds an API key.
"""

from __future__ import annotations

import enum
import json
from typing import Any


class ProxyError(Exception):
    """Base class of every exception the proxy raises on purpose."""


class ConfigError(ProxyError):
    """The config is unusable; `key` is the dotted path of the offending entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config: {key}: {message}")
        self.key = key


class RequestRejected(ProxyError):
    """The client's request cannot be served; answered with `status` and a JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class SSEFramingError(ProxyError):
    """The upstream byte stream is not something the SSE framer will hold (e.g. too large)."""


class Failure(enum.Enum):
    """What went wrong in one upstream attempt before the commit point."""

    CONNECT = "connect"
    CONNECT_TIMEOUT = "connect_timeout"
    RESET = "reset"
    FIRST_BYTE_TIMEOUT = "first_byte_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    DEADLINE = "deadline"
    SERVER_ERROR = "server_error"  # 5xx
    RATE_LIMITED = "rate_limited"  # 429
    CLIENT_ERROR = "client_error"  # 4xx other than 429: passed through, never retried
    MALFORMED = "malformed"
    ERROR_EVENT = "error_event"  # a 200 whose first event is an error payload
    EMPTY = "empty"  # a 200 that ended with no content

    @property
    def is_timeout(self) -> bool:
        return self in {
            Failure.CONNECT_TIMEOUT,
            Failure.FIRST_BYTE_TIMEOUT,
            Failure.IDLE_TIMEOUT,
            Failure.DEADLINE,
        }

    @property
    def is_retryable(self) -> bool:
        return self is not Failure.CLIENT_ERROR

    @property
    def error_class(self) -> str:
        """The class name the health report and the log give a failure of this kind when no
        httpx exception named it (see `proxy.health`)."""
        return _ERROR_CLASSES[self]


_ERROR_CLASSES = {
    Failure.CONNECT: "ConnectError",
    Failure.CONNECT_TIMEOUT: "ConnectTimeout",
    Failure.RESET: "ReadError",
    Failure.FIRST_BYTE_TIMEOUT: "ReadTimeout",
    Failure.IDLE_TIMEOUT: "ReadTimeout",
    Failure.DEADLINE: "TimeoutException",
    Failure.SERVER_ERROR: "HTTPStatusError",
    Failure.RATE_LIMITED: "HTTPStatusError",
    Failure.CLIENT_ERROR: "HTTPStatusError",
    Failure.MALFORMED: "MalformedStream",
    Failure.ERROR_EVENT: "UpstreamError",
    Failure.EMPTY: "IncompleteStream",
}


class AttemptFailed(ProxyError):
    """One attempt at one provider failed before anything reached the client.

    `status` and `body` are the upstream's own when it answered with an HTTP error;
    `retry_after` is its Retry-After in seconds, when it gave a usable one; `error_class`
    names the httpx exception behind a transport failure (else the failure kind's name).
    """

    def __init__(
        self,
        provider: str,
        failure: Failure,
        detail: str,
        *,
        status: int | None = None,
        body: bytes = b"",
        retry_after: float | None = None,
        error_class: str | None = None,
    ) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.failure = failure
        self.detail = detail
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.error_class = error_class or failure.error_class


def error_payload(message: str, type_: str, code: str | int | None) -> bytes:
    """The JSON bytes of an OpenAI-style error object, used in bodies and in-band events."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    return json.dumps({"error": error}, ensure_ascii=False).encode()


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of a secret; upstream error text may echo the key back."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text
