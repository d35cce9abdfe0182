"""The chaos soak's page (`bench/soak.py`): `reports/soak.html` beside `reports/soak.json`.

One self-contained page (inline CSS and SVG, no script, works from `file://`): the verdict
and the target first, then the soak over time — streams ended per second by result, the
time to first byte (p50, p90, p99), the target's open sockets (to its clients and to the
upstream) and its memory and CPU — then the violations, each with the command that replays
it and, for the first of each check, the stream as it ran from both sides; then the notes
(what a careful proxy avoids) and the figures. The page is a jinja2 template
(`bench/templates/soak.html`, autoescaped: the wire carries anything); the plots are SVG
built here from the report's `timeline`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).resolve().parent / "templates"
RESULTS = (  # the outcomes, in the order and colours of the plots
    ("success", "#2f9e5b"),
    ("http_error", "#e07b18"),
    ("error", "#d4a017"),
    ("aborted", "#8e5bd0"),
    ("left", "#9aa3ad"),
    ("broken", "#c43c2a"),
)
WIDTH, HEIGHT = 860, 190
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 30

Series = tuple[str, str, list[tuple[float, float]]]  # name, colour, (x, y) points


def _nice(high: float) -> float:
    """A round top for an axis that reaches `high`."""
    if high <= 0:
        return 1.0
    step = 10 ** (len(str(int(high))) - 1)
    for factor in (1, 2, 2.5, 5, 10):
        if step * factor >= high:
            return float(step * factor)
    return float(step * 10)


def chart(
    title: str,
    unit: str,
    duration: float,
    lines: Sequence[Series] = (),
    stacks: Sequence[tuple[float, list[tuple[str, float]]]] = (),
    bar_width: float = 1.0,
    colours: dict[str, str] | None = None,
    rule: tuple[str, float] | None = None,
) -> Markup:
    """A plot over the soak's time: lines, or stacked bars (one stack per `bar_width`
    seconds), with a y axis from 0, its top and middle labelled, and a legend."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    heights = [y for _, _, points in lines for _, y in points]
    heights += [sum(v for _, v in stack) for _, stack in stacks]
    if rule is not None:
        heights.append(rule[1])
    top = _nice(max(heights, default=0.0))
    span = max(duration, bar_width, 1e-9)

    def x(t: float) -> float:
        return LEFT + plot_w * t / span

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [
        f"<svg class='chart' viewBox='0 0 {WIDTH} {HEIGHT}' role='img' "
        f"aria-label='{escape(title)}' xmlns='http://www.w3.org/2000/svg'>",
        f"<rect x='{LEFT}' y='{TOP}' width='{plot_w}' height='{plot_h}' fill='#fafbfc' "
        "stroke='#cfd5dc'/>",
    ]
    for value in (top / 2, top):
        parts.append(
            f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y(value):.1f}' y2='{y(value):.1f}' "
            "stroke='#e3e7ec'/>"
            f"<text x='{LEFT - 6}' y='{y(value) + 4:.1f}' text-anchor='end'>{value:g}</text>"
        )
    parts.append(f"<text x='{LEFT - 6}' y='{TOP + plot_h + 4}' text-anchor='end'>0</text>")
    parts.append(
        f"<text x='{LEFT}' y='{HEIGHT - 8}'>0 s</text>"
        f"<text x='{LEFT + plot_w}' y='{HEIGHT - 8}' text-anchor='end'>{span:.0f} s</text>"
        f"<text x='{LEFT + plot_w / 2}' y='{HEIGHT - 8}' text-anchor='middle'>"
        f"{escape(unit)}</text>"
    )
    width = max(1.0, plot_w * bar_width / span - 1)
    for start, stack in stacks:
        base = 0.0
        for name, value in stack:
            if value <= 0:
                continue
            colour = (colours or {}).get(name, "#5a6270")
            parts.append(
                f"<rect x='{x(start):.1f}' y='{y(base + value):.1f}' width='{width:.1f}' "
                f"height='{y(base) - y(base + value):.1f}' fill='{colour}'>"
                f"<title>{start:g} s: {escape(name)} {value:g}</title></rect>"
            )
            base += value
    for _, colour, points in lines:
        if points:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            parts.append(
                f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.6'/>"
            )
    if rule is not None:
        label, value = rule
        parts.append(
            f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y(value):.1f}' y2='{y(value):.1f}' "
            "stroke='#c43c2a' stroke-dasharray='5 4'/>"
            f"<text x='{LEFT + plot_w - 4}' y='{y(value) - 4:.1f}' text-anchor='end' "
            f"fill='#c43c2a'>{escape(label)}</text>"
        )
    parts.append("</svg>")
    legend = [(name, colour) for name, colour, _ in lines]
    if stacks:
        named = {name for _, stack in stacks for name, value in stack if value > 0}
        legend += [(name, c) for name, c in (colours or {}).items() if name in named]
    keys = "".join(
        f"<span><i style='background:{colour}'></i>{escape(name)}</span>" for name, colour in legend
    )
    return Markup(
        f"<figure><figcaption>{escape(title)}<span class='keys'>{keys}</span>"
        f"</figcaption>{''.join(parts)}</figure>"
    )


def charts(document: dict[str, Any]) -> list[Markup]:
    """The plots of the page, from the report's timeline."""
    timeline = document["timeline"]
    buckets, samples, size = timeline["buckets"], timeline["samples"], timeline["bucket_s"]
    duration = max(
        [b["t"] + size for b in buckets] + [s["t"] for s in samples] + [document["wall_s"]]
    )
    colours = dict(RESULTS)
    stacks = [
        (b["t"], [(name, b["results"].get(name, 0) / size) for name, _ in RESULTS]) for b in buckets
    ]
    out = [
        chart(
            "Streams ended per second, by result",
            "streams/s over the soak's time",
            duration,
            stacks=stacks,
            bar_width=size,
            colours=colours,
        )
    ]
    latency: list[Series] = []
    for key, colour in (("p50_ms", "#1f6fd1"), ("p90_ms", "#e07b18"), ("p99_ms", "#c43c2a")):
        points = [
            (b["t"] + size / 2, b["first_byte"][key])
            for b in buckets
            if b["first_byte"] is not None
        ]
        latency.append((f"first byte {key[:3]}", colour, points))
    out.append(
        chart("Time to first byte of the streams ended each second", "ms", duration, latency)
    )
    sockets: list[Series] = [
        ("upstream sockets", "#b03a9e", [(s["t"], s["fds"]["upstream"]) for s in samples]),
        ("client sockets", "#1f6fd1", [(s["t"], s["fds"]["client"]) for s in samples]),
        ("other descriptors", "#9aa3ad", [(s["t"], s["fds"]["other"]) for s in samples]),
    ]
    out.append(chart("The target's open sockets and descriptors", "count", duration, sockets))
    rss = [(s["t"], round(s["rss_kib"] / 1024, 1)) for s in samples]
    baseline = document["rss"]["baseline_mib"]
    limit = ("baseline + limit", baseline + document["rss"]["limit_mib"])
    out.append(
        chart(
            "The target's resident memory",
            "MiB",
            duration,
            [("RSS", "#2f9e5b", rss)],
            rule=limit if document["target"]["strict"] else None,
        )
    )
    cpu = [
        (b["t"], round(100 * (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"])))
        for a, b in itertools.pairwise(samples)
        if b["t"] > a["t"]
    ]
    out.append(chart("The target's CPU", "% of one core", duration, [("CPU", "#e07b18", cpu)]))
    return out


def render(document: dict[str, Any]) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = environment.get_template("soak.html")
    return template.render(d=document, charts=charts(document), results=RESULTS)
