"""How the events are written: one `Dialect` per answer, for the scenario's format tokens.

Every variant here is legal SSE (WHATWG HTML 9.2.5) and means the same events as the plain
form `data: <json>` + blank line, so a correct proxy relays the same answer whatever the
dialect; only `unterminated` changes what a decoder dispatches (the last event is lost).

Why some choices are what they are:

- `eol-mixed` cycles LF, CR, CRLF, in that order. The order LF, CRLF, CR would put an LF
  straight after a CR whenever a CR-ended line is followed by a blank LF-ended line, and
  "CR LF" is one line ending, not two: the blank line would vanish and two events merge.
  After a CR this cycle always writes CRLF ("\\r\\r\\n": two line endings), never LF.
- `multiline` cuts a JSON payload only after a comma outside every string, so the lines
  joined with "\\n" (as the decoder joins data lines) are the same JSON value; no line
  starts with a space, so the optional space after `data:` is never ambiguous.
- `comments` puts its `: ping` block *before* the event it belongs to, in the same frame,
  so a fault that truncates "after event n" still cuts between whole events.

Typed events (the Anthropic Messages and OpenAI Responses streams) have an `event: TYPE`
line before their data, written in the same dialect (`nospace` drops its space too); with
`fields` such an event keeps its own type instead of `event: message`.

The dialect is stateful (the line-ending cycle and the event count run over the whole body),
so one instance writes one body, in order.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from streamproof.fake_providers.scenario import EOLS, MIXED, Scenario

MIXED_CYCLE = ("\n", "\r", "\r\n")
BOM = "\ufeff"
RETRY_MS = 1500
# A JSON string (skipped whole, escapes included) or a comma outside any string.
_STRING_OR_COMMA = re.compile(r'"(?:[^"\\]++|\\.)*+"|,')
_CUTS = 3  # at most this many cuts per multiline payload: 4 lines


class Dialect:
    """Writes the events of one body in the SSE variant a scenario asks for."""

    def __init__(self, scenario: Scenario) -> None:
        self.formats = scenario.formats
        self._endings: Iterator[str] = (
            itertools.cycle(MIXED_CYCLE)
            if scenario.eol == MIXED
            else itertools.repeat(EOLS[scenario.eol])
        )
        self._events = 0
        # With no format token and one line ending, every event is `data: <data>` and a
        # blank line: written directly, without the general line assembly below.
        self._plain = None if self.formats or scenario.eol == MIXED else EOLS[scenario.eol]

    def event(
        self,
        data: str,
        *,
        is_json: bool = True,
        inner_comment: bool = False,
        last: bool = False,
        event: str = "",
    ) -> bytes:
        """One event carrying `data`, with everything the formats add around it.

        `inner_comment` marks the event that gets the `:` line of `comments`; `last` the one
        that `unterminated` leaves without line ending; `is_json` the payloads that
        `multiline` may cut (never `[DONE]`); `event` the type of a typed event ("" for none).
        """
        self._events += 1
        if (eol := self._plain) is not None:
            head = f"event: {event}{eol}" if event else ""
            return (head + ("data: " + data if data else "data:") + eol + eol).encode()
        formats = self.formats
        space = "" if "nospace" in formats else " "
        lines: list[str] = []
        if "comments" in formats:
            lines += [": ping", ""]
        if "fields" in formats:
            kind = f"event:{space}{event}" if event else "event: message"
            lines += [f"id: {self._events}", kind, "x-streamproof: 1", "x-flag"]
            if self._events == 1:
                lines.append(f"retry: {RETRY_MS}")
        elif event:
            lines.append(f"event:{space}{event}")
        pieces = split_json(data) if is_json and "multiline" in formats else [data]
        colon = "data:" if "nospace" in formats or not data else "data: "
        data_lines = [colon + piece for piece in pieces]
        if inner_comment and "comments" in formats:
            data_lines.insert(1, ":")
        lines += data_lines
        unterminated = last and "unterminated" in formats
        text = self._join(lines) if unterminated else self._join([*lines, ""], ended=True)
        if self._events == 1 and "bom" in formats:
            text = BOM + text
        return text.encode()

    def empty(self) -> bytes:
        """The `data:` event of `empty_data`: dispatched with data ""."""
        return self.event("", is_json=False)

    def _join(self, lines: list[str], *, ended: bool = False) -> str:
        """Lines with their endings; the last one has none unless `ended`."""
        out: list[str] = []
        for number, line in enumerate(lines, start=1):
            out.append(line)
            if ended or number < len(lines):
                out.append(next(self._endings))
        return "".join(out)


def split_json(document: str) -> list[str]:
    """A compact JSON text as up to four lines, cut after commas outside strings."""
    commas = [m.end() for m in _STRING_OR_COMMA.finditer(document) if m.group() == ","]
    if not commas:
        return [document]
    picks = sorted({commas[(k * len(commas)) // (_CUTS + 1)] for k in range(1, _CUTS + 1)})
    bounds = [0, *picks, len(document)]
    return [document[start:end] for start, end in itertools.pairwise(bounds)]
