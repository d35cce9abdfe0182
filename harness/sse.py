"""A sans-IO Server-Sent Events decoder that follows the WHATWG HTML standard to the letter.

It implements "Interpreting an event stream" (HTML 9.2.6) and the stream grammar of 9.2.5.
Bytes go in through :meth:`SSEDecoder.feed`, in chunks cut anywhere; dispatched events come
out. Nothing here does I/O or looks at time, so the decoder behaves identically whatever the
transport and however a proxy under test chose to split its writes.

The parts that are easy to get wrong, and what this module does about them:

* **Incremental UTF-8.** The stream is always UTF-8 (no other charset is ever honoured). A
  character whose bytes are split across feeds is held back by an incremental decoder until it
  is complete, so a split never produces U+FFFD. Genuinely invalid bytes do become U+FFFD, one
  per "maximal subpart" as in the Encoding standard's "UTF-8 decode"; CPython's ``replace``
  error handler follows the same rule. An incomplete sequence left at end of input becomes one
  U+FFFD when :meth:`SSEDecoder.close` flushes the decoder.

* **BOM.** Exactly one U+FEFF at the very start of the decoded text is dropped, even when its
  three bytes arrive in separate feeds (the check waits for the first decoded character). A
  second BOM, or one anywhere later, is ordinary content: at the start of a line it becomes
  part of a field name, so ``"\\ufeff\\ufeffdata: x"`` is an unknown field.

* **CR at the end of a feed.** Lines end at CRLF, LF or a lone CR. A CR that ends a feed may be
  the first half of a CRLF whose LF is still in flight. Waiting for the next feed would delay
  events for no reason (a stream of CR-terminated lines would always lag by one line), so the
  line is processed at the CR at once and a flag remembers to swallow one LF if it is the very
  next character to arrive, however many feeds later and even if the feeds in between decoded
  to no characters at all (empty feeds, or the leading bytes of a split character).

* **End of input and "unterminated".** The standard discards an event that is not followed by
  a blank line when the stream ends, and so does :meth:`SSEDecoder.close`. Because a proxy
  that cuts a stream short is exactly what a conformance harness looks for, the decoder then
  reports :attr:`SSEDecoder.unterminated`: true when the input ended with a partial line
  (characters after the last line terminator, even if only part of a comment) or when field
  lines of any name, known or not, were seen after the last blank line. A trailing comment
  line that is terminated does not count, and a CR as the very last character is a complete
  line terminator (the LF it might have been waiting for can no longer arrive).

Lines are found with a compiled regex over each decoded chunk, and a line that spans many
feeds is kept as a list of pieces joined once when its terminator arrives, so decoding is
linear in the input size even when a single 4 MiB line comes in 16-byte pieces.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["DecoderClosedError", "Event", "SSEDecoder"]

_LINE_END = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event, as a browser's ``MessageEvent`` would see it."""

    event: str = "message"
    data: str = ""
    id: str = ""


class DecoderClosedError(ValueError):
    """Raised by :meth:`SSEDecoder.feed` once :meth:`SSEDecoder.close` has been called."""


class SSEDecoder:
    """Decode an ``text/event-stream`` body fed as bytes in arbitrary chunks.

    Public state, read it at any time:

    ``retry``
        Reconnection time in milliseconds from the last valid ``retry`` field, else ``None``.
    ``last_event_id``
        The last event ID string in force (updated at each dispatch, as the standard says).
    ``unterminated``
        After :meth:`close`: whether the input ended inside an event or a line.
    """

    def __init__(self) -> None:
        self.retry: int | None = None
        self.last_event_id: str = ""
        self.unterminated: bool = False
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True  # no character decoded yet, so a BOM may still come
        self._skip_lf = False  # the last character was a CR: one LF that follows is its pair
        self._pieces: list[str] = []  # the current, not yet terminated, line
        self._fields_pending = False  # a field line was seen since the last blank line
        self._data: list[str] = []  # the data buffer, one item per data field
        self._event_type = ""
        self._id_buffer = ""
        self._closed = False

    def feed(self, data: bytes) -> list[Event]:
        """Decode another chunk of the stream and return the events it completed."""
        if self._closed:
            raise DecoderClosedError("SSEDecoder.feed() called after close()")
        return self._consume(self._utf8.decode(data))

    def close(self) -> list[Event]:
        """Mark the end of input, set :attr:`unterminated`, and discard any pending event.

        Returns the events still to dispatch, which by the rules is always none: this only
        flushes the UTF-8 decoder, which can add a U+FFFD but never a line terminator. Calling
        it again does nothing.
        """
        if self._closed:
            return []
        events = self._consume(self._utf8.decode(b"", final=True))
        self._closed = True
        self.unterminated = bool(self._pieces) or self._fields_pending
        self._pieces.clear()
        self._data.clear()
        self._event_type = ""
        return events

    def _consume(self, text: str) -> list[Event]:
        events: list[Event] = []
        if not text:
            return events
        if self._at_start:
            self._at_start = False
            if text.startswith(_BOM):
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        start = 0
        for match in _LINE_END.finditer(text):
            line = text[start : match.start()]
            if self._pieces:
                self._pieces.append(line)
                line = "".join(self._pieces)
                self._pieces.clear()
            event = self._process_line(line)
            if event is not None:
                events.append(event)
            start = match.end()
        if start < len(text):
            self._pieces.append(text[start:])
        # Only a lone CR can end the text: "\r\n" would have been matched whole.
        self._skip_lf = text.endswith("\r")
        return events

    def _process_line(self, line: str) -> Event | None:
        if not line:
            self._fields_pending = False
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment
        self._fields_pending = True
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event_type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and _DIGITS.fullmatch(value):
            self.retry = _to_int(value)
        return None

    def _dispatch(self) -> Event | None:
        self.last_event_id = self._id_buffer
        if not self._data:
            self._event_type = ""
            return None
        # The standard appends data + LF per field, then removes one trailing LF: a join.
        event = Event(self._event_type or "message", "\n".join(self._data), self.last_event_id)
        self._data.clear()
        self._event_type = ""
        return event


def _to_int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:  # longer than sys.get_int_max_str_digits(); Decimal has no such limit
        return int(Decimal(digits))
