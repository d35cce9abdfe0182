"""The relay bench's report (`bench/relay_bench.py`): the JSON document and the printed
table."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
from collections.abc import Callable
from typing import Any

from bench.relay_client import DIRECT
from bench.relay_goals import compare, goals
from bench.relay_measures import (
    CLIENT_BUSY,
    FAKE_CHUNKS,
    IDLE,
    LEVELS,
    STREAM_CHUNKS,
    STREAM_MODEL,
    TTFB_MODEL,
    Settings,
)
from bench.relay_run import BENCH_TIMEOUTS


def make_document(
    quick: bool,
    settings: Settings,
    wall: float,
    steal: tuple[tuple[int, int], tuple[int, int]],
    commands: list[str],
    fake_figures: dict[str, Any],
    results: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The whole report: the host, the settings, the fake's figures, the client's check, every
    path's figures, each proxy against the direct connection, and the goals. `steal` is the
    hypervisor's (steal, all) ticks before and after the run; `fake_figures` gets the fake's
    rate held against the goal."""
    steal_before, steal_after = steal
    ticks = max(1, steal_after[1] - steal_before[1])
    levels = [
        (name, level, row)
        for name, figures in results.items()
        for level, row in figures["throughput"].items()
    ]
    busiest = max(levels, key=lambda item: item[2]["client_cpu"])
    # The fake's rate for the goal: the lower of the big stream, whole (building its answer
    # included), and its chunks per CPU second serving 200-chunk streams directly.
    loaded = min(
        (row["fake_chunks_per_cpu_s"], level)
        for level, row in results[DIRECT]["throughput"].items()
        if row["fake_chunks_per_cpu_s"]
    )
    fake_figures["loaded_chunks_per_cpu_s"] = {"chunks": loaded[0], "at": int(loaded[1])}
    fake_figures["chunks_per_s"] = min(fake_figures["whole_chunks_per_s"], loaded[0])
    fake_figures["chunks_per_s_from"] = (
        f"{fake_figures['whole_chunks_per_s'] / 1000:.0f}k ({FAKE_CHUNKS // 1000}k stream) "
        f"and {loaded[0] / 1000:.0f}k (load)"
    )
    document: dict[str, Any] = {
        "generated": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        "wall_s": round(wall, 1),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "steal_share": round((steal_after[0] - steal_before[0]) / ticks, 4),
        },
        "settings": {
            "quick": quick,
            "ttfb_samples": settings.ttfb_samples,
            "ttfb_model": TTFB_MODEL,
            "stream_samples": settings.stream_samples,
            "stream_model": STREAM_MODEL,
            "seconds_per_level": settings.seconds,
            "levels": list(LEVELS),
            "proxy_timeouts": dataclasses.asdict(BENCH_TIMEOUTS),
            "commands": commands,
            "client": "one asyncio event loop, raw HTTP/1.1 keep-alive connections",
        },
        "fake_provider": fake_figures,
        "client_check": {
            "max_cpu": busiest[2]["client_cpu"],
            "where": f"{busiest[0]} at {busiest[1]}",
            "max_us_per_chunk": max(row["client_cpu_us_per_chunk"] for _, _, row in levels),
            "busy_limit": CLIENT_BUSY,
            "bound": any(row["client_bound"] for _, _, row in levels),
        },
        "paths": results,
        "vs_direct": {name: compare(results, name) for name in results if name != DIRECT},
    }
    document["goals"] = goals(document)
    return document


