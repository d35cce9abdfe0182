"""A small sans-IO Server-Sent Events framer: upstream bytes in, events out.

It works on bytes, never on text, because the proxy must re-emit each payload exactly as
the upstream sent it: decoding and re-encoding could alter the bytes, and a multi-byte UTF-8
character split across two reads must come out whole. The rules are the WHATWG "event
stream interpretation" ones the proxy needs:

- a line ends at CRLF, LF or CR; a CR that ends one read may be the first half of a CRLF
  whose LF starts the next read, so it is remembered rather than counted twice;
- a blank line dispatches the event; a stream's leading UTF-8 BOM is dropped;
- `field:value` with at most one space removed after the colon; `data:x` and `data: x` are
  the same; several `data` lines are joined with "\\n";
- comment lines (starting with ":") and unknown fields are skipped; `id` and `retry` are
  of no use to a proxy and skipped too;
- whatever is left at the end of input is not an event; `pending` says whether there was
  such an unterminated tail, which the relay treats as a sign of truncation.

There is no small line-length cap (big tool-call arguments are legitimate), only a large
guard against an upstream that never ends a line.

Most feeds are the common case: whole LF-ended events, one `data:` line each, starting at a
line boundary. Those are split on blank lines in one go (`_feed_lf`); anything else (a CR,
a line split across reads, several fields in an event) takes the line-by-line path, which
gives the same events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamproof.proxy.errors import SSEFramingError

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: bytes  # the data lines joined with b"\n", exactly as sent
    event: bytes = b""  # the `event:` field; empty means "message"


class SSEFramer:
    """Feed it bytes as they arrive; it returns the events completed by each feed."""

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already known to hold no line ending
        self._after_cr = False  # the last line ended with a CR: skip one LF that follows
        self._at_start = True  # the BOM check is still to do
        self._data: list[bytes] = []
        self._event = b""
        self._size = 0

    @property
    def pending(self) -> bool:
        """True when there is a partial line or an event without its blank line."""
        return bool(self._buffer) or bool(self._data) or bool(self._event)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._after_cr:
            self._after_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if self._at_start and not self._buffer and not _BOM.startswith(chunk[:3]):
            self._at_start = False  # the stream's first bytes, with no BOM: nothing to drop
        if not self._buffer and not self._at_start and b"\r" not in chunk:
            return self._feed_lf(chunk)
        return self._feed_lines(chunk)

    def _feed_lines(self, chunk: bytes) -> list[SSEEvent]:
        """`feed`, line by line (CR or LF, any state)."""
        self._buffer += chunk
        if self._at_start and not self._strip_bom():
            return []
        events: list[SSEEvent] = []
        start = 0
        while match := _EOL.search(self._buffer, max(start, self._scanned)):
            line = bytes(self._buffer[start : match.start()])
            start = match.end()
            if match.group() == b"\r" and start == len(self._buffer):
                self._after_cr = True
            event = self._line(line)
            if event is not None:
                events.append(event)
        del self._buffer[:start]
        self._scanned = len(self._buffer)
        if self._size + len(self._buffer) > self._max_event_bytes:
            raise SSEFramingError(f"an event grew past {self._max_event_bytes} bytes")
        return events

    def _feed_lf(self, chunk: bytes) -> list[SSEEvent]:
        """`feed` for a chunk with no CR that starts at a line boundary.

        Split on blank lines, each part but the last is an event's lines (after the first
        part, a part may start with more blank lines); the last part is the start of the
        next event, which goes the line-by-line way.
        """
        parts = chunk.split(b"\n\n")
        tail = parts.pop()
        events: list[SSEEvent] = []
        for part in parts:
            if not self._data and not self._event and b"\n" not in part:
                # One line then a blank line: the common event, or a comment, or nothing.
                if part.startswith(b"data:"):
                    value = part[6:] if part[5:6] == b" " else part[5:]
                    events.append(SSEEvent(value))
                    continue
                self._line(part)
            else:
                for line in part.split(b"\n"):
                    event = self._line(line)
                    if event is not None:
                        events.append(event)
            event = self._dispatch()
            if event is not None:
                events.append(event)
        if tail:
            events += self._feed_lines(tail)
        return events

    def _strip_bom(self) -> bool:
        """Drop one leading BOM; False while too few bytes have arrived to tell."""
        if len(self._buffer) < len(_BOM) and _BOM.startswith(bytes(self._buffer)):
            return False
        if self._buffer.startswith(_BOM):
            del self._buffer[: len(_BOM)]
        self._at_start = False
        return True

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._size += len(value) + 1
        elif name == b"event":
            self._event = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        # An event with no data lines is not dispatched (WHATWG), even if it had a name.
        event = SSEEvent(b"\n".join(self._data), self._event) if self._data else None
        self._data, self._event, self._size = [], b"", 0
        return event
