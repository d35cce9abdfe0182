"""The proxy's stream health: counting, the success rate, alerts at their thresholds,
and the same numbers on /health, /metrics and in the log."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import HealthConfig
from proxy.health import Health, Outcome, Result
from proxy.logs import RedactingFilter
from proxy.metrics import exposition, registry_for
from proxy.usage import Usage


def finish(health: Health, outcome: Outcome, stream: bool = True) -> None:
    health.end(health.begin("m", stream=stream, endpoint="/v1/chat/completions"), outcome)


def ok(chunks: int = 5) -> Outcome:
    return Outcome.success(chunks=chunks, attempts=1, provider="fake")


def failed(error_class: str = "ReadError") -> Outcome:
    return Outcome.failure(200, error_class, "upstream_reset", "fake: reset", chunks=2)


def test_health_empty_report_has_no_rate_and_no_division_by_zero():
    report = Health(HealthConfig()).report()
    assert report["success_rate"] is None
    assert report["chunks"]["average_per_stream"] is None
    assert report["requests"] == {
        "total": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "active": 0,
    }
    assert report["alerts"] == []
    assert report["status"] == "ok"


def test_health_counts_by_result_and_error_class():
    health = Health(HealthConfig())
    for outcome in (ok(), failed(), failed("ConnectError"), failed()):
        finish(health, outcome)
    finish(health, Outcome.cancelled(200, chunks=1))
    report = health.report()
    assert report["requests"]["total"] == 5
    assert report["requests"]["succeeded"] == 1
    assert report["requests"]["failed"] == 3
    assert report["requests"]["cancelled"] == 1
    assert report["failures_by_class"] == {"ReadError": 2, "ConnectError": 1}
    assert report["success_rate"] == 0.25  # cancelled requests are not in the window
    assert report["chunks"]["total"] == 5 + 2 * 3 + 1
    assert [record["result"] for record in report["recent"]] == [
        "cancelled",
        "failure",
        "failure",
        "failure",
        "success",
    ]


def test_health_active_requests_are_counted_until_they_end():
    health = Health(HealthConfig())
    begun = health.begin("m", stream=True, endpoint="/api/chat")
    assert health.report()["requests"]["active"] == 1
    health.end(begun, ok())
    assert health.report()["requests"]["active"] == 0


def test_health_tokens_split_reported_and_estimated_including_partial_usage():
    health = Health(HealthConfig())
    finish(health, Outcome.success(usage=Usage(10, 5, 15, estimated=False)))
    finish(health, Outcome.cancelled(200, usage=Usage(10, 2, 12, estimated=True)))
    finish(health, Outcome.failure(200, "ReadError", "x", "", usage=Usage(3, 1, 4, True)))
    tokens = health.report()["tokens"]
    assert tokens["reported"] == {"prompt": 10, "completion": 5, "total": 15}
    assert tokens["estimated"] == {"prompt": 13, "completion": 3, "total": 16}


def test_health_consecutive_failures_alert_fires_exactly_at_the_threshold():
    changes: list[tuple[str, str]] = []
    health = Health(HealthConfig(max_consecutive_failures=3, min_success_rate=0))
    health.alert_listeners.append(lambda change, alert: changes.append((change, alert.name)))
    finish(health, failed())
    finish(health, failed())
    assert health.alerts == {}
    finish(health, failed())
    assert list(health.alerts) == ["consecutive_failures"]
    finish(health, failed())  # still holding: raised once, not again
    finish(health, ok())
    assert health.alerts == {}
    assert changes == [("raised", "consecutive_failures"), ("cleared", "consecutive_failures")]


def test_health_cancelled_requests_neither_break_nor_extend_a_failure_run():
    health = Health(HealthConfig(max_consecutive_failures=2, min_success_rate=0))
    finish(health, failed())
    finish(health, Outcome.cancelled(200))
    assert health.consecutive_failures == 1
    finish(health, failed())
    assert "consecutive_failures" in health.alerts


def test_health_success_rate_alert_fires_below_the_threshold_with_enough_requests():
    config = HealthConfig(
        min_requests=4, min_success_rate=0.75, max_consecutive_failures=0, min_chunks_per_stream=0
    )
    health = Health(config)
    finish(health, failed())  # 0 % but only one request: no evidence yet
    assert health.alerts == {}
    for _ in range(3):
        finish(health, ok())
    assert health.success_rate() == 0.75  # at the threshold, not below it
    assert health.alerts == {}
    finish(health, failed())
    assert health.success_rate() == 0.6
    assert list(health.alerts) == ["low_success_rate"]
    assert health.report()["status"] == "degraded"


def test_health_window_forgets_old_requests():
    config = HealthConfig(window=3, min_requests=1, min_success_rate=0.5)
    health = Health(config)
    for outcome in (failed(), failed(), failed(), ok(), ok()):
        finish(health, outcome)
    assert health.success_rate() == pytest.approx(2 / 3)
    assert health.alerts == {}


def test_health_few_chunks_alert_counts_streamed_successes_only():
    config = HealthConfig(
        min_requests=2, min_success_rate=0, max_consecutive_failures=0, min_chunks_per_stream=3
    )
    health = Health(config)
    finish(health, ok(chunks=0), stream=False)  # a JSON answer has no chunks: not counted
    finish(health, ok(chunks=3))
    assert health.alerts == {}  # one streamed success is not enough evidence
    finish(health, ok(chunks=3))
    assert health.average_chunks() == 3.0
    assert health.alerts == {}
    finish(health, ok(chunks=2))
    assert health.average_chunks() == pytest.approx(8 / 3)
    assert list(health.alerts) == ["few_chunks"]


def test_health_metrics_expose_the_same_numbers_as_the_report():
    health = Health(HealthConfig(max_consecutive_failures=2))
    finish(health, ok(chunks=4))
    finish(health, failed())
    finish(health, failed("ConnectError"))
    families = {
        family.name: family
        for family in text_string_to_metric_families(exposition(registry_for(health)).decode())
    }

    def value(name: str, **labels: str) -> float:
        for sample in families[name].samples:
            if sample.name.endswith("_total") or sample.name == name:
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        raise AssertionError(f"no sample {name} {labels}")

    report = health.report()
    assert value("streamproof_proxy_requests", result="success") == 1
    assert value("streamproof_proxy_requests", result="failure") == 2
    assert value("streamproof_proxy_failures", error_class="ReadError") == 1
    assert value("streamproof_proxy_failures", error_class="ConnectError") == 1
    assert value("streamproof_proxy_chunks") == report["chunks"]["total"]
    assert value("streamproof_proxy_success_rate") == pytest.approx(report["success_rate"])
    assert value("streamproof_proxy_alert_active", alert="consecutive_failures") == 1
    assert value("streamproof_proxy_alert_active", alert="low_success_rate") == 0


def test_health_metrics_leave_out_the_rate_when_there_is_none():
    text = exposition(registry_for(Health(HealthConfig()))).decode()
    assert "streamproof_proxy_success_rate" not in text
    assert "NaN" not in text


def test_health_outcome_kinds():
    assert Outcome.cancelled(0).result is Result.CANCELLED
    assert Outcome.cancelled(0).error_class == "ClientDisconnected"


def test_logs_redacting_filter_replaces_secrets_in_the_final_message():
    record = logging.LogRecord("proxy", logging.INFO, __file__, 1, "key %s!", ("sk-abc",), None)
    assert RedactingFilter(["sk-abc", ""]).filter(record)
    assert record.getMessage() == "key [redacted]!"
