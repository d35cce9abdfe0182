"""The relay bench's report (`bench/relay_bench.py`): the JSON document and the printed
table."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
from collections.abc import Callable
from functools import partial
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
    sessions: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    """The whole report: the host, the settings, the fake's figures, the client's check, each
    session's figures (its proxy's and the direct path's), each proxy against the direct path
    of its session, and the goals. `steal` is the hypervisor's (steal, all) ticks before and
    after the run; `fake_figures` gets the fake's rate held against the goal."""
    steal_before, steal_after = steal
    ticks = max(1, steal_after[1] - steal_before[1])
    levels = [
        (f"{name} ({session})" if name == DIRECT else name, level, row)
        for session, paths in sessions.items()
        for name, figures in paths.items()
        for level, row in figures["throughput"].items()
    ]
    busiest = max(levels, key=lambda item: item[2]["client_cpu"])
    # The fake's rate for the goal: the lower of the big stream, whole (building its answer
    # included), and its chunks per CPU second serving 200-chunk streams directly, at the
    # level and in the session where it was lowest.
    loaded = min(
        (row["fake_chunks_per_cpu_s"], level)
        for paths in sessions.values()
        for level, row in paths[DIRECT]["throughput"].items()
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
            "sessions": "one per proxy, in this order, the others stopped; each proxy "
            "against the direct path measured in its own session",
        },
        "fake_provider": fake_figures,
        "client_check": {
            "max_cpu": busiest[2]["client_cpu"],
            "where": f"{busiest[0]} at {busiest[1]}",
            "max_us_per_chunk": max(row["client_cpu_us_per_chunk"] for _, _, row in levels),
            "busy_limit": CLIENT_BUSY,
            "bound": any(row["client_bound"] for _, _, row in levels),
        },
        "sessions": sessions,
        "vs_direct": {name: compare(paths, name) for name, paths in sessions.items()},
    }
    document["goals"] = goals(document)
    return document


def table(document: dict[str, Any]) -> str:
    """One column per proxy: first what it adds to (or keeps of) the direct path of its own
    session, then its figures as measured beside that direct path's."""
    sessions, vs = document["sessions"], document["vs_direct"]
    proxies = list(sessions)
    label_w, width = 36, 22
    lines = ["".ljust(label_w) + "".join(name.rjust(width) for name in proxies)]

    def row(label: str, cell: Callable[[str], str]) -> None:
        lines.append(label.ljust(label_w) + "".join(cell(p).rjust(width) for p in proxies))

    def both(figure: Callable[[dict[str, Any]], float], spec: str) -> Callable[[str], str]:
        """A proxy's figure and, after it, the direct path's of its session."""

        def cell(p: str) -> str:
            mine, direct = sessions[p][p], sessions[p][DIRECT]
            return f"{format(figure(mine), spec)} | {format(figure(direct), spec)}"

        return cell

    def cpu(p: str, level: str) -> str:
        got = sessions[p][p]["throughput"][level]
        return "/".join(
            f"{100 * got[part]:.0f}" for part in ("client_cpu", "fake_cpu", "proxy_cpu")
        )

    lines.append("against the direct path of its session")
    row("added TTFB median, ms", lambda p: f"{vs[p]['added_ttfb_median_ms']:+.3f}")
    row("added TTFB p99, ms", lambda p: f"{vs[p]['added_ttfb_p99_ms']:+.3f}")
    row(
        f"added TTFB after {1000 * IDLE:g} ms idle, median",
        lambda p: f"{vs[p]['added_ttfb_after_idle_median_ms']:+.3f}",
    )
    row("added per chunk, µs", lambda p: f"{vs[p]['added_per_chunk_us']:+.1f}")
    row(
        f"added per chunk, whole {STREAM_CHUNKS}-chunk, µs",
        lambda p: f"{vs[p]['added_per_chunk_total_us']:+.1f}",
    )

    def share(p: str, level: str) -> str:
        return f"{vs[p]['throughput_ratio'][level]:.1%}"

    def chunks_per_s(figures: dict[str, Any], level: str) -> float:
        return float(figures["throughput"][level]["chunks_per_s"])

    for level in map(str, LEVELS):
        row(f"chunks/s at {level}, share of direct", partial(share, level=level))
    row(
        "proxy CPU s per 1,000 chunks",
        lambda p: f"{sessions[p][p]['proxy']['cpu_s_per_1k_chunks']:.4f}",
    )
    row(
        "  by level (1/20/100)",
        lambda p: "/".join(
            f"{sessions[p][p]['throughput'][str(level)]['proxy_cpu_s_per_1k_chunks']:.4f}"
            for level in LEVELS
        ),
    )
    row("proxy peak RSS, MiB", lambda p: f"{sessions[p][p]['proxy']['peak_rss_mib']:.1f}")
    lines.append("as measured: proxied | direct of its session")
    row("TTFB median, ms", both(lambda r: r["ttfb"]["median_ms"], ".3f"))
    row("TTFB p99, ms", both(lambda r: r["ttfb"]["p99_ms"], ".3f"))
    row(
        f"TTFB after {1000 * IDLE:g} ms idle, median, ms",
        both(lambda r: r["ttfb_after_idle"]["median_ms"], ".3f"),
    )
    row(f"{STREAM_CHUNKS}-chunk stream median, ms", both(lambda r: r["stream"]["median_ms"], ".2f"))
    row(f"{STREAM_CHUNKS}-chunk stream p99, ms", both(lambda r: r["stream"]["p99_ms"], ".2f"))
    row("per chunk, first to last byte, µs", both(lambda r: r["stream"]["per_event_us"], ".1f"))
    row("gap between chunks, median µs", both(lambda r: r["stream"]["gap_median_us"] or 0.0, ".1f"))
    for level in map(str, LEVELS):
        row(f"chunks/s at {level}", both(partial(chunks_per_s, level=level), ",.0f"))
    for level in map(str, LEVELS):
        row(f"CPU % at {level}: client/fake/proxy", partial(cpu, level=level))
    fake, client = document["fake_provider"], document["client_check"]
    lines += [
        "",
        f"fake provider alone ({'pinned to one core, ' if fake['pinned_to_one_core'] else ''}"
        f"one stream of {fake['events']:,} chunks): {fake['whole_chunks_per_s']:,} chunks/s "
        f"whole ({fake['first_byte_ms']:.0f} ms building the answer, then "
        f"{fake['serving_chunks_per_s']:,}/s serving it; reader busy "
        f"{100 * fake['reader_cpu_share']:.0f}%)",
        "fake provider serving 200-chunk streams directly, chunks per CPU second at "
        + "/".join(map(str, LEVELS))
        + ": "
        + "; ".join(
            f"{p} session "
            + "/".join(
                f"{row['fake_chunks_per_cpu_s'] or 0:,}"
                for row in sessions[p][DIRECT]["throughput"].values()
            )
            for p in proxies
        ),
        f"client check: at most {100 * client['max_cpu']:.0f}% of a core ({client['where']}), "
        f"at most {client['max_us_per_chunk']:.1f} µs CPU per chunk: "
        + ("POSSIBLY CLIENT-BOUND" if client["bound"] else "not the bottleneck"),
        *(
            f"FAILED streams: {row['failed_streams']} on {name} at {level} "
            f"({p} session): {row['failures']}"
            for p in proxies
            for name, figures in sessions[p].items()
            for level, row in figures["throughput"].items()
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
        lines.append(f"{goal['goal']:<44} {shown:>14} {wanted:>14}  {met}  {goal['note']}")
    return "\n".join(lines)
