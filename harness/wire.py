"""The wire log of an exchange: both sides' bytes and times, compact, bounded, JSON-ready.

When a case calls `judge.saw(x)`, the exchange's two sides are written down for the
report: the client's reads (transcript A) and, per attempt, the fake provider's writes
(journal B). The fake runs in the harness's process and both stamp `time.perf_counter()`,
so every time here is in milliseconds since the client sent the request, on one clock.

A row is a list, to keep `results.json` small: `[index, ms, offset, size, text, more]` —
the read's (or write's) number from 0, its time, where it starts in the body, how many
bytes it had, those bytes as text, and how many of them the text leaves out. Rows that are
left out of a long log show as jumps in `index` (and `offset`): the reader can say how
many reads and bytes are missing between any two rows, and after the last (`count`,
`bytes`). A side of more than ACTIVITY_FROM reads or writes also has its `activity`: all of
them binned by time, `[from_ms, to_ms, count, bytes]` for each of ACTIVITY_BINS equal
stretches that had any, so a picture shows the traffic of the rows left out.

The client side keeps the response's status and headers; the request's headers (the
target's own auth among them) are never recorded, and the upstream side keeps none.

Text is UTF-8 with every byte accounted for: control characters become their Unicode
pictures (LF `␊`, CR `␍`, NUL `␀`), invisible characters (format, separators, spaces other
than U+0020) become `⟨U+FEFF⟩`, and bytes that are not UTF-8 — half a character cut by a
split — become their hex, `⟨e2 82⟩`, so a split is seen where it happened. Whatever looks
like a credential (`Bearer …`, `sk-…`) is replaced by `[redacted]`, here and again by the
report before it writes anything.

Bounds: a row's text shows at most ROW_BYTES of it; a case shows at most KEPT_ROWS rows per
side (the client's reads, the upstream's writes), shared between its exchanges and
attempts, the first three quarters and the last quarter of each log; at most
KEPT_EXCHANGES exchanges, the first ones and the last.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from streamproof.fake_providers.journal import Attempt
from streamproof.harness.transcript import Transcript

ROW_BYTES = 512  # of one read or write, shown as text
KEPT_ROWS = 200  # per side and case
KEPT_EXCHANGES = 16  # per case: the first ones and the last
KEPT_HEADERS = 40  # of the response the client got
HEADER_CHARS = 200
ACTIVITY_FROM = 24  # reads or writes; fewer need no summary
ACTIVITY_BINS = 60

# (index, ms since the request was sent, offset in the body, size, text, bytes not shown)
Row = list[Any]


class ClientSide(TypedDict):
    status: int | None
    headers_ms: float | None  # when the status and headers arrived
    headers: dict[str, str]  # the response's, as the proxy sent them (the request's: never)
    ended_ms: float | None
    transport: str  # eof, reset, timed_out, left
    error: str  # the transport error, if any
    outcome: str  # done, error, truncated, reset, …
    count: int  # reads
    bytes: int
    rows: list[Row]
    activity: list[list[float]] | None  # [from_ms, to_ms, reads, bytes] per stretch, or None


class UpstreamSide(TypedDict):
    attempt: int
    route: str  # "" for /v1/..., else the label
    status: int | None
    faults: list[str]
    received_ms: float
    ended_ms: float | None
    ending: str | None  # clean, reset, stall, peer_left, error
    peer_closed_ms: float | None  # when the proxy hung up on the fake
    count: int  # writes
    bytes: int
    not_kept: int  # bytes written that the journal did not keep (no text for them)
    rows: list[Row]
    activity: list[list[float]] | None  # [from_ms, to_ms, writes, bytes] per stretch, or None


class ExchangeLog(TypedDict):
    title: str
    model: str
    client: ClientSide
    upstream: list[UpstreamSide]


class Wire(TypedDict):
    exchanges: list[ExchangeLog]
    left_out: int  # exchanges the case saw that are not shown


class Wired(Protocol):
    """An exchange whose two sides can be logged (`harness.sut.Exchange`)."""

    @property
    def transcript(self) -> Transcript: ...

    @property
    def attempts(self) -> list[Attempt]: ...


_SECRET = re.compile(  # an auth scheme's token, or an OpenAI-style key
    r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{6,}|(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{4,}"
)
_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}
_LAYOUT_KEPT = {code: picture for code, picture in _PICTURES.items() if code not in (9, 10)}
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Zs"}


def redact(text: str) -> str:
    """`text` with anything that looks like a credential replaced by `[redacted]`."""
    return _SECRET.sub(_redacted, text)


def redacted(data: Any) -> Any:
    """`data` (JSON-like) with every string in it redacted, keys included."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact(str(key)): redacted(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [redacted(value) for value in data]
    return data


