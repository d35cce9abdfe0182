"""The relay bench's picture (`bench/relay_bench.py`, `--svg`): the goals as tiles, the
latency distributions, throughput against concurrency and who is busy, in one SVG.

Every proxy is drawn from its own session, with its share of the direct path of that
session; the direct path drawn beside them is the one of the reference proxy's session."""

from __future__ import annotations

import math
import statistics
from html import escape
from typing import Any

from bench.relay_client import DIRECT, REFERENCE
from bench.relay_goals import GOALS
from bench.relay_measures import LEVELS, STREAM_CHUNKS, TTFB_MODEL, quantile

TILE_HEIGHT = 102
COLOURS = ["#5a6270", "#1f6fd1", "#e07b18", "#2f9e5b", "#b03a9e"]  # direct first
GOOD, BAD, INK, GREY, RULE = "#1d8a4a", "#c43c2a", "#1b1f24", "#5b636e", "#e3e7ec"


def _text(x: float, y: float, text: str, size: int = 13, **attrs: str) -> str:
    """A <text>; keyword attributes with `_` for `-` (text_anchor, font_weight)."""
    extra = "".join(f" {key.replace('_', '-')}='{value}'" for key, value in attrs.items())
    return f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}'{extra}>{escape(text)}</text>"


def _line(x1: float, y1: float, x2: float, y2: float, colour: str = RULE, **attrs: str) -> str:
    extra = "".join(f" {key.replace('_', '-')}='{value}'" for key, value in attrs.items())
    return (
        f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='{colour}'{extra}/>"
    )


def _frame(left: float, top: float, right: float, bottom: float) -> str:
    return (
        f"<rect x='{left:.1f}' y='{top:.1f}' width='{right - left:.1f}' "
        f"height='{bottom - top:.1f}' fill='#fafbfc' stroke='#cfd5dc'/>"
    )


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for step in (1, 2, 5):
            if low <= (value := step * 10.0**exponent) <= high:
                ticks.append(value)
    return ticks


