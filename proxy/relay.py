"""What the proxy makes of an upstream chat-completion stream: sans-IO, bytes in, steps out.

`StreamCheck` sits behind the SSE framer and decides, event by event, what the client gets:

- `Forward(payload)`: a valid JSON chunk, re-emitted with its payload bytes unchanged;
- `Finish()`: a clean end, i.e. the upstream's `[DONE]`, or the upstream closing after some
  choice had a non-null `finish_reason` (then the proxy writes `[DONE]` itself);
- `Fail(code, message)`: the stream is broken; the client gets one in-band error event and
  no `[DONE]`.

After a `Finish` or a `Fail` the check is over and ignores further input. The IO layer
turns read errors and timers into `Fail`s with `fail()`, so every ending goes through here
and is encoded the same way.

An upstream error arrives in several shapes: `{"error": {...}}`, `{"object": "error", ...}`,
an `event: error` event, or a choice with `finish_reason: "error"`. All become one `Fail`
with code "upstream_error" (or the upstream's own code), carrying the upstream's message;
the chunk that carried the error is not forwarded itself. An event with empty data is
legal and carries nothing: it is skipped.

Usage goes through the check's `UsageMeter` (see `proxy.usage`): a chunk that carries usage
is forwarded without it (re-serialised) or dropped when nothing else is left in it, and a
clean end sends the one final usage chunk before `[DONE]` when the client asked for it.
Every other chunk is forwarded with its bytes unchanged.
"""

from __future__ import annotations

import json
import json.scanner
import re
from dataclasses import dataclass
from typing import Any

from streamproof.proxy.errors import SSEFramingError, error_payload, redact
from streamproof.proxy.sse import SSEFramer
from streamproof.proxy.usage import Usage, UsageMeter

RESET = "upstream_reset"
IDLE_TIMEOUT = "upstream_idle_timeout"
TOTAL_TIMEOUT = "total_timeout"
MALFORMED = "upstream_malformed"
TRUNCATED = "upstream_truncated"
UPSTREAM_ERROR = "upstream_error"

DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Forward:
    payload: bytes

    def encode(self) -> bytes:
        # A payload may hold newlines (JSON allows them between tokens); each line becomes
        # its own `data:` line so the client's framer joins them back into the same bytes.
        if b"\n" not in self.payload:
            return b"data: " + self.payload + b"\n\n"
        return b"".join(b"data: " + line + b"\n" for line in self.payload.split(b"\n")) + b"\n"


@dataclass(frozen=True, slots=True)
class Finish:
    def encode(self) -> bytes:
        return DONE_EVENT


# What the health report and the log call each post-commit failure (see `proxy.health`);
# a transport failure is named by its httpx exception instead.
ERROR_CLASSES = {
    RESET: "ReadError",
    IDLE_TIMEOUT: "ReadTimeout",
    TOTAL_TIMEOUT: "TimeoutException",
    MALFORMED: "MalformedStream",
    TRUNCATED: "IncompleteStream",
}


@dataclass(frozen=True, slots=True)
class Fail:
    code: str | int
    message: str
    type: str = "upstream_error"
    error_class: str = "UpstreamError"

    def encode(self) -> bytes:
        return b"data: " + error_payload(self.message, self.type, self.code) + b"\n\n"


Step = Forward | Finish | Fail

# The standard library's own JSON scanner (what `json.loads` runs, with its defaults) and
# its pattern for the whitespace allowed after a document.
# (typeshed types the scanner's context, a decoder, as a scanner: hence the ignore.)
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_TRAILING = re.compile(r"[ \t\n\r]*")


def _parse(data: bytes) -> Any:
    """`json.loads(data)`, the same value or the same errors, with less around it for the
    usual payload, an object: its bytes are decoded as `json.loads` would decode them
    (UTF-8, surrogatepass) without its detection of the encoding, and handed to the scanner
    that `json.loads` ends in, with its two checks (a value at the start, only whitespace
    after it). Anything else (a payload that does not open with `{`, or one that could be
    UTF-16 or UTF-32) goes to `json.loads` itself."""
    if data[:1] != b"{" or data[1:2] == b"\x00":
        return json.loads(data)
    text = data.decode("utf-8", "surrogatepass")
    try:
        value, end = _scan(text, 0)
    except StopIteration as exc:
        raise json.JSONDecodeError("Expecting value", text, exc.value) from None
    end = _TRAILING.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


