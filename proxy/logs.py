"""Where the proxy's log goes: stderr and, by default, `logs/proxy.log`.

One line per request outcome (see `proxy.responses`), naming the error class the way httpx
names its exceptions, so the usual recipes work:

    tail -f logs/proxy.log | grep -i "readerror\\|connection\\|reset"

Every line passes a redacting filter on its way to every handler: the API keys in use are
replaced by `[redacted]` wherever they would appear, also in text an upstream sent back.
The proxy never logs request headers, so this is a second line of defence, not the first.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path

from streamproof.proxy.config import LoggingConfig

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Replaces each secret in a record's final message; never drops a record. A record it
    has seen is marked, so that the next handler's copy of the filter does not look again."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(secret for secret in secrets if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets or getattr(record, "redacted", False):
            return True
        record.redacted = True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class LineFormatter(logging.Formatter):
    """FORMAT, made once per record: every handler here writes the same line, and making it
    (the message, the time) is most of what a log line costs."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line: str | None = getattr(record, "line", None)
        if line is None:
            line = record.line = super().format(record)
        return line


def configure(config: LoggingConfig, secrets: Iterable[str]) -> Path | None:
    """Log to stderr and to the configured file (its folder created); the file's path."""
    redacting = RedactingFilter(secrets)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    path = Path(config.file) if config.file else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    formatter = LineFormatter()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redacting)
    logging.basicConfig(level=config.level, handlers=handlers, force=True)
    # httpx logs every request line at INFO; the proxy's own lines already say what happened.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return path
