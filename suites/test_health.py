"""Group 5 — recovery, continued: what the proxy says about its streams.

A proxy that recovers well must also tell its operator what happened: its health report,
its metrics and its log must agree with what each client saw, and its alerts must fire
exactly at their thresholds (docs/design.md; the seed's "Stream Health Monitoring"). The report's
shape is the reference proxy's (docs/reference-proxy.md, "Health and alerts"); a target that
does not offer it has these cases skipped.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamproof.harness import Exchange, Judge, SystemUnderTest, case, checks
from streamproof.harness.upstream import (
    CloseAfter,
    Malformed,
    ResetAfter,
    Scenario,
    StallAfter,
    Status,
    UpstreamError,
)

HEALTH = "streamproof policy: stream health (the seed's StreamHealthMonitor, done right)"

# What happened, and how the reference proxy's report names it.
OUTCOMES = [
    pytest.param(Scenario(chunks=6), "success", None, id="success"),
    pytest.param(Scenario(chunks=6, faults=(ResetAfter(3),)), "failure", "ReadError", id="reset"),
    pytest.param(Scenario(chunks=6, faults=(StallAfter(3),)), "failure", "ReadTimeout", id="stall"),
    pytest.param(
        Scenario(chunks=6, faults=(CloseAfter(3),)), "failure", "IncompleteStream", id="truncated"
    ),
    pytest.param(
        Scenario(chunks=6, faults=(Malformed(3),)), "failure", "MalformedStream", id="malformed"
    ),
    pytest.param(
        Scenario(chunks=6, faults=(UpstreamError(3, "object"),)),
        "failure",
        "UpstreamError",
        id="error-event",
    ),
    pytest.param(
        Scenario(chunks=6, faults=(Status(500),)), "failure", "HTTPStatusError", id="http-500"
    ),
]


@case(
    "5.28",
    "The health report counts each request once, with its real outcome",
    requirement="Stream health: totals, successes, failures by error class and chunks per "
    "stream, as they really were: a failure is never counted as a success, nor twice.",
    source=HEALTH,
    expected="one more request of the right result and error class, and a record of it "
    "with the status and chunk count the client saw",
)
@pytest.mark.parametrize(("scenario", "result", "error_class"), OUTCOMES)
def test_health_report_agrees(
    sut: SystemUnderTest,
    judge: Judge,
    scenario: Scenario,
    result: str,
    error_class: str | None,
) -> None:
    sut.needs("health")
    before = sut.settled_health()
    x = sut.chat(scenario)
    judge.saw(x)
    after = sut.settled_health()
    judge.check(
        checks.counts_agree(before, after, result, error_class),
        checks.record_agrees(_record(after, x), x, result, error_class),
    )


def _record(report: dict[str, Any], x: Exchange) -> dict[str, Any] | None:
    return next((r for r in report.get("recent", []) if r.get("model") == x.scenario.model), None)


@case(
    "5.29",
    "/metrics shows the numbers /health shows",
    requirement="GET /metrics exposes the health report in Prometheus format: the same "
    "requests by result and failures by error class.",
    source=HEALTH,
    expected="requests by result and failures by class equal in both, read at a quiet moment",
)
def test_metrics_agree_with_health(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("health", "metrics")
    x = sut.chat(Scenario(chunks=6, faults=(ResetAfter(3),)))
    judge.saw(x)
    # A quiet moment: the same report before and after reading the metrics.
    for _ in range(20):
        report = sut.settled_health()
        exposition = sut.metrics()
        if sut.settled_health()["requests"] == report["requests"]:
            break
    judge.check(checks.metrics_agree(report, exposition))


@case(
    "5.30",
    "The log has one line per request, naming its error class",
    requirement="One log line per stream outcome naming the error class, so that `grep -i "
    '"readerror\\|connection\\|reset"` finds the resets.',
    source=HEALTH,
    expected="exactly one line names the request; it names the error class of a failure, "
    "and none for a success",
)
@pytest.mark.parametrize(("scenario", "result", "error_class"), OUTCOMES[:2] + OUTCOMES[-1:])
def test_log_line(
    sut: SystemUnderTest,
    judge: Judge,
    scenario: Scenario,
    result: str,
    error_class: str | None,
) -> None:
    sut.needs("config")
    x = sut.chat(scenario)
    judge.saw(x)
    judge.check(checks.log_line_names(sut.log_lines(x), error_class))


FAIL = Scenario(chunks=6, faults=(ResetAfter(2),))


@case(
    "5.31",
    "The consecutive-failures alert fires exactly at its threshold, and clears",
    requirement="An alert for consecutive failures at the configured threshold: raised when "
    "the run of failures reaches it, not before; cleared by a success.",
    source=HEALTH,
    expected="no alert after threshold-1 failures, the alert after the threshold-th, none "
    "after a success",
)
def test_alert_consecutive_failures(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("health", "config")
    threshold = sut.thresholds.max_consecutive_failures
    with sut.fresh() as fresh:
        for n in range(1, threshold + 1):
            judge.saw(fresh.chat(FAIL))
            report = fresh.settled_health()
            judge.check(
                checks.alert_is(report, "consecutive_failures", n >= threshold, f"{n} failures")
            )
        judge.saw(fresh.chat(Scenario(chunks=6)))
        judge.check(
            checks.alert_is(fresh.settled_health(), "consecutive_failures", False, "a success")
        )


@case(
    "5.32",
    "The low-success-rate alert fires below its threshold, not at it",
    requirement="An alert when the success rate falls below the configured minimum, once "
    "there are enough requests to judge; never a division by zero before the first request.",
    source=HEALTH,
    expected="no rate and no alert at first; no alert exactly at the threshold; the alert "
    "once below it; cleared when the rate recovers",
)
def test_alert_success_rate(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("health", "config")
    t = sut.thresholds
    with sut.fresh() as fresh:
        judge.check(checks.rate_is_none(fresh.settled_health()))
        succeeded = failed = 0
        # Alternate so that a run of failures never reaches its own alert's threshold.
        plan = ["ok", "fail"] * t.min_requests + ["fail", "ok", "ok", "ok"]
        for step in plan:
            x = fresh.chat(FAIL if step == "fail" else Scenario(chunks=6))
            judge.saw(x)
            succeeded, failed = succeeded + (step == "ok"), failed + (step == "fail")
            total = succeeded + failed
            below = total >= t.min_requests and succeeded / total < t.min_success_rate
            judge.check(
                checks.alert_is(
                    fresh.settled_health(),
                    "low_success_rate",
                    below,
                    f"{succeeded} successes of {total}",
                )
            )


@case(
    "5.33",
    "The few-chunks alert fires below its threshold, not at it",
    requirement="An alert when successful streams carry too few chunks on average (the "
    "configured minimum), judged on what the clients received.",
    source=HEALTH,
    expected="the alert exactly when the average chunks per successful stream, as the "
    "clients counted them, is below the threshold",
)
def test_alert_few_chunks(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("health", "config")
    t = sut.thresholds
    with sut.fresh() as fresh:
        counts: list[int] = []
        for chunks in [4] * t.min_requests + [1, 12]:
            x = fresh.chat(Scenario(chunks=chunks))
            judge.saw(x)
            counts.append(checks.chunks_received(x))
            average = sum(counts) / len(counts)
            below = len(counts) >= t.min_requests and average < t.min_chunks_per_stream
            judge.check(
                checks.alert_is(
                    fresh.settled_health(),
                    "few_chunks",
                    below,
                    f"{len(counts)} streams, {average:.2f} chunks on average",
                )
            )