def _redacted(match: re.Match[str]) -> str:
    found = match.group(0)
    return "Bearer [redacted]" if found[:6].lower() == "bearer" else "[redacted]"


def pictured(text: str) -> str:
    """`text` with its control characters but LF and TAB as their pictures (`␀`)."""
    return text.translate(_LAYOUT_KEPT)


def visible(data: bytes) -> str:
    """The bytes as text, with nothing hidden: see the module's docstring."""
    out: list[str] = []
    invalid: list[str] = []
    for char in data.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, escaped by the decoder
            invalid.append(f"{code - 0xDC00:02x}")
            continue
        if invalid:
            out.append(f"⟨{' '.join(invalid)}⟩")
            invalid.clear()
        if code in _PICTURES:
            out.append(_PICTURES[code])
        elif code != 0x20 and unicodedata.category(char) in _INVISIBLE:
            out.append(f"⟨U+{code:04X}⟩")
        else:
            out.append(char)
    if invalid:
        out.append(f"⟨{' '.join(invalid)}⟩")
    return "".join(out)


def shown(data: bytes, limit: int = ROW_BYTES) -> bytes:
    """The first `limit` bytes or so of `data`, not cut inside a UTF-8 character."""
    if len(data) <= limit:
        return data
    cut = limit
    while cut > limit - 3 and data[cut] & 0xC0 == 0x80:  # a continuation byte
        cut -= 1
    return data[:cut]


def kept(count: int, limit: int) -> list[int]:
    """Which of `count` rows a log of at most `limit` rows shows: the first three quarters,
    then the last quarter."""
    if count <= limit:
        return list(range(count))
    head = (limit * 3 + 3) // 4
    return [*range(head), *range(count - (limit - head), count)]


def capture(exchange: Wired, title: str = "exchange") -> ExchangeLog:
    """The wire log of one exchange, each side bounded to KEPT_ROWS rows."""
    t = exchange.transcript
    start = t.sent_at
    sizes = [len(chunk.data) for chunk in t.chunks]
    rows, traffic = _side([_ms(chunk.at, start) for chunk in t.chunks], sizes, t.body)
    headers = {
        redact(visible(name.encode())): redact(visible(value.encode()[:HEADER_CHARS]))
        for name, value in list(t.headers.items())[:KEPT_HEADERS]
    }
    client: ClientSide = {
        "status": t.status,
        "headers_ms": _when(t.headers_at, start),
        "headers": headers,
        "ended_ms": _when(t.ended_at, start),
        "transport": t.transport.value,
        "error": redact(t.transport_error),
        "outcome": t.outcome.value,
        "count": len(sizes),
        "bytes": sum(sizes),
        "rows": rows,
        "activity": traffic,
    }
    model = t.request.get("model")
    return {
        "title": title,
        "model": redact(str(model)) if model is not None else "",
        "client": client,
        "upstream": [_attempt(attempt, start) for attempt in exchange.attempts],
    }


def _attempt(a: Attempt, start: float) -> UpstreamSide:
    sizes = [size for _, size in a.writes]
    rows, traffic = _side([_ms(at, start) for at, _ in a.writes], sizes, bytes(a.data))
    return {
        "attempt": a.number,
        "route": a.route,
        "status": a.status,
        "faults": list(a.faults),
        "received_ms": _ms(a.received_at, start),
        "ended_ms": _when(a.ended_at, start),
        "ending": a.ending,
        "peer_closed_ms": _when(a.peer_closed_at, start),
        "count": len(sizes),
        "bytes": a.bytes_written,
        "not_kept": a.data_left_out,
        "rows": rows,
        "activity": traffic,
    }


