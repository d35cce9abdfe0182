"""Stream health: what became of every request, the alerts it raises, and the report.

`Health` is sans-IO: the response code tells it when a request starts (`begin`) and how it
ended (`end`, with an `Outcome`), and it keeps

- totals: requests, successes, failures, requests the client abandoned, active now;
- failures by error class, named as httpx names its exceptions (`ReadError`,
  `ConnectError`, `ConnectTimeout`, `RemoteProtocolError`, ...) or, for what the proxy
  itself detects, by what it is (`ReadTimeout` for the first-byte and idle timers,
  `TimeoutException` for the total timeout and the overall deadline, `IncompleteStream`,
  `MalformedStream`, `UpstreamError`, `HTTPStatusError`, ...), so the seed's
  `grep -i "readerror\\|connection\\|reset"` recipes work on the log;
- chunks relayed, and tokens (prompt and completion, reported by the provider or
  estimated by the proxy), including the partial usage of failed and abandoned streams;
- a sliding window of the last `window` finished requests, over which the success rate
  and the average chunks per successful stream are computed;
- the alerts, each checked after every request;
- a timeline: requests and chunks per 5-second bucket over the last two minutes, with the
  success rate as it stood at the end of each bucket (what the dashboard's chart draws).

Decisions, stated once:

- A request the client abandoned is neither a success nor a failure: the upstream did
  nothing wrong. It is counted apart, does not enter the window, and does not reset or
  extend a run of consecutive failures.
- The success rate is successes / (successes + failures) over the window, and `None` when
  the window is empty: never a division by zero, and no alert on no evidence.
- Alerts fire exactly at their thresholds: `low_success_rate` when the rate is *below*
  `min_success_rate` with at least `min_requests` requests in the window;
  `consecutive_failures` when the run *reaches* `max_consecutive_failures`;
  `few_chunks` when the average chunks per successful *streamed* request is *below*
  `min_chunks_per_stream` with at least `min_requests` of them in the window.
  A threshold of 0 turns its alert off. An alert is raised once when its condition
  starts to hold and cleared once when it stops; listeners hear both.
- An alert's figures are the current ones: while it holds, its `value` and its `message`
  are rebuilt after every request, so the report, the summary and the live feed say the
  same numbers as the success rate next to them. Only its `since` stays that of the raise.
  A percentage is written as the dashboard writes it (`percent`): "62.5 %".

Listeners (the log, the live feed) hear every request start (`begin_listeners`), end
(`record_listeners`) and alert change (`alert_listeners`), synchronously: a listener must
not block and must not raise. When a request ends, every figure (the alerts included) is
brought up to date first; then the record listeners hear it, then the alert listeners hear
what changed, so whatever a listener reads from `summary()` is the state after the request.
"""

from __future__ import annotations

import enum
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from streamproof.proxy.config import HealthConfig
from streamproof.proxy.usage import Usage

# The upper bounds (seconds) of the request-duration histogram, as Prometheus wants them.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# The timeline: buckets of this many seconds, this many of them (two minutes).
TIMELINE_SECONDS = 5.0
TIMELINE_BUCKETS = 24


