"""`GET /metrics`: the health report in Prometheus' text format (prometheus-client).

A custom collector reads `Health` at scrape time, so `/metrics` and `/health` are two views
of the same numbers and can never drift apart. Each app has its own registry: nothing here
is process-global, and no default process or platform collectors are added (their figures
are the exporter's business, not the proxy's).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streamproof.proxy.health import DURATION_BUCKETS, Health, Result

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "streamproof_proxy"
ALERTS = ("low_success_rate", "consecutive_failures", "few_chunks")


class HealthCollector(Collector):
    def __init__(self, health: Health) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        health = self._health
        requests = CounterMetricFamily(
            f"{PREFIX}_requests",
            "Finished chat requests by result (success, failure, cancelled by the client).",
            labels=["result"],
        )
        for result in Result:
            requests.add_metric([result.value], health.results[result])
        yield requests

        failures = CounterMetricFamily(
            f"{PREFIX}_failures",
            "Failed chat requests by error class (ReadError, ConnectError, ReadTimeout, ...).",
            labels=["error_class"],
        )
        for name, count in sorted(health.failures_by_class.items()):
            failures.add_metric([name], count)
        yield failures

        yield GaugeMetricFamily(
            f"{PREFIX}_active_requests", "Chat requests in flight.", value=len(health.active)
        )
        yield CounterMetricFamily(
            f"{PREFIX}_chunks", "Chunks relayed to clients.", value=health.chunks
        )
        tokens = CounterMetricFamily(
            f"{PREFIX}_tokens",
            "Tokens of finished requests (partial ones included), by kind and by source: "
            "reported by the provider or estimated by the proxy.",
            labels=["kind", "source"],
        )
        for source, figures in (("reported", health.reported), ("estimated", health.estimated)):
            tokens.add_metric(["prompt", source], figures.prompt)
            tokens.add_metric(["completion", source], figures.completion)
        yield tokens

        yield GaugeMetricFamily(
            f"{PREFIX}_consecutive_failures",
            "Failures since the last success.",
            value=health.consecutive_failures,
        )
        window = GaugeMetricFamily(
            f"{PREFIX}_window_requests",
            "Finished requests in the window the rates are computed over.",
            value=len(health.window.entries),
        )
        yield window
        rate = health.success_rate()
        if rate is not None:  # no samples, no figure: never a division by zero
            yield GaugeMetricFamily(
                f"{PREFIX}_success_rate",
                "Successes / (successes + failures) over the window.",
                value=rate,
            )
        average = health.average_chunks()
        if average is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_average_chunks_per_stream",
                "Average chunks per successful streamed request over the window.",
                value=average,
            )
        alerts = GaugeMetricFamily(
            f"{PREFIX}_alert_active", "1 while the alert holds, else 0.", labels=["alert"]
        )
        for name in ALERTS:
            alerts.add_metric([name], 1 if name in health.alerts else 0)
        yield alerts

        cumulative, buckets = 0, []
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), health.durations, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", cumulative))
        yield HistogramMetricFamily(
            f"{PREFIX}_request_duration_seconds",
            "Time from a chat request's arrival to its end.",
            buckets=buckets,
            sum_value=health.duration_sum,
        )


def registry_for(health: Health) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(health))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
