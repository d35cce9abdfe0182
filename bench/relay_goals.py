"""The relay bench's checks (`bench/relay_bench.py`): each proxied path against the direct
connection, and the issue's goals against the figures."""

from __future__ import annotations

from typing import Any

from bench.relay_client import DIRECT, REFERENCE
from bench.relay_measures import STREAM_CHUNKS

GOALS = {  # the goals for the reference proxy against the direct connection
    "added_ttfb_median_ms": 1.0,
    "added_per_chunk_us": 30.0,
    "throughput_20_ratio": 0.5,
    "fake_chunks_per_s": 50_000.0,
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
    """The issue's goals against the figures; with another target, the 10x comparisons."""
    paths, versus = document["paths"], document["vs_direct"][REFERENCE]
    direct, ours = paths[DIRECT], paths[REFERENCE]
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
    ]
    for name, other in document["vs_direct"].items():
        if name == REFERENCE:
            continue
        for label, key in (
            ("added TTFB", "added_ttfb_median_ms"),
            ("per chunk", "added_per_chunk_us"),
        ):
            mine, theirs = versus[key], other[key]
            times = round(theirs / mine, 1) if mine > 0 else 0.0
            note = f"{name} adds {theirs:g}, reference {mine:g}"
            out.append(
                _goal(
                    f"{label}: 10x better than {name}",
                    f"{key}_vs_{name}",
                    times,
                    "x",
                    10.0,
                    False,
                    note,
                )
            )
        mine, theirs = versus["throughput_ratio"]["20"], other["throughput_ratio"]["20"]
        times = round(mine / theirs, 1) if theirs > 0 else 0.0
        note = f"{name} {theirs:.1%} of direct, reference {mine:.1%}"
        out.append(
            _goal(
                f"throughput at 20: 10x {name}'s",
                f"throughput_20_vs_{name}",
                times,
                "x",
                10.0,
                False,
                note,
            )
        )
    return out
