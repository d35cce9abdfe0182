"""The chaos soak's report (`bench/soak.py`): the JSON document, the printed summary, and a
replayed stream shown from both sides."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from bench.soak_checks import RSS_LIMIT_MIB, SHAPES
from bench.soak_client import Stream
from bench.soak_schedules import Schedule, fault_kind
from streamproof.fake_providers.scenario import Scenario
from streamproof.harness.sut import Exchange

if TYPE_CHECKING:  # the run builds its report here: only its types, for the annotations
    from bench.soak_run import Options, Run

KEPT_PER_CHECK = 100  # violations of each check in the report; all are counted
SHOWN_PER_CHECK = 3  # violations printed per check; the report has them all (to a bound)
BUCKET = 1.0  # seconds per point of the timeline


def make_document(
    options: Options,
    schedules: list[Schedule],
    soak: Run,
    streams: list[Stream],
    violations: list[dict[str, Any]],
    notes: list[dict[str, Any]],
    *,
    warming: Run,
    fds: tuple[dict[str, int], dict[str, int]],
    memory: tuple[dict[str, int], dict[str, int], int, str],
    health: tuple[dict[str, int] | None, dict[str, int] | None, dict[str, int] | None],
) -> dict[str, Any]:
    ran = [s.schedule for s in streams]
    scheduled = Counter(fault_kind(f.token) for s in ran for f in s.scenario.faults)
    fired = Counter(
        fault_kind(token) for s in streams for a in s.journal.attempts for token in a.faults
    )
    results = Counter(s.result for s in streams)
    statuses = Counter(str(s.transcript.status) for s in streams if s.result == "http_error")
    attempts = [len(s.journal.attempts) for s in streams]
    endings = Counter(str(a.ending) for s in streams for a in s.journal.attempts)
    memory_before, memory_after, peak, peak_how = memory
    by_check = Counter(v["check"] for v in violations)
    # Each stream's violations by the faults its upstream was scheduled: the mechanism.
    by_fault: dict[str, Counter[str]] = {}
    for v in violations:
        if "model" in v:
            faults = Scenario.parse(v["model"]).faults
            shown = {fault_kind(f.token) for f in faults if f.stage < SHAPES}  # not the shapes
            kinds = " + ".join(sorted(shown)) or "no fault"
            by_fault.setdefault(v["check"], Counter())[kinds] += 1
    notes_by_check = Counter(v["check"] for v in notes)
    profile, timeouts = options.profile, options.timeouts
    return {
        "target": {
            "name": profile.name,
            "command": profile.command,
            "description": profile.description,
            "offers": sorted(profile.offers.names),
            "timers": timeouts.describe(),
            "strict": options.strict,
            "args": options.target_args.strip(),
        },
        "seed": options.seed,
        "again": f"python {options.command} --seed {options.seed} --streams "
        f"{options.streams} --concurrency {options.concurrency}{options.target_args}",
        "streams_planned": len(schedules),
        "streams": len(streams),
        "concurrency": options.concurrency,
        "max_seconds": options.max_seconds,
        "stopped_early": soak.stopped_early,
        "wall_s": round(soak.wall, 2),
        "streams_per_s": round(len(streams) / soak.wall, 1) if soak.wall else None,
        "warmup": {"streams": len(warming.streams), "wall_s": round(warming.wall, 2)},
        "proxy_timeouts": {
            "connect": timeouts.connect,
            "first_byte": timeouts.first_byte,
            "idle": timeouts.idle,
            "total": timeouts.total,
        },
        "faults_scheduled": dict(scheduled.most_common()),
        "faults_fired": dict(fired.most_common()),
        "first_k": dict(Counter(str(s.scenario.first) for s in ran).most_common()),
        "client_behaviour": dict(
            Counter(
                "leave after N events"
                if s.leave_after_events is not None
                else "give up without headers"
                if s.leave_before_response is not None
                else "read to the end"
                for s in ran
            ).most_common()
        ),
        "outcomes": {
            "success": results["success"],
            "http_error": results["http_error"],
            "http_error_by_status": dict(sorted(statuses.items())),
            "in_band_error": results["error"],
            "aborted": results["aborted"],
            "left": results["left"],
            "broken": results["broken"],
        },
        "latency": latency(streams),
        "upstream": {
            "attempts": sum(attempts),
            "attempts_per_stream_max": max(attempts, default=0),
            "endings": dict(endings.most_common()),
        },
        "health": {"before": health[0], "after": health[1], "delta": health[2]},
        "fds": {"baseline": fds[0], "after": fds[1]},
        "rss": {
            "baseline_mib": round(memory_before["VmRSS"] / 1024, 1),
            "peak_mib": round(peak / 1024, 1),
            "growth_mib": round((peak - memory_before["VmRSS"]) / 1024, 1),
            "after_mib": round(memory_after["VmRSS"] / 1024, 1),
            "limit_mib": RSS_LIMIT_MIB,
            "peak_from": peak_how,
        },
        "timeline": timeline(soak, streams),
        "violations_by_check": dict(by_check.most_common()),
        "violations_by_fault": {
            check: dict(found.most_common()) for check, found in by_fault.items()
        },
        "violation_count": len(violations),
        "violations": _kept(violations),
        "notes_by_check": dict(notes_by_check.most_common()),
        "note_count": len(notes),
        "notes": _kept(notes),
        "ok": not violations,
    }


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 2)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {"p50_ms": _ms(rank(0.5)), "p90_ms": _ms(rank(0.9)), "p99_ms": _ms(rank(0.99))}


def _first_byte(stream: Stream) -> float | None:
    t = stream.transcript
    return t.chunks[0].at - t.sent_at if t.chunks else None


def _ended(stream: Stream) -> float:
    t = stream.transcript
    return t.ended_at if t.ended_at is not None else t.sent_at


def latency(streams: list[Stream]) -> dict[str, Any]:
    """Time to the first byte of the body and to the end, over the streams read to the end."""
    read = [s for s in streams if s.result != "left"]
    first = [f for s in read if (f := _first_byte(s)) is not None]
    return {
        "first_byte": _percentiles(first),
        "whole_stream": _percentiles([_ended(s) - s.transcript.sent_at for s in read]),
    }


def timeline(soak: Run, streams: list[Stream]) -> dict[str, Any]:
    """The soak over time, for the report's plots: per BUCKET seconds, the streams that
    ended by result and their latency percentiles; and the target's processes as sampled."""
    if not streams:
        return {"bucket_s": BUCKET, "buckets": [], "samples": soak.samples}
    by_bucket: dict[int, list[Stream]] = {}
    for s in streams:
        by_bucket.setdefault(int((_ended(s) - soak.started) / BUCKET), []).append(s)
    buckets = []
    for number in range(max(by_bucket) + 1):
        ended = by_bucket.get(number, [])
        first = [f for s in ended if s.result != "left" and (f := _first_byte(s)) is not None]
        buckets.append(
            {
                "t": round(number * BUCKET, 3),
                "ended": len(ended),
                "results": dict(Counter(s.result for s in ended)),
                "first_byte": _percentiles(first),
            }
        )
    return {"bucket_s": BUCKET, "buckets": buckets, "samples": soak.samples}


