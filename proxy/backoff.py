"""How long to wait before the next attempt: exponential backoff with full jitter, and
the upstream's own `Retry-After`.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads retries from
many clients apart instead of synchronising them. The random source is an instance the
caller owns, so a test can seed it and nothing touches the module-level `random` state.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float
    cap: float

    def ceiling(self, retry: int) -> float:
        """The largest wait before retry number `retry` (0 for the first retry)."""
        # 2.0 ** n overflows past n = 1023; the cap applies long before 60, so clamp there.
        return min(self.cap, self.base * 2.0 ** min(retry, 60))

    def delay(self, retry: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(retry))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None.

    An unreadable value is None: the caller then falls back to its own backoff.
    Fractional seconds are accepted, as some providers send them.
    """
    if value is None:
        return None
    value = value.strip()
    # Only plain digits: float() alone would also take "1_0", "inf" and "-3".
    if _SECONDS.fullmatch(value):
        return float(value)
    return _seconds_until(value, now or datetime.now(UTC))


def _seconds_until(value: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