def _short(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


def shown_paths(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The paths drawn: the direct one of the reference proxy's session, then every proxy
    from its own session."""
    sessions = document["sessions"]
    paths = {DIRECT: sessions[REFERENCE][DIRECT]}
    paths.update({name: session[name] for name, session in sessions.items()})
    return paths


def ecdf_panel(
    box: tuple[float, float, float, float], title: str, series: list[tuple[str, str, list[float]]]
) -> list[str]:
    """Each path's samples as a cumulative distribution on a log axis of milliseconds, with
    its median and p99 marked, and written out above the plot."""
    x0, y0, w, h = box
    left, right, top, bottom = x0 + 44, x0 + w, y0 + 12 + 20 * len(series), y0 + h - 36
    values = [v for _, _, samples in series for v in samples if v > 0]
    low, high = min(values) / 1.15, max(values) * 1.15
    span = math.log10(high / low)

    def sx(v: float) -> float:
        return left + math.log10(max(v, low) / low) / span * (right - left)

    def sy(share: float) -> float:
        return bottom - share * (bottom - top)

    out = [
        _text(x0, y0 - 10, title, 15, font_weight="bold", fill=INK),
        _frame(left, top, right, bottom),
    ]
    for tick in _log_ticks(low, high):
        out.append(_line(sx(tick), top, sx(tick), bottom))
        out.append(_text(sx(tick), bottom + 15, _short(tick), 11, text_anchor="middle", fill=GREY))
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(_line(left, sy(share), right, sy(share)))
        out.append(_text(left - 5, sy(share) + 4, f"{share:.0%}", 10, text_anchor="end", fill=GREY))
    out.append(
        _text(
            (left + right) / 2,
            bottom + 31,
            "milliseconds (log scale); y: share of streams at or under",
            11,
            text_anchor="middle",
            fill=GREY,
        )
    )
    for index, (name, colour, samples) in enumerate(series):
        ordered, n = sorted(samples), len(samples)
        points = [f"{sx(ordered[0]):.1f},{sy(0):.1f}"]
        for i, v in enumerate(ordered):
            points += [f"{sx(v):.1f},{sy(i / n):.1f}", f"{sx(v):.1f},{sy((i + 1) / n):.1f}"]
        out.append(
            f"<polyline points='{' '.join(points)}' fill='none' stroke='{colour}' "
            "stroke-width='2.2'/>"
        )
        median, p99 = statistics.median(ordered), quantile(ordered, 0.99)
        for value, share in ((median, 0.5), (p99, 0.99)):
            out.append(
                f"<circle cx='{sx(value):.1f}' cy='{sy(share):.1f}' r='4' "
                f"fill='{colour}' stroke='white'/>"
            )
        y = y0 + 8 + 20 * index
        out.append(
            f"<rect x='{left:.1f}' y='{y - 11:.1f}' width='12' height='12' fill='{colour}'/>"
        )
        out.append(
            _text(left + 18, y, f"{name}: median {median:.3g} ms, p99 {p99:.3g} ms", 13, fill=INK)
        )
    return out


def throughput_panel(box: tuple[float, float, float, float], document: dict[str, Any]) -> list[str]:
    """Chunks/s at each concurrency, a bar per path, each proxy's share of direct above it."""
    x0, y0, w, h = box
    results = shown_paths(document)
    names = list(results)
    left, right, top, bottom = x0 + 52, x0 + w, y0 + 22, y0 + h - 36
    peak = float(
        max(results[n]["throughput"][str(level)]["chunks_per_s"] for n in names for level in LEVELS)
    )
    unit = 10.0 ** math.floor(math.log10(peak))
    step = next(s * unit for s in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0) if peak * 1.2 / (s * unit) <= 6)
    ceiling = math.ceil(peak * 1.2 / step) * step

    def sy(v: float) -> float:
        return bottom - v / ceiling * (bottom - top)

    title = f"Throughput against concurrency ({STREAM_CHUNKS}-chunk streams)"
    out = [
        _text(x0, y0 - 10, title, 15, font_weight="bold", fill=INK),
        _frame(left, top, right, bottom),
    ]
    legend_x = left
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        out.append(
            f"<rect x='{legend_x:.1f}' y='{y0 - 3}' width='12' height='12' fill='{colour}'/>"
        )
        out.append(_text(legend_x + 18, y0 + 8, name, 13, fill=INK))
        legend_x += 18 + 8 * len(name) + 22
    value = 0.0
    while value <= ceiling + 1e-9:
        out.append(_line(left, sy(value), right, sy(value)))
        out.append(
            _text(left - 6, sy(value) + 4, _short(round(value)), 11, text_anchor="end", fill=GREY)
        )
        value += step
    middle = (top + bottom) / 2
    out.append(
        _text(
            x0 + 10,
            middle,
            "chunks/s",
            11,
            fill=GREY,
            text_anchor="middle",
            transform=f"rotate(-90 {x0 + 10} {middle:.1f})",
        )
    )
    group_w = (right - left) / len(LEVELS)
    bar_w = min(76.0, group_w * 0.78 / len(names))
    for g, level in enumerate(LEVELS):
        centre = left + group_w * (g + 0.5)
        out.append(
            _text(centre, bottom + 17, f"{level} concurrent", 13, text_anchor="middle", fill=INK)
        )
        for i, name in enumerate(names):
            row = results[name]["throughput"][str(level)]
            x = centre - bar_w * len(names) / 2 + i * bar_w
            y = sy(row["chunks_per_s"])
            out.append(
                f"<rect x='{x + 3:.1f}' y='{y:.1f}' width='{bar_w - 6:.1f}' "
                f"height='{bottom - y:.1f}' fill='{COLOURS[i % len(COLOURS)]}'/>"
            )
            out.append(
                _text(
                    x + bar_w / 2,
                    y - 6,
                    f"{row['chunks_per_s'] / 1000:.1f}k",
                    12,
                    text_anchor="middle",
                    fill=INK,
                )
            )
            if name != DIRECT:
                share = document["vs_direct"][name]["throughput_ratio"][str(level)]
                colour = GOOD if share >= GOALS["throughput_20_ratio"] else BAD
                out.append(
                    _text(
                        x + bar_w / 2,
                        y - 22,
                        f"{share:.0%}",
                        13,
                        text_anchor="middle",
                        fill=colour,
                        font_weight="bold",
                    )
                )
    out.append(
        _text(
            right - 8,
            top + 16,
            "% above a bar: its share of direct in its own session",
            11,
            text_anchor="end",
            fill=GREY,
        )
    )
    return out


def goal_tiles(x0: float, y0: float, w: float, document: dict[str, Any]) -> list[str]:
    """One tile per goal of the issue, four to a row: the figure, green when met, red when
    not."""
    tiles = document["goals"]
    out, gap, height, per_row = [], 14.0, TILE_HEIGHT, 4
    tile_w = (w - gap * (per_row - 1)) / per_row
    for i, goal in enumerate(tiles):
        x = x0 + (i % per_row) * (tile_w + gap)
        y = y0 + (i // per_row) * (height + gap)
        colour = GOOD if goal["met"] else BAD
        value, target, unit = goal["measured"], goal["target"], goal["unit"]
        sign = "≤" if goal["at_most"] else "≥"
        if unit == "":
            shown, wanted = f"{value:.0%} of direct", f"goal {sign} {target:.0%}"
        elif unit == "chunks/s":
            shown, wanted = f"{value / 1000:.1f}k chunks/s", f"goal {sign} {target / 1000:.0f}k"
        elif unit == "ms":
            shown, wanted = f"{value:+.2f} ms", f"goal {sign} {target:g} ms"
        elif unit == "µs":
            shown, wanted = f"{value:+.1f} µs", f"goal {sign} {target:g} µs"
        elif unit == "MiB":
            shown, wanted = f"{value:.1f} MiB", f"goal {sign} {target:g} MiB"
        else:
            shown, wanted = f"{value:g}{unit}", f"goal {sign} {target:g}{unit}"
        out += [
            f"<rect x='{x:.1f}' y='{y}' width='{tile_w:.1f}' height='{height}' rx='8' "
            f"fill='white' stroke='{colour}' stroke-width='2'/>",
            f"<rect x='{x:.1f}' y='{y}' width='{tile_w:.1f}' height='26' rx='8' fill='{colour}'/>",
            f"<rect x='{x:.1f}' y='{y + 16}' width='{tile_w:.1f}' height='10' fill='{colour}'/>",
            _text(x + 12, y + 18, goal["goal"], 13, fill="white", font_weight="bold"),
            _text(x + 12, y + 56, shown, 24, font_weight="bold", fill=colour),
            _text(
                x + 12, y + 76, f"{wanted} · {'met' if goal['met'] else 'not met'}", 12, fill=GREY
            ),
            _text(x + 12, y + 93, goal.get("note", ""), 10, fill=GREY),
        ]
    return out


def facts_panel(x0: float, y0: float, w: float, document: dict[str, Any]) -> list[str]:
    """Who is busy at 20 concurrent (CPU as a share of one core), what each proxy costs
    (CPU seconds per 1,000 chunks, peak RSS), then the fake's and the client's figures."""
    results = shown_paths(document)
    fake, client = document["fake_provider"], document["client_check"]
    out = [
        _text(x0, y0 - 10, "Who is busy at 20, what each costs", 15, font_weight="bold", fill=INK)
    ]
    headers = ("client", "fake", "proxy", "s/1k ch.", "RSS MiB")
    col_x = [x0 + w - 58 * i for i in (4, 3, 2, 1, 0)]
    y = y0 + 14
    out.append(_text(x0, y, "CPU: share of a core", 12, fill=GREY))
    for label, x in zip(headers, col_x, strict=True):
        out.append(_text(x, y, label, 12, fill=GREY, text_anchor="end"))
    for name in results:
        y += 24
        at20 = results[name]["throughput"]["20"]
        out.append(_line(x0, y - 17, x0 + w, y - 17))
        out.append(_text(x0, y, name, 13, fill=INK, font_weight="bold"))
        for key, x in zip(("client_cpu", "fake_cpu", "proxy_cpu"), col_x, strict=False):
            value = at20.get(key)
            shown = "-" if value is None else f"{value:.0%}"
            busy = value is not None and value >= 0.95
            out.append(
                _text(
                    x,
                    y,
                    shown,
                    13,
                    text_anchor="end",
                    fill=BAD if busy else INK,
                    font_weight="bold" if busy else "normal",
                )
            )
        proxy = results[name].get("proxy")
        costs = (
            (f"{proxy['cpu_s_per_1k_chunks']:.4f}", f"{proxy['peak_rss_mib']:.0f}")
            if proxy
            else ("-", "-")
        )
        for shown, x in zip(costs, col_x[3:], strict=True):
            out.append(_text(x, y, shown, 13, text_anchor="end", fill=INK))
    out.append(_text(x0, y + 20, "red: at a full core, the one that sets the pace", 11, fill=GREY))
    rows = [
        (
            f"fake alone, one {fake['events'] // 1000}k-chunk stream",
            f"{fake['whole_chunks_per_s'] / 1000:.0f}k chunks/s",
        ),
        ("the same, serving time only", f"{fake['serving_chunks_per_s'] / 1000:.0f}k chunks/s"),
        ("client at its busiest", f"{client['max_cpu']:.0%} of a core"),
    ]
    y += 30
    for label, value in rows:
        y += 24
        out.append(_line(x0, y - 17, x0 + w, y - 17))
        out.append(_text(x0, y, label, 13, fill=GREY))
        out.append(_text(x0 + w, y, value, 13, text_anchor="end", font_weight="bold", fill=INK))
    return out


def picture(document: dict[str, Any]) -> str:
    """The whole picture, 1200 wide: goals on top, latency distributions, throughput."""
    rows_of_tiles = math.ceil(len(document["goals"]) / 4)
    top = 76 + rows_of_tiles * (TILE_HEIGHT + 14) + 46  # where the panels' titles sit
    width, height = 1200, top + 664
    paths = shown_paths(document)
    names = list(paths)
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
    host = document["host"]
    subtitle = (
        f"127.0.0.1 · {host['cpus']} cores · Python {host['python']} · {document['generated']} · "
        f"wall {document['wall_s']:.0f} s{' · --quick' if document['settings']['quick'] else ''}"
        " · each proxy in a session of its own, the others stopped · direct: the reference "
        "proxy's session"
    )
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='DejaVu Sans, Helvetica, Arial, sans-serif'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
        _text(
            24,
            36,
            "streamproof relay bench: the reference proxy and its peers against a direct "
            "connection",
            21,
            font_weight="bold",
            fill=INK,
        ),
        _text(24, 58, subtitle, 11, fill=GREY),
        *goal_tiles(24, 76, width - 48, document),
    ]
    ttfb = [(n, colours[n], paths[n]["ttfb"]["samples_ms"]) for n in names]
    stream = [(n, colours[n], paths[n]["stream"]["samples_ms"]) for n in names]
    parts += ecdf_panel((24, top, 560, 300), f"Time to first byte ({TTFB_MODEL})", ttfb)
    parts += ecdf_panel((616, top, 560, 300), f"Whole {STREAM_CHUNKS}-chunk stream", stream)
    parts += throughput_panel((24, top + 356, 720, 290), document)
    parts += facts_panel(780, top + 356, 396, document)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