def _side(
    times: list[float], sizes: list[int], data: bytes
) -> tuple[list[Row], list[list[float]] | None]:
    """The rows and activity of reads (or writes) at `times` of `sizes` bytes, the first of
    which are `data` (all of them, for the client; what the journal kept, upstream)."""
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    rows = []
    for i in kept(len(sizes), KEPT_ROWS):
        text = shown(data[offsets[i] : offsets[i] + sizes[i]])
        rows.append(
            [i, times[i], offsets[i], sizes[i], redact(visible(text)), sizes[i] - len(text)]
        )
    return rows, activity(times, sizes)


def _ms(at: float, start: float) -> float:
    """Milliseconds from `start` to `at` (perf_counter seconds), to 10 µs."""
    return round(1000 * (at - start), 2)


def _when(at: float | None, start: float) -> float | None:
    return None if at is None else _ms(at, start)


def activity(times: Sequence[float], sizes: Sequence[int]) -> list[list[float]] | None:
    """Reads (or writes) at `times` (ms) of `sizes` bytes, binned: `[from_ms, to_ms, count,
    bytes]` for each of ACTIVITY_BINS equal stretches from the first to the last, if any."""
    if len(times) <= ACTIVITY_FROM:
        return None
    first, width = times[0], max((times[-1] - times[0]) / ACTIVITY_BINS, 0.01)
    bins: dict[int, list[float]] = {}
    for at, size in zip(times, sizes, strict=True):
        number = min(int((at - first) / width), ACTIVITY_BINS - 1)
        start = first + number * width
        found = bins.setdefault(number, [round(start, 2), round(start + width, 2), 0, 0])
        found[2] += 1
        found[3] += size
    return [bins[number] for number in sorted(bins)]


@dataclass(frozen=True)
class Gap:
    """Rows a log left out, between two rows it shows (or before the first, after the last)."""

    rows: int
    bytes: int
    after_ms: float | None  # the time of the row shown before it, if any
    before_ms: float | None  # the time of the row shown after it, if any


def walk(rows: Sequence[Row], count: int, total: int) -> Iterator[Row | Gap]:
    """A side's rows in order, with a `Gap` wherever rows were left out (`count` rows and
    `total` bytes in all)."""
    previous: Row | None = None
    for row in [*rows, None]:
        index, offset = (row[0], row[2]) if row is not None else (count, total)
        expected, done = (previous[0] + 1, previous[2] + previous[3]) if previous else (0, 0)
        if index > expected:
            after = previous[1] if previous is not None else None
            yield Gap(index - expected, offset - done, after, row[1] if row else None)
        if row is None:
            return
        yield row
        previous = row


def bounded(logs: Sequence[ExchangeLog]) -> Wire | None:
    """The case's wire log: at most KEPT_EXCHANGES exchanges, KEPT_ROWS rows per side."""
    if not logs:
        return None
    shown_logs = list(logs)
    if len(shown_logs) > KEPT_EXCHANGES:
        shown_logs = [*shown_logs[: KEPT_EXCHANGES - 1], shown_logs[-1]]
    exchanges: list[ExchangeLog] = [
        {**log, "client": {**log["client"]}, "upstream": [{**a} for a in log["upstream"]]}
        for log in shown_logs
    ]
    _share([e["client"] for e in exchanges])
    _share([a for e in exchanges for a in e["upstream"]])
    return {"exchanges": exchanges, "left_out": len(logs) - len(shown_logs)}


def _share(sides: Sequence[ClientSide | UpstreamSide]) -> None:
    """Thin the sides' rows so that together they hold at most KEPT_ROWS: the shorter logs
    whole, the longer ones to an equal share of what is left (never fewer than 4 rows)."""
    left = KEPT_ROWS
    for done, side in enumerate(sorted(sides, key=lambda side: len(side["rows"]))):
        share = max(left // (len(sides) - done), 4)
        if len(side["rows"]) > share:
            side["rows"] = [side["rows"][i] for i in kept(len(side["rows"]), share)]
        left = max(left - len(side["rows"]), 0)
