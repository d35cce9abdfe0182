"""Checks of what a proxy says about its streams: its health report, metrics and log line,
and the seed dashboard's `/api/chat` dialect.

The report's shape is the reference proxy's (`GET /health`: `requests`, `failures_by_class`,
`alerts`, and `recent`, one record per request naming its model); a target offers it or the
cases that read it are skipped.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streamproof.harness.checks._words import _difference, _ending, _first
from streamproof.harness.sut import Exchange
from streamproof.harness.transcript import DONE
from streamproof.harness.verdict import Finding

METRIC_PREFIX = "streamproof_proxy"


def chunks_received(x: Exchange) -> int:
    """The chat chunks (JSON objects with `choices`) the client got, usage chunks included."""
    return len(x.transcript.chat_chunks)


def record_agrees(
    record: dict[str, Any] | None,
    x: Exchange,
    result: str,
    error_class: str | None,
) -> Finding:
    """The request's record says what happened: result, error class, status and the chunks
    the client really got."""
    want = f"a record: {result}" + (f", {error_class}" if error_class else "")
    if record is None:
        return Finding(False, want, "no record of this request in the health report")
    status = x.transcript.status
    chunks = chunks_received(x)
    got = (record.get("result"), record.get("error_class"), record.get("status"))
    ok = got == (result, error_class, status) and record.get("chunks") == chunks
    observed = (
        f"result {got[0]}, error class {got[1]}, status {got[2]}, chunks {record.get('chunks')}"
        f" (the client got status {status} and {chunks} chunks)"
    )
    return Finding(ok, want, observed)


def counts_agree(
    before: dict[str, Any], after: dict[str, Any], result: str, error_class: str | None
) -> Finding:
    """Between two reports around one request, its result was counted once, and only it."""
    key = {"success": "succeeded", "failure": "failed", "cancelled": "cancelled"}[result]
    delta = {
        name: after["requests"][name] - before["requests"][name]
        for name in ("succeeded", "failed", "cancelled", "total")
    }
    by_class = {
        name: count - before["failures_by_class"].get(name, 0)
        for name, count in after["failures_by_class"].items()
        if count != before["failures_by_class"].get(name, 0)
    }
    want_classes = {error_class: 1} if result == "failure" and error_class else {}
    ok = delta[key] == 1 and delta["total"] == 1 and by_class == want_classes
    observed = f"counted {delta}, failures by class {by_class or 'unchanged'}"
    return Finding(
        ok, f"one more {key} request" + (f" ({error_class})" if want_classes else ""), observed
    )


def metrics_agree(report: dict[str, Any], exposition: str) -> Finding:
    """`/metrics` shows the numbers `/health` shows: requests by result, failures by class."""
    what = "/metrics agrees with /health"
    try:
        families = {f.name: f for f in text_string_to_metric_families(exposition)}
    except ValueError as exc:
        return Finding(False, what, f"/metrics is not Prometheus text: {exc}")
    requests = _samples(families.get(f"{METRIC_PREFIX}_requests"), "result")
    failures = _samples(families.get(f"{METRIC_PREFIX}_failures"), "error_class")
    want_requests = {
        "success": report["requests"]["succeeded"],
        "failure": report["requests"]["failed"],
        "cancelled": report["requests"]["cancelled"],
    }
    want_failures = {name: count for name, count in report["failures_by_class"].items() if count}
    got_failures = {name: count for name, count in failures.items() if count}
    ok = requests == want_requests and got_failures == want_failures
    observed = f"requests {requests} vs {want_requests}; failures {got_failures} vs {want_failures}"
    return Finding(ok, what, observed)


def _samples(family: Any, label: str) -> dict[str, int]:
    if family is None:
        return {}
    return {
        sample.labels[label]: int(sample.value)
        for sample in family.samples
        if sample.name.endswith("_total") and label in sample.labels
    }


def log_line_names(lines: list[str], error_class: str | None) -> Finding:
    """Exactly one line tells the request's outcome, naming its error class (none for a
    success), so `grep -i readerror` finds the failures and only them."""
    want = "one log line for the request" + (f", naming {error_class}" if error_class else "")
    if len(lines) != 1:
        tails = [line[-120:] for line in lines]
        return Finding(False, want, f"{len(lines)} line(s) name the request{_first(tails)}")
    line = lines[0].lower()
    if error_class is None:
        named = [c for c in ("readerror", "timeout", "connecterror", "error ") if c in line]
        return Finding(not named, want, f"the line: {lines[0][-160:]!r}")
    ok = error_class.lower() in line
    return Finding(ok, want, f"the line: {lines[0][-160:]!r}")


def alert_is(report: dict[str, Any], name: str, active: bool, after: str) -> Finding:
    """The named alert is raised, or not, as the thresholds say it must be."""
    alerts = [alert.get("name") for alert in report.get("alerts", [])]
    raised = name in alerts
    want = f"{name} {'raised' if active else 'not raised'} after {after}"
    rate, run = report.get("success_rate"), report.get("consecutive_failures")
    observed = (
        f"alerts: {', '.join(map(str, alerts)) or 'none'} (success rate {rate}, "
        f"{run} consecutive failures, {report.get('chunks', {}).get('average_per_stream')} "
        "chunks per stream)"
    )
    return Finding(raised == active, want, observed)


def rate_is_none(report: dict[str, Any]) -> Finding:
    """Before any request there is no success rate: not 0, not 100 %, not a crash."""
    rate = report.get("success_rate", "missing")
    return Finding(rate is None, "no success rate before any request", f"success rate {rate!r}")


def _simple_texts(x: Exchange) -> tuple[list[str], bool]:
    """The texts of the `{"chunk": text}` events, and whether every other event but a final
    `[DONE]` or error event had that shape."""
    texts: list[str] = []
    shaped = True
    for _, payload in x.transcript.payloads:
        if isinstance(payload, dict) and isinstance(payload.get("chunk"), str):
            texts.append(payload["chunk"])
        elif not (isinstance(payload, dict) and "error" in payload) and payload is not DONE:
            shaped = False
    return texts, shaped


def simple_chunks_intact(x: Exchange) -> Finding:
    """The `/api/chat` dialect: `{"chunk": text}` events whose texts join into the whole
    answer, then `[DONE]`."""
    t = x.transcript
    texts, shaped = _simple_texts(x)
    events = [timed.event.data for timed in t.events]
    done = bool(events) and events[-1] == "[DONE]" and t.done_count == 1
    got, want = "".join(texts), x.expected_content
    ok = shaped and done and got == want
    observed = (
        f"{len(texts)} chunk events ({'all' if shaped else 'not all'} shaped), "
        f"{'ends' if done else 'does not end'} with one [DONE]; text: {_difference(want, got)}"
        f"{_ending(t)}"
    )
    return Finding(ok, 'data: {"chunk": ...} events with the whole answer, then [DONE]', observed)


def simple_nothing_replayed(x: Exchange) -> Finding:
    """The `/api/chat` texts are a prefix of what the upstream sent once."""
    texts, _ = _simple_texts(x)
    got, want = "".join(texts), x.upstream_content
    ok = want.startswith(got)
    return Finding(
        ok,
        "no content replayed",
        _difference(want, got) if not ok else f"the first {len(got)} chars",
    )