def percent(fraction: float) -> str:
    """A fraction as a percentage with one decimal, "62.5 %", exactly as the dashboard
    writes it: JavaScript's `(fraction * 100).toFixed(1)`, which rounds a tie up. Python's
    own format rounds a tie to even: 1/16 would be "6.2%" in a message and 6.3 % on the
    page (562 of the k/n for n up to 1,000 differ that way)."""
    scaled = Decimal(fraction * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{scaled} %"


class Result(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"  # the client left before the end


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request ended, as the response code saw it."""

    result: Result
    status: int  # the HTTP status the client got (200 for a stream that failed after it)
    error_class: str | None = None  # None for a success
    code: str | None = None  # the error code the client was given, if any
    message: str = ""  # for the log; already redacted
    chunks: int = 0  # chunks relayed to the client
    attempts: int = 0  # upstream attempts made
    provider: str | None = None  # the provider that answered, if one did
    usage: Usage | None = None

    @classmethod
    def success(cls, **details: Any) -> Outcome:
        return cls(Result.SUCCESS, 200, **details)

    @classmethod
    def failure(
        cls, status: int, error_class: str, code: str, message: str, **details: Any
    ) -> Outcome:
        return cls(Result.FAILURE, status, error_class, code, message, **details)

    @classmethod
    def cancelled(cls, status: int, **details: Any) -> Outcome:
        return cls(Result.CANCELLED, status, "ClientDisconnected", "client_disconnected", **details)


@dataclass(frozen=True, slots=True)
class Record:
    """One finished request, as the report and the live feed show it."""

    id: int
    model: str
    stream: bool
    endpoint: str
    outcome: Outcome
    started_at: float  # wall clock (time.time())
    duration: float  # seconds

    def as_json(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "id": self.id,
            "model": self.model,
            "endpoint": self.endpoint,
            "stream": self.stream,
            "result": o.result.value,
            "status": o.status,
            "error_class": o.error_class,
            "code": o.code,
            "message": o.message,
            "provider": o.provider,
            "attempts": o.attempts,
            "chunks": o.chunks,
            "usage": _usage_json(o.usage),
            "started_at": round(self.started_at, 3),
            "duration": round(self.duration, 6),
        }


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    message: str
    value: float
    threshold: float
    since: float  # wall clock

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "message": self.message,
            "value": self.value,
            "threshold": self.threshold,
            "since": round(self.since, 3),
        }


@dataclass(frozen=True, slots=True)
class Started:
    """A request in flight, as `begin` hands it back for `end`."""

    id: int
    model: str
    stream: bool
    endpoint: str
    started_at: float  # wall clock
    started: float  # monotonic

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "endpoint": self.endpoint,
            "stream": self.stream,
            "started_at": round(self.started_at, 3),
        }


@dataclass(slots=True)
class Tokens:
    prompt: int = 0
    completion: int = 0

    def add(self, usage: Usage) -> None:
        self.prompt += usage.prompt
        self.completion += usage.completion

    def as_json(self) -> dict[str, int]:
        return {
            "prompt": self.prompt,
            "completion": self.completion,
            "total": self.prompt + self.completion,
        }


@dataclass(slots=True)
class _Window:
    """The last `size` finished (not cancelled) requests: (succeeded, streamed, chunks).

    Its figures are running sums, brought up to date as an entry comes in and another falls
    out, so that a request's end costs the same whatever the window's size (it was a scan
    of the whole window, four times per request)."""

    size: int
    entries: deque[tuple[bool, bool, int]] = field(default_factory=deque)
    successes: int = 0
    streamed_successes: int = 0  # successful streamed requests in the window
    streamed_chunks: int = 0  # their chunks

    def add(self, succeeded: bool, streamed: bool, chunks: int) -> None:
        self.entries.append((succeeded, streamed, chunks))
        self._count(succeeded, streamed, chunks, 1)
        while len(self.entries) > self.size:
            self._count(*self.entries.popleft(), -1)

    def _count(self, succeeded: bool, streamed: bool, chunks: int, sign: int) -> None:
        if succeeded:
            self.successes += sign
            if streamed:
                self.streamed_successes += sign
                self.streamed_chunks += sign * chunks

    def success_rate(self) -> float | None:
        if not self.entries:
            return None
        return self.successes / len(self.entries)

    def average_chunks(self) -> float | None:
        """Average chunks per successful streamed request; None when there is none."""
        if not self.streamed_successes:
            return None
        return self.streamed_chunks / self.streamed_successes


@dataclass(slots=True)
class Bucket:
    """The requests that ended in one bucket of the timeline, `start` to `start + seconds`."""

    start: float  # wall clock, a multiple of the bucket's length
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    chunks: int = 0
    # The success rate (over the window, as the report's) after the bucket's last request.
    success_rate: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "chunks": self.chunks,
            "success_rate": self.success_rate,
        }


class Timeline:
    """What ended when: the last `buckets` buckets of `seconds` each, the one in progress
    included. Only buckets in which a request ended are kept; the others are empty.

    A request is counted in the bucket of the wall-clock time it ended (if the clock steps
    back, in the latest bucket: buckets are never reordered). Its chunks count there too,
    all of them, though a long stream relayed them over its whole life.
    """

    def __init__(self, seconds: float = TIMELINE_SECONDS, buckets: int = TIMELINE_BUCKETS) -> None:
        self.seconds = seconds
        self.size = buckets
        self.buckets: deque[Bucket] = deque()
        self._rate_before: float | None = None  # as it stood after the last bucket forgotten

    def start_of(self, at: float) -> float:
        return math.floor(at / self.seconds) * self.seconds

    def add(self, at: float, result: Result, chunks: int, rate: float | None) -> Bucket:
        """Count one request that ended at `at`; `rate` is the success rate after it."""
        start = self.start_of(at)
        if not self.buckets or self.buckets[-1].start < start:
            self.buckets.append(Bucket(start))
        bucket = self.buckets[-1]
        if result is Result.SUCCESS:
            bucket.succeeded += 1
        elif result is Result.FAILURE:
            bucket.failed += 1
        else:
            bucket.cancelled += 1
        bucket.chunks += chunks
        bucket.success_rate = rate
        first = self._first(bucket.start)
        while self.buckets[0].start < first:
            self._rate_before = self.buckets.popleft().success_rate
        return bucket

    def latest(self) -> dict[str, Any] | None:
        """The bucket the last request was counted in, as it stands."""
        return self.buckets[-1].as_json() if self.buckets else None

    def _first(self, current: float) -> float:
        """The start of the oldest bucket shown when `current` is the one in progress."""
        return current - (self.size - 1) * self.seconds

    def as_json(self, now: float) -> dict[str, Any]:
        """The buckets up to the one `now` is in; `rate_before` is the success rate as it
        stood when the first of them began (None: no request had ended by then)."""
        current = self.start_of(now)
        if self.buckets and self.buckets[-1].start > current:  # the clock stepped back
            current = self.buckets[-1].start
        first = self._first(current)
        rate_before = self._rate_before
        shown = []
        for bucket in self.buckets:
            if bucket.start < first:
                rate_before = bucket.success_rate
            else:
                shown.append(bucket.as_json())
        return {
            "bucket_seconds": self.seconds,
            "buckets": self.size,
            "current": round(current, 3),
            "rate_before": rate_before,
            "points": shown,
        }


AlertListener = Callable[[str, Alert], None]  # ("raised" | "cleared", alert)
RecordListener = Callable[[Record], None]
BeginListener = Callable[[Started], None]


class Health:
    def __init__(
        self,
        config: HealthConfig,
        *,
        recent: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._clock = clock  # the wall clock; durations are measured on time.monotonic
        self._next_id = 1
        self.active: dict[int, Started] = {}
        self.results: Counter[Result] = Counter()
        self.failures_by_class: Counter[str] = Counter()
        self.chunks = 0
        self.streamed_successes = 0
        self.reported = Tokens()
        self.estimated = Tokens()
        self.consecutive_failures = 0
        self.durations = [0] * (len(DURATION_BUCKETS) + 1)  # the last is +Inf
        self.duration_sum = 0.0
        self.window = _Window(config.window)
        self.recent: deque[Record] = deque(maxlen=recent)
        self.alerts: dict[str, Alert] = {}
        self.timeline = Timeline()
        self.alert_listeners: list[AlertListener] = []
        self.record_listeners: list[RecordListener] = []
        self.begin_listeners: list[BeginListener] = []

    @property
    def total(self) -> int:
        return sum(self.results.values())

    def begin(self, model: str, *, stream: bool, endpoint: str) -> Started:
        started = Started(self._next_id, model, stream, endpoint, self._clock(), time.monotonic())
        self._next_id += 1
        self.active[started.id] = started
        for listener in self.begin_listeners:
            listener(started)
        return started

    def end(self, started: Started, outcome: Outcome) -> Record:
        """Count a finished request, re-check the alerts, then tell the listeners."""
        del self.active[started.id]
        duration = time.monotonic() - started.started
        record = Record(
            started.id,
            started.model,
            started.stream,
            started.endpoint,
            outcome,
            started.started_at,
            duration,
        )
        self.results[outcome.result] += 1
        self.chunks += outcome.chunks
        if outcome.usage is not None:
            (self.estimated if outcome.usage.estimated else self.reported).add(outcome.usage)
        self._observe_duration(duration)
        if outcome.result is Result.SUCCESS:
            self.consecutive_failures = 0
            self.streamed_successes += started.stream
            self.window.add(True, started.stream, outcome.chunks)
        elif outcome.result is Result.FAILURE:
            self.consecutive_failures += 1
            self.failures_by_class[outcome.error_class or "Unknown"] += 1
            self.window.add(False, started.stream, outcome.chunks)
        changes = self._check_alerts()
        self.timeline.add(self._clock(), outcome.result, outcome.chunks, self.success_rate())
        self.recent.appendleft(record)
        for listener in self.record_listeners:
            listener(record)
        for change, alert in changes:
            for alert_listener in self.alert_listeners:
                alert_listener(change, alert)
        return record

    def _observe_duration(self, seconds: float) -> None:
        self.duration_sum += seconds
        for index, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.durations[index] += 1
                return
        self.durations[-1] += 1

    def success_rate(self) -> float | None:
        return self.window.success_rate()

    def average_chunks(self) -> float | None:
        """Average chunks per successful streamed request in the window; None when none."""
        return self.window.average_chunks()

    def _check_alerts(self) -> list[tuple[str, Alert]]:
        """Bring every alert up to date; the changes ("raised" or "cleared", the alert)."""
        config = self.config
        rate = self.success_rate()
        enough = len(self.window.entries) >= config.min_requests
        changes: list[tuple[str, Alert]] = []
        self._set(
            changes,
            "low_success_rate",
            config.min_success_rate > 0
            and enough
            and rate is not None
            and rate < config.min_success_rate,
            rate or 0.0,
            config.min_success_rate,
            lambda value, threshold: (
                f"success rate {percent(value)} is below {percent(threshold)} over "
                f"the last {len(self.window.entries)} requests"
            ),
        )
        run = self.consecutive_failures
        self._set(
            changes,
            "consecutive_failures",
            config.max_consecutive_failures > 0 and run >= config.max_consecutive_failures,
            float(run),
            float(config.max_consecutive_failures),
            lambda value, threshold: (
                f"{value:.0f} consecutive failures (threshold {threshold:.0f})"
            ),
        )
        average = self.average_chunks()
        self._set(
            changes,
            "few_chunks",
            config.min_chunks_per_stream > 0
            and self.window.streamed_successes >= config.min_requests
            and average is not None
            and average < config.min_chunks_per_stream,
            average or 0.0,
            config.min_chunks_per_stream,
            lambda value, threshold: (
                f"{value:.1f} chunks per successful stream on average, below {threshold:g}"
            ),
        )
        return changes

    def _set(
        self,
        changes: list[tuple[str, Alert]],
        name: str,
        holds: bool,
        value: float,
        threshold: float,
        message: Callable[[float, float], str],
    ) -> None:
        current = self.alerts.get(name)
        if holds:
            alert = Alert(
                name,
                message(value, threshold),
                value,
                threshold,
                current.since if current else self._clock(),
            )
            self.alerts[name] = alert
            if current is None:
                changes.append(("raised", alert))
        elif current is not None:
            del self.alerts[name]
            changes.append(("cleared", current))

    def summary(self) -> dict[str, Any]:
        """The report's headline figures, which the live feed sends with every event: all
        of one moment (`time`, wall clock), the alerts in force with their current figures
        among them, so a page that draws them side by side never shows two moments."""
        return {
            "time": round(self._clock(), 3),
            "status": "degraded" if self.alerts else "ok",
            "requests": {
                "total": self.total,
                "succeeded": self.results[Result.SUCCESS],
                "failed": self.results[Result.FAILURE],
                "cancelled": self.results[Result.CANCELLED],
                "active": len(self.active),
            },
            "success_rate": self.success_rate(),
            "window": {"size": self.config.window, "requests": len(self.window.entries)},
            "consecutive_failures": self.consecutive_failures,
            "failures_by_class": dict(self.failures_by_class.most_common()),
            "alerts": [alert.as_json() for alert in self.alerts.values()],
        }

    def report(self) -> dict[str, Any]:
        """The health report: what `GET /health` answers and `/metrics` exposes."""
        config = self.config
        summary = self.summary()
        return {
            **summary,
            "chunks": {
                "total": self.chunks,
                "average_per_stream": self.average_chunks(),
            },
            "tokens": {
                "reported": self.reported.as_json(),
                "estimated": self.estimated.as_json(),
            },
            "thresholds": {
                "min_success_rate": config.min_success_rate,
                "max_consecutive_failures": config.max_consecutive_failures,
                "min_chunks_per_stream": config.min_chunks_per_stream,
                "min_requests": config.min_requests,
            },
            "timeline": self.timeline.as_json(summary["time"]),
            "active_requests": [started.as_json() for started in self.active.values()],
            "recent": [record.as_json() for record in self.recent],
        }


def _usage_json(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.total,
        "estimated": usage.estimated,
    }
