"""The proxy's stream health: counting, the success rate, alerts at their thresholds,
and the same numbers on /health, /metrics and in the log."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamproof.proxy.config import HealthConfig
from streamproof.proxy.health import Health, Outcome, Result, Timeline, percent
from streamproof.proxy.logs import RedactingFilter
from streamproof.proxy.metrics import exposition, registry_for
from streamproof.proxy.usage import Usage


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


def test_health_alert_message_and_value_follow_the_numbers_while_it_holds():
    """The seed's page said "66.7 % over 12 requests" next to a headline of 62.5 % of 16:
    the alert kept the figures of its raise. Its `since` is all that stays."""
    config = HealthConfig(
        min_requests=4, min_success_rate=0.9, max_consecutive_failures=0, min_chunks_per_stream=0
    )
    changes: list[str] = []
    health = Health(config)
    health.alert_listeners.append(lambda change, alert: changes.append(change))
    for outcome in (ok(), ok(), failed(), ok()):  # 3 of 4: raised
        finish(health, outcome)
    raised = health.alerts["low_success_rate"]
    assert raised.message == "success rate 75.0 % is below 90.0 % over the last 4 requests"
    for outcome in (ok(), ok(), failed(), ok()):  # 6 of 8
        finish(health, outcome)
    now = health.alerts["low_success_rate"]
    assert now.message == "success rate 75.0 % is below 90.0 % over the last 8 requests"
    finish(health, failed())  # 6 of 9
    now = health.alerts["low_success_rate"]
    assert now.value == health.success_rate() == pytest.approx(6 / 9)
    assert now.message == "success rate 66.7 % is below 90.0 % over the last 9 requests"
    assert now.since == raised.since
    report = health.report()
    assert [alert["message"] for alert in report["alerts"]] == [now.message]
    assert report["success_rate"] == now.value
    assert report["window"]["requests"] == 9
    assert changes == ["raised"]  # a change of figures is not a new raise


def test_health_consecutive_failures_message_counts_the_run_as_it_grows():
    health = Health(HealthConfig(max_consecutive_failures=2, min_success_rate=0))
    for _ in range(4):
        finish(health, failed())
    assert health.alerts["consecutive_failures"].message == "4 consecutive failures (threshold 2)"
    assert health.summary()["consecutive_failures"] == 4


def test_health_listeners_read_the_state_after_the_request():
    """A record listener (the feed's stream_ended) reads a summary that already holds the
    alerts this request changed; the alert listeners hear the change after it."""
    config = HealthConfig(max_consecutive_failures=2, min_success_rate=0)
    health = Health(config)
    heard: list[tuple[str, Any]] = []
    health.record_listeners.append(
        lambda record: heard.append(("record", [a["name"] for a in health.summary()["alerts"]]))
    )
    health.alert_listeners.append(lambda change, alert: heard.append((change, alert.name)))
    finish(health, failed())
    finish(health, failed())
    finish(health, ok())
    assert heard == [
        ("record", []),
        ("record", ["consecutive_failures"]),
        ("raised", "consecutive_failures"),
        ("record", []),
        ("cleared", "consecutive_failures"),
    ]


@pytest.mark.parametrize(
    ("fraction", "text"),
    [
        (0.0, "0.0 %"),
        (1.0, "100.0 %"),
        (0.625, "62.5 %"),
        (2 / 3, "66.7 %"),
        (0.95, "95.0 %"),
        # 1/16 is 6.25 % exactly: a tie, which JavaScript's toFixed rounds up and Python's
        # format to even ("6.2 %"); the page and the message must say the same.
        (1 / 16, "6.3 %"),
        (5 / 16, "31.3 %"),
        (0.0005, "0.1 %"),  # 0.05000000000000000277...: above the tie
    ],
)
def test_percent_writes_what_the_page_writes(fraction, text):
    assert percent(fraction) == text


def test_timeline_counts_requests_and_chunks_per_bucket_with_the_rate_after_each():
    timeline = Timeline(seconds=5.0, buckets=4)
    timeline.add(100.0, Result.SUCCESS, 4, 1.0)
    timeline.add(104.999, Result.FAILURE, 2, 0.5)
    timeline.add(105.0, Result.CANCELLED, 1, 0.5)
    assert timeline.as_json(106.0) == {
        "bucket_seconds": 5.0,
        "buckets": 4,
        "current": 105.0,
        "rate_before": None,
        "points": [
            {
                "start": 100.0,
                "succeeded": 1,
                "failed": 1,
                "cancelled": 0,
                "chunks": 6,
                "success_rate": 0.5,
            },
            {
                "start": 105.0,
                "succeeded": 0,
                "failed": 0,
                "cancelled": 1,
                "chunks": 1,
                "success_rate": 0.5,
            },
        ],
    }
    assert timeline.latest() == timeline.as_json(106.0)["points"][-1]


def test_timeline_forgets_old_buckets_and_keeps_the_rate_they_left():
    timeline = Timeline(seconds=5.0, buckets=3)  # the current bucket and the two before it
    timeline.add(0.0, Result.FAILURE, 0, 0.0)
    timeline.add(6.0, Result.SUCCESS, 3, 0.5)
    assert [p["start"] for p in timeline.as_json(14.9)["points"]] == [0.0, 5.0]
    quiet = timeline.as_json(15.0)  # nothing ended since: the view moves on all the same
    assert [p["start"] for p in quiet["points"]] == [5.0]
    assert quiet["rate_before"] == 0.0
    assert timeline.as_json(100.0)["points"] == []
    assert timeline.as_json(100.0)["rate_before"] == 0.5
    timeline.add(100.0, Result.SUCCESS, 3, 2 / 3)
    assert len(timeline.buckets) == 1  # the old ones are gone, not only hidden
    assert timeline.as_json(100.0)["rate_before"] == 0.5


def test_timeline_never_reorders_when_the_clock_steps_back():
    timeline = Timeline(seconds=5.0, buckets=3)
    timeline.add(50.0, Result.SUCCESS, 1, 1.0)
    timeline.add(20.0, Result.FAILURE, 1, 0.5)  # the wall clock was set back
    [bucket] = timeline.as_json(21.0)["points"]
    assert (bucket["start"], bucket["succeeded"], bucket["failed"]) == (50.0, 1, 1)


def test_health_timeline_is_in_the_report_at_the_summary_time():
    now = [1000.0]
    health = Health(HealthConfig(), clock=lambda: now[0])
    finish(health, ok(chunks=4))
    now[0] = 1003.0
    finish(health, failed())
    now[0] = 1007.0
    report = health.report()
    assert report["time"] == 1007.0
    timeline = report["timeline"]
    assert timeline["current"] == 1005.0
    assert timeline["points"] == [
        {
            "start": 1000.0,
            "succeeded": 1,
            "failed": 1,
            "cancelled": 0,
            "chunks": 6,
            "success_rate": 0.5,
        }
    ]


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