def table(document: dict[str, Any]) -> str:
    results, names = document["paths"], list(document["paths"])
    proxies = [name for name in names if name != DIRECT]
    vs = document["vs_direct"]
    label_w, width, versus_w = 34, 12, 30
    lines = [
        "".ljust(label_w)
        + "".join(name.rjust(width) for name in names)
        + "".join(f"{name} vs direct".rjust(versus_w) for name in proxies)
    ]

    def row(
        label: str, values: list[str], versus: Callable[[str], str | None] | None = None
    ) -> None:
        compared = [(versus(p) or "") if versus else "" for p in proxies]
        lines.append(
            label.ljust(label_w)
            + "".join(value.rjust(width) for value in values)
            + "".join(text.rjust(versus_w) for text in compared)
        )

    def each(figure: Callable[[dict[str, Any]], float], spec: str) -> list[str]:
        return [format(figure(results[name]), spec) for name in names]

    def cpu(name: str, level: str) -> str:
        parts = ("client_cpu", "fake_cpu", "proxy_cpu")
        got = results[name]["throughput"][level]
        return "/".join(f"{100 * got[part]:.0f}" if part in got else "-" for part in parts)

    row(
        "TTFB median, ms",
        each(lambda r: r["ttfb"]["median_ms"], ".3f"),
        lambda p: f"+{vs[p]['added_ttfb_median_ms']:.3f} ms ({vs[p]['ttfb_median_ratio']:.2f}x)",
    )
    row(
        "TTFB p99, ms",
        each(lambda r: r["ttfb"]["p99_ms"], ".3f"),
        lambda p: f"+{vs[p]['added_ttfb_p99_ms']:.3f} ms",
    )
    row(
        f"TTFB median after {1000 * IDLE:g} ms idle, ms",
        each(lambda r: r["ttfb_after_idle"]["median_ms"], ".3f"),
        lambda p: f"+{vs[p]['added_ttfb_after_idle_median_ms']:.3f} ms",
    )
    row(
        f"{STREAM_CHUNKS}-chunk stream median, ms",
        each(lambda r: r["stream"]["median_ms"], ".2f"),
        lambda p: f"+{vs[p]['added_stream_ms']:.2f} ms ({vs[p]['stream_ratio']:.2f}x)",
    )
    row(f"{STREAM_CHUNKS}-chunk stream p99, ms", each(lambda r: r["stream"]["p99_ms"], ".2f"))
    row(
        "per chunk, first to last byte, µs",
        each(lambda r: r["stream"]["per_event_us"], ".1f"),
        lambda p: f"+{vs[p]['added_per_chunk_us']:.1f} µs per chunk",
    )
    row(
        "gap between chunks, median µs",
        each(lambda r: r["stream"]["gap_median_us"] or 0.0, ".1f"),
        lambda p: f"(whole stream: +{vs[p]['added_per_chunk_total_us']:.1f} µs)",
    )
    for level in map(str, LEVELS):
        loads = [results[name]["throughput"][level] for name in names]
        share = {p: f"{vs[p]['throughput_ratio'][level]:.1%} of direct" for p in proxies}
        row(f"streams/s at {level}", [f"{got['streams_per_s']:,.1f}" for got in loads])
        row(f"chunks/s at {level}", [f"{got['chunks_per_s']:,.0f}" for got in loads], share.get)
    for level in map(str, LEVELS):
        row(f"CPU % at {level}: client/fake/proxy", [cpu(name, level) for name in names])
    row(
        "proxy CPU s per 1,000 chunks",
        ["-"] + [f"{results[p]['proxy']['cpu_s_per_1k_chunks']:.4f}" for p in proxies],
        lambda p: (
            "by level: "
            + "/".join(
                f"{results[p]['throughput'][str(level)]['proxy_cpu_s_per_1k_chunks']:.3f}"
                for level in LEVELS
            )
        ),
    )
    row(
        "proxy peak RSS, MiB",
        ["-"] + [f"{results[p]['proxy']['peak_rss_mib']:.1f}" for p in proxies],
    )
    fake, client = document["fake_provider"], document["client_check"]
    lines += [
        "",
        f"fake provider alone ({'pinned to one core, ' if fake['pinned_to_one_core'] else ''}"
        f"one stream of {fake['events']:,} chunks): {fake['whole_chunks_per_s']:,} chunks/s "
        f"whole ({fake['first_byte_ms']:.0f} ms building the answer, then "
        f"{fake['serving_chunks_per_s']:,}/s serving it; reader busy "
        f"{100 * fake['reader_cpu_share']:.0f}%)",
        "fake provider serving 200-chunk streams directly: "
        + ", ".join(
            f"{row['fake_chunks_per_cpu_s']:,} chunks per CPU second at {level}"
            for level, row in results[DIRECT]["throughput"].items()
        ),
        f"client check: at most {100 * client['max_cpu']:.0f}% of a core ({client['where']}), "
        f"at most {client['max_us_per_chunk']:.1f} µs CPU per chunk: "
        + ("POSSIBLY CLIENT-BOUND" if client["bound"] else "not the bottleneck"),
        *(
            f"FAILED streams: {row['failed_streams']} on {name} at {level}: {row['failures']}"
            for name in names
            for level, row in results[name]["throughput"].items()
            if row["failed_streams"]
        ),
        "",
        f"{'goal':<44} {'measured':>14} {'target':>14}  met",
    ]
    for goal in document["goals"]:
        sign = "≤" if goal["at_most"] else "≥"
        value, target = goal["measured"], goal["target"]
        if goal["unit"] == "":
            shown, wanted = f"{100 * value:.1f}%", f"{sign} {100 * target:.0f}%"
        elif goal["unit"] == "chunks/s":
            shown, wanted = f"{value:,.0f}/s", f"{sign} {target:,.0f}/s"
        else:
            shown, wanted = f"{value:.2f} {goal['unit']}", f"{sign} {target:g} {goal['unit']}"
        met = "yes" if goal["met"] else "NO"
        lines.append(f"{goal['goal']:<44} {shown:>14} {wanted:>14}  {met}")
    return "\n".join(lines)
