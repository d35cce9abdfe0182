"""The proxy's configuration: a TOML file parsed into frozen dataclasses.

Every table and key is checked: an unknown key, a wrong type or an out-of-range value is a
`ConfigError` that names the dotted key and says what is accepted, so a typo such as
`frist_byte` fails at startup instead of silently keeping a default. API keys are not part
of the config; each provider names the environment variable that holds its key, and the
app resolves it (see `proxy.providers`).
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from streamproof.proxy.errors import ConfigError

__all__ = [
    "Config",
    "ConfigError",
    "HealthConfig",
    "LoggingConfig",
    "ProviderConfig",
    "RetryConfig",
    "Route",
    "ServerConfig",
    "Timeouts",
    "load_config",
    "parse_config",
]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # Seconds of upstream silence after which an SSE comment (`: keep-alive`) is sent to
    # the client, so intermediaries that cut idle connections keep this one; 0 is off.
    heartbeat: float = 0.0
    # The model of a `POST /api/chat` request that names none.
    default_model: str = "kimi-for-coding"
    # The environment variable holding the proxy's own key; "" is none. When set, every
    # endpoint but `/health` and the dashboard's static files wants it (see proxy.auth).
    api_key_env: str = ""


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """The WebSocket live feed (`/ws`); see proxy.feed."""

    # Messages waiting for one client before it is dropped as too slow (close code 1008).
    queue: int = 1000
    # Each feed connection's kernel send buffer, bytes (SO_SNDBUF; 0: the kernel's own,
    # which grows to megabytes before a stalled client holds up anything).
    send_buffer: int = 65536
    # Seconds a client that did not send the key in its handshake has to send it in an
    # `auth` message, when the proxy has a key.
    auth_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Alert thresholds; see `proxy.health` for exactly when each alert fires. 0 is off."""

    window: int = 100  # the last N finished requests the rates are computed over
    min_requests: int = 10  # no rate alert on fewer requests than this in the window
    min_success_rate: float = 0.95  # a fraction: alert below it
    max_consecutive_failures: int = 5  # alert when a run of failures reaches it
    min_chunks_per_stream: float = 3.0  # alert when the average falls below it


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    # One line per request outcome, also written to stderr. Relative to the working
    # directory; "" writes to stderr only.
    file: str = "logs/proxy.log"
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. Each is its own timer; see docs/design.md, "The commit point"."""

    connect: float = 5.0
    first_byte: float = 30.0
    idle: float = 30.0
    total: float = 600.0


@dataclass(frozen=True, slots=True)
class RetryConfig:
    max_attempts: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 4.0
    retry_after_cap: float = 10.0
    deadline: float = 60.0


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    base_url: str
    api_key_env: str
    models: Mapping[str, str] = field(default_factory=dict)
    # Whether the provider accepts `stream_options`; when false the proxy removes it from
    # the upstream request and still gives the client the usage chunk it asked for.
    stream_options: bool = True
    # The APIs it speaks at `base_url` (see proxy.apis): requests of other APIs skip it.
    apis: tuple[str, ...] = ("chat",)

    def speaks(self, api: str) -> bool:
        return api in self.apis

    def upstream_model(self, model: str) -> str:
        """The provider's name for a client's model; unchanged when there is no mapping."""
        return self.models.get(model, model)


@dataclass(frozen=True, slots=True)
class Route:
    model: str  # an fnmatch pattern
    providers: tuple[str, ...]

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = ServerConfig()
    timeouts: Timeouts = Timeouts()
    retry: RetryConfig = RetryConfig()
    health: HealthConfig = HealthConfig()
    logging: LoggingConfig = LoggingConfig()
    feed: FeedConfig = FeedConfig()
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()

    def route_for(self, model: str) -> Route | None:
        """The first route whose pattern matches `model`."""
        return next((route for route in self.routes if route.matches(model)), None)


def load_config(path: str | Path) -> Config:
    """Read and check a TOML config file."""
    try:
        with open(path, "rb") as file:
            raw = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    return parse_config(raw)


def parse_config(raw: Mapping[str, Any]) -> Config:
    """Check an already-parsed TOML document and build the `Config`."""
    _known_keys(
        raw,
        "",
        {"server", "timeouts", "retry", "health", "logging", "feed", "providers", "routes"},
    )
    server = _table(raw, "server")
    timeouts = _table(raw, "timeouts")
    retry = _table(raw, "retry")
    _known_keys(server, "server.", {"host", "port", "heartbeat", "default_model", "api_key_env"})
    _known_keys(timeouts, "timeouts.", {"connect", "first_byte", "idle", "total"})
    _known_keys(
        retry,
        "retry.",
        {"max_attempts", "backoff_base", "backoff_max", "retry_after_cap", "deadline"},
    )
    providers = {
        name: _provider(name, _table(_table(raw, "providers"), name, prefix="providers."))
        for name in _table(raw, "providers")
    }
    routes = tuple(_route(i, entry, providers) for i, entry in enumerate(_routes(raw)))
    # Slotted dataclasses keep their defaults on instances, not on the class.
    server_defaults, timeout_defaults, retry_defaults = ServerConfig(), Timeouts(), RetryConfig()
    return Config(
        server=ServerConfig(
            host=_str(server, "server.host", server_defaults.host),
            port=_int(server, "server.port", server_defaults.port, low=0, high=65535),
            heartbeat=_seconds(server, "server.heartbeat", server_defaults.heartbeat),
            default_model=_str(server, "server.default_model", server_defaults.default_model),
            api_key_env=_key_variable(server, "server.api_key_env", optional=True),
        ),
        timeouts=Timeouts(
            connect=_seconds(timeouts, "timeouts.connect", timeout_defaults.connect, positive=True),
            first_byte=_seconds(
                timeouts, "timeouts.first_byte", timeout_defaults.first_byte, positive=True
            ),
            idle=_seconds(timeouts, "timeouts.idle", timeout_defaults.idle, positive=True),
            total=_seconds(timeouts, "timeouts.total", timeout_defaults.total, positive=True),
        ),
        retry=RetryConfig(
            max_attempts=_int(retry, "retry.max_attempts", retry_defaults.max_attempts, low=1),
            backoff_base=_seconds(retry, "retry.backoff_base", retry_defaults.backoff_base),
            backoff_max=_seconds(retry, "retry.backoff_max", retry_defaults.backoff_max),
            retry_after_cap=_seconds(
                retry, "retry.retry_after_cap", retry_defaults.retry_after_cap
            ),
            deadline=_seconds(retry, "retry.deadline", retry_defaults.deadline, positive=True),
        ),
        health=_health(_table(raw, "health")),
        logging=_logging(_table(raw, "logging")),
        feed=_feed(_table(raw, "feed")),
        providers=MappingProxyType(providers),
        routes=routes,
    )


def _health(table: Mapping[str, Any]) -> HealthConfig:
    defaults = HealthConfig()
    _known_keys(
        table,
        "health.",
        {
            "window",
            "min_requests",
            "min_success_rate",
            "max_consecutive_failures",
            "min_chunks_per_stream",
        },
    )
    rate = _number(table, "health.min_success_rate", defaults.min_success_rate)
    if rate > 1:
        raise ConfigError(
            "health.min_success_rate", f"must be a fraction between 0 and 1, got {rate}"
        )
    return HealthConfig(
        window=_int(table, "health.window", defaults.window, low=1),
        min_requests=_int(table, "health.min_requests", defaults.min_requests, low=1),
        min_success_rate=rate,
        max_consecutive_failures=_int(
            table, "health.max_consecutive_failures", defaults.max_consecutive_failures, low=0
        ),
        min_chunks_per_stream=_number(
            table, "health.min_chunks_per_stream", defaults.min_chunks_per_stream
        ),
    )


def _feed(table: Mapping[str, Any]) -> FeedConfig:
    defaults = FeedConfig()
    _known_keys(table, "feed.", {"queue", "send_buffer", "auth_timeout"})
    return FeedConfig(
        queue=_int(table, "feed.queue", defaults.queue, low=1),
        send_buffer=_int(table, "feed.send_buffer", defaults.send_buffer, low=0),
        auth_timeout=_seconds(table, "feed.auth_timeout", defaults.auth_timeout, positive=True),
    )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _logging(table: Mapping[str, Any]) -> LoggingConfig:
    defaults = LoggingConfig()
    _known_keys(table, "logging.", {"file", "level"})
    file = table.get("file", defaults.file)
    if not isinstance(file, str):
        raise ConfigError("logging.file", f'must be a path (a string; "" is off), got {file!r}')
    level = _str(table, "logging.level", defaults.level).upper()
    if level not in LOG_LEVELS:
        raise ConfigError("logging.level", f"must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return LoggingConfig(file=file, level=level)


def _key_variable(table: Mapping[str, Any], key: str, *, optional: bool = False) -> str:
    """The name of an environment variable that holds a key ("" when optional and unset)."""
    if optional and key.rsplit(".", 1)[-1] not in table:
        return ""
    name = _str(table, key, None)
    if not name.isidentifier():
        raise ConfigError(
            key, f"must be an environment variable name (letters, digits, _), got {name!r}"
        )
    return name


def _provider(name: str, table: Mapping[str, Any]) -> ProviderConfig:
    prefix = f"providers.{name}."
    _known_keys(table, prefix, {"base_url", "api_key_env", "models", "stream_options", "apis"})
    base_url = _str(table, prefix + "base_url", None)
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            prefix + "base_url", f"must start with http:// or https://, got {base_url!r}"
        )
    api_key_env = _key_variable(table, prefix + "api_key_env")
    models = table.get("models", {})
    if not isinstance(models, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in models.items()
    ):
        raise ConfigError(
            prefix + "models", "must be a table of strings: client name -> upstream name"
        )
    return ProviderConfig(
        name=name,
        base_url=base_url.rstrip("/"),
        api_key_env=api_key_env,
        models=MappingProxyType(dict(models)),
        stream_options=_bool(table, prefix + "stream_options", True),
        apis=_apis(table, prefix + "apis"),
    )


APIS = ("chat", "messages", "responses")


def _apis(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = table.get("apis", ["chat"])
    accepted = ", ".join(f'"{name}"' for name in APIS)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f"must be a non-empty array of API names ({accepted})")
    unknown = [name for name in value if name not in APIS]
    if unknown:
        raise ConfigError(key, f"unknown API {unknown[0]!r} (accepted: {accepted})")
    return tuple(dict.fromkeys(value))


def _routes(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    routes = raw.get("routes", [])
    if not isinstance(routes, list) or not all(isinstance(entry, dict) for entry in routes):
        raise ConfigError("routes", "must be an array of tables ([[routes]])")
    return routes


def _route(index: int, entry: Mapping[str, Any], providers: Mapping[str, ProviderConfig]) -> Route:
    prefix = f"routes[{index}]."
    _known_keys(entry, prefix, {"model", "providers"})
    model = _str(entry, prefix + "model", None)
    chain = entry.get("providers")
    if not isinstance(chain, list) or not chain or not all(isinstance(p, str) for p in chain):
        raise ConfigError(prefix + "providers", "must be a non-empty array of provider names")
    for name in chain:
        if name not in providers:
            known = ", ".join(sorted(providers)) or "none are defined"
            raise ConfigError(prefix + "providers", f"unknown provider {name!r} (known: {known})")
    return Route(model=model, providers=tuple(chain))


def _known_keys(table: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    for key in table:
        if key not in known:
            accepted = ", ".join(sorted(known))
            raise ConfigError(prefix + key, f"unknown key (accepted here: {accepted})")


def _table(raw: Mapping[str, Any], key: str, *, prefix: str = "") -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(prefix + key, f"must be a table, got {type(value).__name__}")
    return value


# The value helpers take the dotted key for the message; its last part is the table's key.


def _str(table: Mapping[str, Any], key: str, default: str | None) -> str:
    value = table.get(key.rsplit(".", 1)[-1], default)
    if value is None:
        raise ConfigError(key, "is required (a string)")
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"must be a non-empty string, got {value!r}")
    return value


def _bool(table: Mapping[str, Any], key: str, default: bool) -> bool:
    value = table.get(key.rsplit(".", 1)[-1], default)
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {value!r}")
    return value


def _int(
    table: Mapping[str, Any], key: str, default: int, *, low: int, high: int | None = None
) -> int:
    value = table.get(key.rsplit(".", 1)[-1], default)
    # bool is an int subclass in Python; `port = true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(key, f"must be {bounds}, got {value}")
    return value


def _seconds(
    table: Mapping[str, Any], key: str, default: float, *, positive: bool = False
) -> float:
    return _number(table, key, default, positive=positive, unit=" seconds")


def _number(
    table: Mapping[str, Any], key: str, default: float, *, positive: bool = False, unit: str = ""
) -> float:
    value = table.get(key.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number{' of' + unit if unit else ''}, got {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "greater than 0" if positive else "0 or more"
        raise ConfigError(key, f"must be {kind}{unit}, got {value}")
    return float(value)