def _kept(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: Counter[str] = Counter()
    kept = []
    for v in violations:
        seen[v["check"]] += 1
        if seen[v["check"]] <= KEPT_PER_CHECK:
            kept.append(v)
    return kept


def summary(document: dict[str, Any]) -> str:
    d = document
    target = d["target"]
    latency = d["latency"]
    first = latency["first_byte"] or {}
    lines = [
        f"target {target['name']} ({'strict' if target['strict'] else 'harms only'}; timers "
        f"{target['timers']}; offers {', '.join(target['offers']) or 'none'})",
        f"streams {d['streams']} of {d['streams_planned']} (seed {d['seed']}, concurrency "
        f"{d['concurrency']}{', stopped at --max-seconds' if d['stopped_early'] else ''}); "
        f"wall {d['wall_s']:.1f} s, {d['streams_per_s']} streams/s",
        "faults fired (attempts): " + ", ".join(f"{k} {v}" for k, v in d["faults_fired"].items()),
        "faults scheduled (streams): "
        + ", ".join(f"{k} {v}" for k, v in d["faults_scheduled"].items()),
        "first-K: " + ", ".join(f"{k} {v}" for k, v in d["first_k"].items()),
        "clients: " + ", ".join(f"{k} {v}" for k, v in d["client_behaviour"].items()),
        "outcomes: "
        + ", ".join(f"{k} {v}" for k, v in d["outcomes"].items() if not isinstance(v, dict))
        + f" (HTTP {d['outcomes']['http_error_by_status']})",
        f"first byte: p50 {first.get('p50_ms')} ms, p99 {first.get('p99_ms')} ms",
        f"upstream: {d['upstream']['attempts']} attempts, endings {d['upstream']['endings']}",
        f"health delta: {d['health']['delta'] or 'not offered'}",
        f"fds: baseline {d['fds']['baseline']}, after {d['fds']['after']}",
        f"RSS: baseline {d['rss']['baseline_mib']} MiB, peak {d['rss']['peak_mib']} MiB "
        f"(+{d['rss']['growth_mib']} MiB, limit {d['rss']['limit_mib']:g}), after "
        f"{d['rss']['after_mib']} MiB",
        f"notes (what a careful proxy avoids): {d['note_count']}"
        + (f" {d['notes_by_check']}" if d["note_count"] else ""),
        f"violations: {d['violation_count']}"
        + (f" {d['violations_by_check']}" if d["violation_count"] else ""),
    ]
    shown: Counter[str] = Counter()
    for v in d["violations"]:
        shown[v["check"]] += 1
        if shown[v["check"]] > SHOWN_PER_CHECK:
            continue
        where = f"seed {v['seed']} index {v['index']}" if "index" in v else "global"
        lines.append(f"  {v['check']} [{where}]: {v['detail']}")
        if "model" in v:
            lines.append(f"    model {v['model']}; client: {v['client']}; {v['replay']}")
        if "rerun" in v:
            lines.append(f"    the whole run again: {v['rerun']}")
    return "\n".join(lines)


def describe(stream: Stream) -> str:
    x = Exchange(stream.schedule.scenario, stream.transcript, stream.journal)
    return f"client: {stream.schedule.client}; result {stream.result}\n{x.describe()}"
