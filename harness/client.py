"""The recording client: it sends one request and writes down everything that comes back.

It reads the body as the network delivers it (`iter_bytes`, which undoes any content
encoding but never re-chunks), stamping each read with `time.perf_counter()`. It never
decodes lines itself: the transcript runs the project's own SSE decoder over the bytes,
because httpx's line iterator splits on characters SSE does not (U+2028 and friends).

Transport failures are facts to record, not exceptions to raise: a reset mid-body becomes
`Transport.RESET`, a silent proxy `Transport.TIMED_OUT`.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from harness.sse import SSEDecoder
from harness.transcript import Arrival, Transcript, Transport


class StreamClient:
    """Talks to the system under test: `POST /v1/chat/completions` and friends."""

    def __init__(
        self, base_url: str, *, headers: dict[str, str] | None = None, read_timeout: float = 5.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers or {},
            timeout=httpx.Timeout(5.0, read=read_timeout),
        )

    def close(self) -> None:
        self._http.close()

    def chat(
        self,
        body: dict[str, Any],
        *,
        leave_after_events: int | None = None,
        leave_before_response: float | None = None,
    ) -> Transcript:
        """POST a chat completion and record the exchange.

        `leave_after_events=n` hangs up once n SSE events have arrived;
        `leave_before_response=s` hangs up if no response headers came within s seconds.
        """
        return self.send(
            "POST",
            "/v1/chat/completions",
            json=body,
            leave_after_events=leave_after_events,
            leave_before_response=leave_before_response,
        )

    def get(self, path: str) -> httpx.Response:
        """A plain GET of one of the target's other endpoints (`/health`, `/metrics`)."""
        return self._http.get(path)

    def send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        leave_after_events: int | None = None,
        leave_before_response: float | None = None,
    ) -> Transcript:
        """Send any request and record the exchange (the body of `json` is the request)."""
        transcript = Transcript(request=json or {}, sent_at=time.perf_counter())
        read = self.read_timeout if leave_before_response is None else leave_before_response
        try:
            with self._http.stream(
                method,
                path,
                json=json,
                content=content,
                headers=headers,
                timeout=httpx.Timeout(5.0, read=read),
            ) as response:
                transcript.status = response.status_code
                transcript.headers = {k.lower(): v for k, v in response.headers.items()}
                transcript.headers_at = time.perf_counter()
                self._read_body(response, transcript, leave_after_events)
        except httpx.TimeoutException as exc:
            left = leave_before_response is not None and transcript.status is None
            transcript.transport = Transport.LEFT if left else Transport.TIMED_OUT
            transcript.transport_error = type(exc).__name__
        except httpx.TransportError as exc:
            transcript.transport = Transport.RESET
            transcript.transport_error = f"{type(exc).__name__}: {exc}"
        transcript.ended_at = time.perf_counter()
        return transcript

    def _read_body(
        self, response: httpx.Response, transcript: Transcript, leave_after: int | None
    ) -> None:
        counter = SSEDecoder() if leave_after is not None else None
        seen = 0
        for data in response.iter_bytes():
            transcript.chunks.append(Arrival(time.perf_counter(), data))
            if counter is not None and leave_after is not None:
                seen += len(counter.feed(data))
                if seen >= leave_after:
                    transcript.transport = Transport.LEFT
                    return  # leaving the `with` closes the connection mid-body
