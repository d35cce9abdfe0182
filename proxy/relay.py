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
        failure = Fail(code, message, type_, kind)
        self._end(failure)
        return failure

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
            text: bytes | str = data
            if data[:1] == b"{" and data[1:2] != b"\x00":
                # What json.loads would decode these bytes as (UTF-8, surrogatepass), without
                # its detection of the encoding.
                text = data.decode("utf-8", "surrogatepass")
            chunk = json.loads(text)
        # JSONDecodeError and UnicodeDecodeError alike, and the RecursionError of a payload
        # nested deeper than the parser goes (see proxy.jsonio; caught here, on the hot path,
        # rather than through one more call per chunk).
        except (ValueError, RecursionError):
            if name == b"error":
                return [self._upstream_error({"message": data.decode(errors="replace")})]
            return [self.fail(MALFORMED, f"{self.provider}: a data payload is not valid JSON")]
        if not isinstance(chunk, dict):
            return [self.fail(MALFORMED, f"{self.provider}: a data payload is not a JSON object")]
        # What follows looks into the parsed chunk only where its bytes say there may be
        # something to find. A key or a string value "error" is written `"error"` unless it
        # uses \u escapes, which send the chunk the long way: without either in its bytes,
        # a chunk has no error key, no "object": "error" and no finish_reason "error".
        escaped = b"\\u" in data
        if (escaped or b'"error"' in data or name == b"error") and (
            name == b"error" or chunk.get("error") is not None or chunk.get("object") == "error"
        ):
            error = chunk.get("error") or chunk
            return [self._upstream_error(error if isinstance(error, dict) else {"message": error})]
        # Every `"finish_reason"` in the bytes followed by `:null` (the two counts agree):
        # no choice has a finish_reason, so nothing to look at. (Bytes inside a string can
        # only add to the first count, so a real non-null one always makes them differ.)
        if escaped or data.count(b'"finish_reason"') != data.count(b'"finish_reason":null'):
            choices = chunk.get("choices")
            reasons = [
                choice.get("finish_reason")
                for choice in (choices if isinstance(choices, list) else ())
                if isinstance(choice, dict)
            ]
            if "error" in reasons:
                # The chunk *is* the upstream's error report: it becomes the one error event.
                return [
                    self._upstream_error(
                        {"message": "the upstream ended the answer with finish_reason 'error'"}
                    )
                ]
            self.finished = self.finished or any(reason is not None for reason in reasons)
        payload = self.meter.relay(chunk, data)
        if payload is None:
            return []
        self.forwarded += 1
        self.forwarded_bytes += len(payload)
        return [Forward(payload)]

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