class StreamCheck:
    """Follows one upstream stream and says what to send for each piece of it."""

    def __init__(
        self, provider: str, secrets: tuple[str, ...] = (), meter: UsageMeter | None = None
    ) -> None:
        self.provider = provider
        self._secrets = secrets  # redacted from upstream error text before it is forwarded
        self.meter = meter if meter is not None else UsageMeter()
        self.forwarded = 0  # chunks forwarded so far
        self.forwarded_bytes = 0  # their payloads' bytes
        self.finished = False  # some choice had a non-null finish_reason
        self.outcome: Finish | Fail | None = None
        self._framer = SSEFramer()

    @property
    def over(self) -> bool:
        return self.outcome is not None

    def feed(self, chunk: bytes) -> list[Step]:
        if self.over:
            return []
        try:
            events = self._framer.feed(chunk)
        except SSEFramingError as exc:
            return [self.fail(MALFORMED, f"{self.provider}: {exc}")]
        steps: list[Step] = []
        for event in events:
            steps.extend(self._event(event.data, event.event))
            if self.over:
                break
        return steps

    def usage(self) -> Usage:
        """The usage of what was relayed so far: the provider's last report, else an estimate."""
        return self.meter.usage()

    def end_of_stream(self) -> list[Step]:
        """The upstream body ended (cleanly, at the HTTP level)."""
        if self.finished:
            return self._finish()
        tail = " (with an unterminated event)" if self._framer.pending else ""
        return [
            self.fail(
                TRUNCATED,
                f"{self.provider}: stream cut short: it ended with no finish_reason and no "
                f"end-of-stream marker{tail}",
            )
        ]

    def fail(
        self,
        code: str | int,
        message: str,
        type_: str = "upstream_error",
        error_class: str | None = None,
    ) -> Fail:
        kind = error_class or (
            ERROR_CLASSES.get(code, "UpstreamError") if isinstance(code, str) else "UpstreamError"
        )
        failure = self._failure(code, message, type_, kind)
        self._end(failure)
        return failure

    def _failure(self, code: str | int, message: str, type_: str, error_class: str) -> Fail:
        """The one error event of a broken stream, in the client's API's shape."""
        return Fail(code, message, type_, error_class)

    def _end(self, outcome: Finish | Fail) -> Finish | Fail:
        self.outcome = outcome
        return outcome

    def _finish(self) -> list[Step]:
        final = self.meter.final_chunk()
        steps: list[Step] = []
        if final is not None:  # the usage chunk the client asked for is a chunk it gets
            self.forwarded += 1
            steps.append(Forward(final))
        steps.append(self._end(Finish()))
        return steps

    def _event(self, data: bytes, name: bytes) -> list[Step]:
        if not data and name != b"error":
            return []  # `data:` with nothing after it: a legal event that carries nothing
        if not data.startswith(b"{") and data.strip() == b"[DONE]":
            return self._finish()
        try:
            chunk = _parse(data)
        # JSONDecodeError and UnicodeDecodeError alike, and the RecursionError of a payload
        # nested deeper than the parser goes (see proxy.jsonio; caught here, on the hot path,
        # rather than through one more call per chunk).
        except (ValueError, RecursionError):
            if name == b"error":
                return [self._upstream_error({"message": data.decode(errors="replace")})]
            return [self.fail(MALFORMED, f"{self.provider}: a data payload is not valid JSON")]
        if type(chunk) is not dict:
            return [self.fail(MALFORMED, f"{self.provider}: a data payload is not a JSON object")]
        if name == b"error" or chunk.get("error") is not None or chunk.get("object") == "error":
            error = chunk.get("error") or chunk
            return [self._upstream_error(error if isinstance(error, dict) else {"message": error})]
        choices = chunk.get("choices")
        if type(choices) is list and len(choices) == 1 and type(choices[0]) is dict:
            reason = choices[0].get("finish_reason")  # nearly every chunk: one choice
            if reason is not None:
                if reason == "error":
                    return [self._error_finish()]
                self.finished = True
        else:
            reasons = [
                choice.get("finish_reason")
                for choice in (choices if isinstance(choices, list) else ())
                if isinstance(choice, dict)
            ]
            if "error" in reasons:
                return [self._error_finish()]
            if any(reason is not None for reason in reasons):
                self.finished = True
        payload = self.meter.relay(chunk, data)
        if payload is None:
            return []
        self.forwarded += 1
        self.forwarded_bytes += len(payload)
        return [Forward(payload)]

    def _error_finish(self) -> Fail:
        """A choice ended with finish_reason "error": the chunk *is* the upstream's error
        report, and becomes the one error event."""
        return self._upstream_error(
            {"message": "the upstream ended the answer with finish_reason 'error'"}
        )

    def _upstream_error(self, error: dict[str, Any]) -> Fail:
        message = error.get("message")
        type_ = error.get("type")
        code = error.get("code")
        text = message if isinstance(message, str) else "upstream error"
        return self.fail(
            code if isinstance(code, str | int) and not isinstance(code, bool) else UPSTREAM_ERROR,
            f"{self.provider}: {redact(text, self._secrets)}",
            type_ if isinstance(type_, str) and type_ else "upstream_error",
        )
