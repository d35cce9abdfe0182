"""The timeline picture of one exchange: an inline SVG, no script, for the report's pages.

One lane per upstream attempt, then the client's lane, on one time axis (milliseconds
since the client sent the request, the wire log's clock). Each write or read is a tick,
taller the more bytes it carried, so a burst is a dense block, a stall an empty stretch,
and a replay a second attempt whose bytes the client reads again. Behind the ticks, a pale
band shows all the traffic of a long log (its `activity`), the rows it left out included;
a bracket under the lane marks where rows were left out. Marks: an attempt's request
arriving (a dot), a reset (a red cross), a stall (a hatched band up to when it ended), the
proxy hanging up on the fake (an orange triangle), the client's status and headers (a
flag) and how its stream ended. Every mark has a `<title>`, which browsers show as a
tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from html import escape

from streamproof.harness.wire import ClientSide, ExchangeLog, Gap, UpstreamSide, redact, walk

WIDTH = 1000
LABEL = 176  # the lanes' labels, left of the plot
RIGHT = 40
LANE = 46
AXIS = 24
TICK_MIN, TICK_MAX = 8.0, 30.0  # the height of a tick of 1 byte, and of 64 KiB or more


def svg(exchange: ExchangeLog) -> str:
    """The picture of `exchange`, as an `<svg>` element sized to its lanes."""
    client = exchange["client"]
    attempts = exchange["upstream"]
    scale = _Scale(_end(exchange))
    height = AXIS + LANE * (len(attempts) + 1) + 4
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{_t(_summary(exchange))}</title>",
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff4d6"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#d4a72c" stroke-width="3"/></pattern>'
        "</defs>",
        *_axis(scale, height),
    ]
    for lane, attempt in enumerate(attempts):
        parts += _upstream(scale, AXIS + LANE * lane, attempt)
    parts += _client(scale, AXIS + LANE * len(attempts), client)
    parts.append("</svg>")
    return "\n".join(parts)


def legend() -> str:
    """What the marks of the pictures mean: each drawn as the pictures draw it."""
    top, x = -8, 12.0

    def mark(svg_body: str, words: str) -> str:
        return (
            f'<li><svg class="timeline mark" viewBox="0 0 24 34" width="24" height="34" '
            f'aria-hidden="true" xmlns="http://www.w3.org/2000/svg">{svg_body}</svg>{words}</li>'
        )

    marks = [
        mark(
            f'<circle class="up" cx="{x}" cy="17" r="3.5"/>',
            "a request arrives (upstream lanes) or is sent (the client's)",
        ),
        mark(
            f'<line class="tick up" x1="{x}" y1="6" x2="{x}" y2="26"/>',
            "a write upstream (taller: more bytes)",
        ),
        mark(
            f'<line class="tick client" x1="{x}" y1="10" x2="{x}" y2="26"/>',
            "a read by the client",
        ),
        mark(_band(2, 22, top, "stall"), "silence: a stall, or a client waiting"),
        mark(_cross(x, top, "reset"), "a connection reset"),
        mark(
            f'<g class="hangup"><path d="M{x - 6},8 l12,0 l-6,10 z"/></g>',
            "the proxy hung up on the upstream",
        ),
        mark(_flag(6, top, "status"), "the client got the status and headers"),
        mark(_bar(x, top, "end", "client"), "a stream's end (its label says how)"),
    ]
    return f'<ul class="timeline-legend">{"".join(marks)}</ul>'


def _end(exchange: ExchangeLog) -> float:
    client = exchange["client"]
    times = [client["ended_ms"], client["headers_ms"], *(row[1] for row in client["rows"])]
    for a in exchange["upstream"]:
        times += [a["received_ms"], a["ended_ms"], a["peer_closed_ms"]]
        times += [row[1] for row in a["rows"]]
    return max([0.1, *(float(t) for t in times if t is not None)])


class _Scale:
    """Milliseconds to x: the axis runs to the end rounded up to a round step."""

    def __init__(self, end: float) -> None:
        self.step = _round_up(end / 5)
        self.domain = self.step * math.ceil(end * 1.02 / self.step)
        self.width = WIDTH - LABEL - RIGHT

    def __call__(self, ms: float) -> float:
        return float(LABEL + self.width * min(max(ms, 0.0), self.domain) / self.domain)


def _round_up(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value`."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def _axis(scale: _Scale, height: int) -> Iterator[str]:
    yield '<g class="axis">'
    for k in range(round(scale.domain / scale.step) + 1):
        ms = scale.step * k
        x = scale(ms)
        yield f'<line x1="{x:.1f}" y1="{AXIS - 5}" x2="{x:.1f}" y2="{height - 2}"/>'
        yield f'<text x="{x:.1f}" y="{AXIS - 9}" text-anchor="middle">{_ms(ms)}</text>'
    yield "</g>"


def _upstream(scale: _Scale, top: int, attempt: UpstreamSide) -> Iterator[str]:
    name = f"upstream #{attempt['attempt']}"
    route = f" /{attempt['route']}" if attempt["route"] else ""
    status = attempt["status"] if attempt["status"] is not None else "no status"
    faults = ", ".join(attempt["faults"]) or "no fault"
    yield from _lane(top, f"{name}{route}", f"{status} · {faults}")
    start, ended, peer = attempt["received_ms"], attempt["ended_ms"], attempt["peer_closed_ms"]
    last = attempt["rows"][-1][1] if attempt["rows"] else start
    yield _span(scale, top, start, ended if ended is not None else last, "up")
    yield _dot(scale, top, start, f"{name} received the request at {_ms(start)}", "up")
    yield from _activity(scale, top, attempt["activity"], "up", "writes")
    yield from _ticks(scale, top, attempt, "up", "write")
    ending = attempt["ending"]
    if ended is not None:
        if ending == "stall":
            x0 = scale(last)
            yield _band(x0, scale(ended), top, f"{name} stalled from {_ms(last)} to {_ms(ended)}")
            yield _label(x0 + 4, top + 19, "stall", "stall")
        elif ending == "reset":
            yield _cross(scale(ended), top, f"{name} reset the connection at {_ms(ended)}")
        else:
            yield _bar(scale(ended), top, f"{name} ended ({ending}) at {_ms(ended)}", "up")
    elif peer is None:
        x0, y = scale(last), top + LANE - 8
        yield (
            f'<line class="open" x1="{x0:.1f}" y1="{y}" x2="{scale(scale.domain):.1f}" y2="{y}">'
            f"<title>{_t(f'{name} was still open when the case recorded the exchange')}</title>"
            "</line>"
        )
        yield _label(scale(scale.domain) - 4, top + 19, "still open", "end-label", "end")
    if peer is not None:
        x = scale(peer)
        yield (
            f'<g class="hangup"><title>{_t(f"the proxy hung up on {name} at {_ms(peer)}")}'
            f'</title><path d="M{x - 6:.1f},{top + 3} h12 l-6,9 z"/></g>'
        )
        yield _label(x + 8, top + 11, "proxy hung up", "hangup-label")


def _client(scale: _Scale, top: int, client: ClientSide) -> Iterator[str]:
    outcome = client["outcome"].replace("_", " ")
    status = client["status"]
    yield from _lane(top, "client", f"{status} · {outcome}" if status else outcome)
    ended = client["ended_ms"]
    yield _span(scale, top, 0.0, ended if ended is not None else scale.domain, "client")
    yield _dot(scale, top, 0.0, "the client sent the request at 0 ms", "client")
    if client["headers_ms"] is not None:
        at = client["headers_ms"]
        yield _flag(scale(at), top, f"status {status} and headers at {_ms(at)}")
    yield from _activity(scale, top, client["activity"], "client", "reads")
    yield from _ticks(scale, top, client, "client", "read")
    if ended is None:
        return
    x = scale(ended)
    if client["transport"] == "reset":
        yield _cross(x, top, f"the client's stream broke (reset) at {_ms(ended)}")
        yield _label(x - 9, top + 15, "reset", "reset-label", anchor="end")
    elif client["transport"] == "timed_out":
        last = client["rows"][-1][1] if client["rows"] else client["headers_ms"] or 0.0
        title = f"the client waited in silence until it gave up at {_ms(ended)}"
        yield _band(scale(last), x, top, title)
        yield _label(scale(last) + 4, top + 19, "silence: timed out", "stall")
    else:
        what = "left" if client["transport"] == "left" else outcome
        yield _bar(x, top, f"the client's stream ended ({what}) at {_ms(ended)}", "client")
        flag = scale(client["headers_ms"]) if client["headers_ms"] is not None else -WIDTH
        if x - flag > 16 + 6 * len(what) or x + 8 + 6 * len(what) > WIDTH:
            yield _label(x - 5, top + 14, what, "end-label", anchor="end")
        else:  # the headers' flag is in the way: say it right of the end
            yield _label(x + 5, top + 14, what, "end-label")


def _lane(top: int, name: str, detail: str) -> Iterator[str]:
    short = detail if len(detail) <= 30 else detail[:29] + "…"
    yield f'<rect class="lane" x="0" y="{top}" width="{WIDTH}" height="{LANE}"/>'
    yield f'<text class="name" x="8" y="{top + 19}">{_t(name)}</text>'
    yield f'<text class="detail" x="8" y="{top + 35}"><title>{_t(detail)}</title>{_t(short)}</text>'


def _span(scale: _Scale, top: int, start: float, stop: float, kind: str) -> str:
    y = top + LANE - 8
    x0 = scale(start)
    return (
        f'<line class="span {kind}" x1="{x0:.1f}" y1="{y}" '
        f'x2="{max(scale(stop), x0 + 1):.1f}" y2="{y}"/>'
    )


def _dot(scale: _Scale, top: int, ms: float, title: str, kind: str) -> str:
    return (
        f'<circle class="{kind}" cx="{scale(ms):.1f}" cy="{top + LANE - 8}" r="3.5">'
        f"<title>{_t(title)}</title></circle>"
    )


def _height(size: float) -> float:
    return TICK_MIN + (TICK_MAX - TICK_MIN) * min(math.log2(size + 1) / 16, 1.0)


def _activity(
    scale: _Scale, top: int, bins: list[list[float]] | None, kind: str, what: str
) -> Iterator[str]:
    base = top + LANE - 8
    for start, stop, count, size in bins or []:
        x0, x1 = scale(start), scale(stop)
        height = _height(size)
        title = f"{int(count)} {what}, {int(size)} bytes, {_ms(start)} to {_ms(stop)}"
        yield (
            f'<rect class="activity {kind}" x="{x0:.1f}" y="{base - height:.1f}" '
            f'width="{max(x1 - x0, 1.5):.1f}" height="{height:.1f}"><title>{_t(title)}</title>'
            "</rect>"
        )


def _ticks(
    scale: _Scale, top: int, side: ClientSide | UpstreamSide, kind: str, verb: str
) -> Iterator[str]:
    base = top + LANE - 8
    for entry in walk(side["rows"], side["count"], side["bytes"]):
        if isinstance(entry, Gap):
            yield _gap(scale, top, entry, verb)
            continue
        index, ms, _, size, _text, _more = entry
        x = scale(ms)
        title = f"{verb} {index + 1} at {_ms(ms)}: {size} bytes"
        yield (
            f'<line class="tick {kind}" x1="{x:.1f}" y1="{base - _height(size):.1f}" '
            f'x2="{x:.1f}" y2="{base}"><title>{_t(title)}</title></line>'
        )


def _gap(scale: _Scale, top: int, gap: Gap, verb: str) -> str:
    """A bracket under the lane where the log left rows out."""
    x0 = scale(gap.after_ms) if gap.after_ms is not None else scale(0.0)
    x1 = scale(gap.before_ms) if gap.before_ms is not None else x0 + 6
    y = top + LANE - 3
    what = f"{gap.rows} {verb}s ({gap.bytes} bytes) not listed in the table"
    return (
        f'<path class="gap" d="M{x0:.1f},{y - 3} v3 H{max(x1, x0 + 3):.1f} v-3">'
        f"<title>{_t(what)}</title></path>"
    )


def _flag(x: float, top: int, title: str) -> str:
    return (
        f'<g class="flag"><title>{_t(title)}</title>'
        f'<line x1="{x:.1f}" y1="{top + 7}" x2="{x:.1f}" y2="{top + LANE - 8}"/>'
        f'<path d="M{x:.1f},{top + 7} l9,4 l-9,4 z"/></g>'
    )


def _band(x0: float, x1: float, top: int, title: str) -> str:
    """A hatched stretch of silence: a stall, or a client waiting until it gave up."""
    return (
        f'<rect class="stall" x="{x0:.1f}" y="{top + 6}" width="{max(x1 - x0, 2):.1f}" '
        f'height="{LANE - 18}"><title>{_t(title)}</title></rect>'
    )


def _cross(x: float, top: int, title: str) -> str:
    y = top + LANE / 2 - 2
    return (
        f'<g class="reset"><title>{_t(title)}</title>'
        f'<path d="M{x - 6:.1f},{y - 6:.1f} l12,12 M{x + 6:.1f},{y - 6:.1f} l-12,12"/></g>'
    )


def _bar(x: float, top: int, title: str, kind: str) -> str:
    return (
        f'<line class="end {kind}" x1="{x:.1f}" y1="{top + 6}" x2="{x:.1f}" '
        f'y2="{top + LANE - 4}"><title>{_t(title)}</title></line>'
    )


def _label(x: float, y: float, text: str, kind: str, anchor: str = "start") -> str:
    return f'<text class="{kind}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{_t(text)}</text>'


def _summary(exchange: ExchangeLog) -> str:
    client = exchange["client"]
    return (
        f"timeline of {exchange['title']}: {len(exchange['upstream'])} upstream attempt(s); "
        f"the client got {client['count']} reads, {client['bytes']} bytes, {client['outcome']}"
    )


def _ms(ms: float) -> str:
    if ms == 0:
        return "0 ms"
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def _t(text: str) -> str:
    return escape(redact(text))
