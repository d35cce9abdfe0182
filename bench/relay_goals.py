"""The relay bench's checks (`bench/relay_bench.py`): each proxied path against the direct
connection of its own session, and the issue's goals against the figures.

The goals of the reference proxy against the direct connection (GOALS) hold in every run.
Those against a peer (PEER_GOALS) are checked when that peer was measured in the same run:
against nginx, a plain reverse proxy in C, what the reference proxy costs is held to a
small multiple of the least a proxy can cost here; against LiteLLM, a Python proxy of the
same purpose, to a fraction of it. Each compares two figures of one run, each proxy's taken
against the direct path of its own session, never figures of two runs.
"""

from __future__ import annotations

from typing import Any

from bench.relay_client import DIRECT, REFERENCE
from bench.relay_measures import STREAM_CHUNKS

GOALS = {  # the goals for the reference proxy against the direct connection
    "added_ttfb_median_ms": 1.0,
    "added_per_chunk_us": 30.0,
    "throughput_20_ratio": 0.5,
    "fake_chunks_per_s": 50_000.0,
    "peak_rss_mib": 50.0,
}
PEER_GOALS = {  # and against peers measured in the same run
    "cpu_vs_nginx": 1.5,  # its CPU per 1,000 chunks at most 1.5x nginx's
    "ttfb_vs_nginx_ms": 0.3,  # its added TTFB median at most 0.3 ms more than nginx's
    "cpu_below_litellm": 20.0,  # its CPU per 1,000 chunks at least 20x below LiteLLM's
}


def compare(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """A proxied path's figures against the direct connection's."""
    mine, direct = results[name], results[DIRECT]
    body = mine["stream"]["body_median_ms"] - direct["stream"]["body_median_ms"]
    total = mine["stream"]["median_ms"] - direct["stream"]["median_ms"]
    gaps = max(1, direct["stream"]["events"] - 1)
    ratios = {
        level: round(row["chunks_per_s"] / direct["throughput"][level]["chunks_per_s"], 4)
        for level, row in mine["throughput"].items()
    }
    return {
        "added_ttfb_median_ms": round(mine["ttfb"]["median_ms"] - direct["ttfb"]["median_ms"], 4),
        "added_ttfb_p99_ms": round(mine["ttfb"]["p99_ms"] - direct["ttfb"]["p99_ms"], 4),
        "ttfb_median_ratio": round(mine["ttfb"]["median_ms"] / direct["ttfb"]["median_ms"], 2),
        "added_ttfb_after_idle_median_ms": round(
            mine["ttfb_after_idle"]["median_ms"] - direct["ttfb_after_idle"]["median_ms"], 4
        ),
        "added_stream_ms": round(total, 3),
        "stream_ratio": round(mine["stream"]["median_ms"] / direct["stream"]["median_ms"], 2),
        "added_per_chunk_us": round(1000 * body / gaps, 2),
        "added_per_chunk_total_us": round(1000 * total / STREAM_CHUNKS, 2),
        "throughput_ratio": ratios,
    }


def _goal(
    label: str, key: str, value: float, unit: str, target: float, at_most: bool, note: str
) -> dict[str, Any]:
    met = value <= target if at_most else value >= target
    return {
        "goal": label,
        "key": key,
        "measured": value,
        "unit": unit,
        "target": target,
        "at_most": at_most,
        "met": met,
        "note": note,
    }


def goals(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals against the figures; those against nginx and LiteLLM when they
    were measured in this run."""
    sessions, vs = document["sessions"], document["vs_direct"]
    versus, mine = vs[REFERENCE], sessions[REFERENCE]
    direct, ours = mine[DIRECT], mine[REFERENCE]
    fake = document["fake_provider"]
    out = [
        _goal(
            "added TTFB, median",
            "added_ttfb_median_ms",
            versus["added_ttfb_median_ms"],
            "ms",
            GOALS["added_ttfb_median_ms"],
            True,
            f"direct {direct['ttfb']['median_ms']:.2f} ms, proxied {ours['ttfb']['median_ms']:.2f}",
        ),
        _goal(
            "added latency per chunk",
            "added_per_chunk_us",
            versus["added_per_chunk_us"],
            "µs",
            GOALS["added_per_chunk_us"],
            True,
            f"direct {direct['stream']['per_event_us']:.1f} µs a chunk, "
            f"proxied {ours['stream']['per_event_us']:.1f}",
        ),
        _goal(
            "throughput at 20 vs direct",
            "throughput_20_ratio",
            versus["throughput_ratio"]["20"],
            "",
            GOALS["throughput_20_ratio"],
            False,
            f"{ours['throughput']['20']['chunks_per_s']:,} vs "
            f"{direct['throughput']['20']['chunks_per_s']:,} chunks/s",
        ),
        _goal(
            "fake provider, one core",
            "fake_chunks_per_s",
            fake["chunks_per_s"],
            "chunks/s",
            GOALS["fake_chunks_per_s"],
            False,
            f"lower of {fake['chunks_per_s_from']}",
        ),
        _goal(
            "peak RSS",
            "peak_rss_mib",
            ours["proxy"]["peak_rss_mib"],
            "MiB",
            GOALS["peak_rss_mib"],
            True,
            "VmHWM of its process group, at the end of its session",
        ),
    ]
    cpu = ours["proxy"]["cpu_s_per_1k_chunks"]
    if "nginx" in sessions:
        theirs = sessions["nginx"]["nginx"]["proxy"]["cpu_s_per_1k_chunks"]
        out.append(
            _goal(
                "CPU per chunk vs nginx's",
                "cpu_vs_nginx",
                round(cpu / theirs, 2),
                "x",
                PEER_GOALS["cpu_vs_nginx"],
                True,
                f"reference {cpu:.4f} s, nginx {theirs:.4f} s",
            )
        )
        added, nginx_added = (
            versus["added_ttfb_median_ms"],
            vs["nginx"]["added_ttfb_median_ms"],
        )
        out.append(
            _goal(
                "added TTFB median vs nginx's",
                "ttfb_vs_nginx_ms",
                round(added - nginx_added, 4),
                "ms",
                PEER_GOALS["ttfb_vs_nginx_ms"],
                True,
                f"reference adds {added:.3f} ms, nginx {nginx_added:.3f} ms",
            )
        )
    if "litellm" in sessions:
        theirs = sessions["litellm"]["litellm"]["proxy"]["cpu_s_per_1k_chunks"]
        out.append(
            _goal(
                "CPU per chunk below LiteLLM's",
                "cpu_below_litellm",
                round(theirs / cpu, 1) if cpu > 0 else 0.0,
                "x",
                PEER_GOALS["cpu_below_litellm"],
                False,
                f"reference {cpu:.4f} s, LiteLLM {theirs:.4f} s",
            )
        )
    return out
