"""The system under test as the suites see it: send a scenario, get both sides back.

`sut.chat(scenario)` gives the scenario a fresh request id, sends it through the target,
and returns an `Exchange`: the client's transcript (A) and the fake provider's journal (B)
for that one request. Checks compare the two. `sut.messages(scenario)` and
`sut.responses(scenario)` do the same for the Anthropic Messages and OpenAI Responses
APIs, and return a `typed.TypedExchange`, read as each API's SDK reads it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import pytest

from streamproof.fake_providers import Attempt, FakeProvider, Journal, Scenario, chat
from streamproof.fake_providers.chat import Expected, expected, expected_usage
from streamproof.fake_providers.plan import MESSAGES, RESPONSES
from streamproof.fake_providers.server import Door
from streamproof.fake_providers.tls import HandshakeFault
from streamproof.harness.client import Patience, StreamClient
from streamproof.harness.exchange import BaseExchange
from streamproof.harness.feed import FeedConnection, FeedRecorder, StalledClient
from streamproof.harness.sse import SSEDecoder
from streamproof.harness.targets import OFFERS, Offers, Thresholds, Timeouts, tolerance
from streamproof.harness.transcript import DONE, Outcome, Transcript
from streamproof.harness.typed import (
    ANTHROPIC_VERSION,
    PATHS,
    TRANSCRIPTS,
    TypedExchange,
    TypedTranscript,
)
from streamproof.harness.verdict import CaseFailed, Finding

# What every scenario asks: the fake provider's usage figures are computed for these.
DEFAULT_MESSAGES: list[dict[str, str]] = list(chat.DEFAULT_MESSAGES)


@dataclass
class Exchange(BaseExchange):
    """A chat completion (or the seed's `/api/chat`) sent through the target."""

    dialect: str = "openai"  # or "api-chat": the seed dashboard's, with its own chunks

    @property
    def upstream_content(self) -> str:
        """The content of the whole events the upstream wrote in the attempt the client got."""
        streamed = self.streamed
        return streamed.content_written if streamed else ""

    @property
    def upstream_metadata(self) -> dict[str, Any] | None:
        """The `id`, `model` and `created` every chunk of the streamed attempt carried."""
        streamed = self.streamed
        if streamed is None:
            return None
        expected = self.expected
        return {
            "id": expected.chunk_id(streamed.number),
            "model": expected.model,
            "created": expected.created,
        }

    @property
    def expected(self) -> Expected:
        """What a correct relay of a clean answer to this scenario carries."""
        return expected(self.scenario)

    @property
    def expected_usage(self) -> dict[str, int]:
        """The provider's exact figures for a clean answer to this request."""
        return expected_usage(self.scenario, self.transcript.request.get("messages", []))

    @property
    def expected_content(self) -> str:
        """The whole content (choice 0) a clean answer to this scenario carries."""
        return self.expected.text

    def axes(self) -> tuple[str, str]:
        """The verdict's two axes, in words: what became of the content, how it ended.

        content: "whole" (every choice as the upstream meant it), "prefix" (a part of what
        the upstream sent, from its start: an honest truncation), "none", or "damaged".
        ending: the transcript's outcome (done, error, truncated, reset, timed_out, …).
        """
        t, want = self.transcript, self.expected
        got = {index: t.content(index) for index in want.content}
        if t.outcome is Outcome.HTTP_ERROR:
            content = "none"
        elif got == want.content:
            content = "whole"
        elif not any(got.values()):
            content = "none"
        elif self.upstream_content.startswith(got.get(0, "")):
            content = "prefix"
        else:
            content = "damaged"
        return content, t.outcome.value

    def failure_shown(self) -> Finding:
        return _failure_shown(self)

    def delivered(self) -> list[Finding]:
        """The content of the whole events the upstream wrote reached the client."""
        t, streamed = self.transcript, self.streamed
        if streamed is None or self.dialect != "openai" or not t.streamed:
            return []
        events = self.good_events()
        if events <= 0:
            return []
        sent = "".join(streamed.frame_deltas[:events])
        got = t.content()
        return [
            Finding(
                got.startswith(sent),
                "premise: what the upstream sent reached the client",
                f"the upstream wrote {events} good events ({len(sent)} chars); "
                + (
                    "the client got them"
                    if got.startswith(sent)
                    else f"the client got {len(got)} chars"
                    + (f", status {t.status}" if t.status != 200 else "")
                ),
                harm=True,
            )
        ]


def _failure_shown(x: Exchange) -> Finding:
    """A failed stream must not look finished to its client, as the openai SDK reads it:
    the client sees an error (a payload with an "error" member, a finish_reason "error", a
    payload it cannot parse, an aborted transfer or an error status), and no finish_reason
    the upstream did not send is invented. A clean end of the body with neither `[DONE]`
    nor an error, or a `[DONE]` with no error before it, hands the SDK's caller half an
    answer as if it were whole: a harm, whatever the case."""
    t = x.transcript
    invented = [r for r in t.finish_reasons if r != "error" and r not in _upstream_finish(x)]
    unreadable = [p for _, p in t.payloads if p is not DONE and not isinstance(p, dict)]
    # What the openai SDK surfaces: it raises on a payload with an "error" member and on one
    # it cannot parse, and hands a finish_reason "error" to its caller. An `event: error` or
    # an `{"object": "error"}` payload without that member it yields as if it were a chunk.
    raised = [p for _, p in t.payloads if isinstance(p, dict) and p.get("error")]
    signalled = bool(raised or unreadable or "error" in t.finish_reasons)
    aborted = t.outcome in (Outcome.RESET, Outcome.HTTP_ERROR, Outcome.NO_RESPONSE)
    ok = (signalled or aborted) and not invented
    if invented:
        observed = f"invented finish reason(s) {invented}"
    elif ok:
        observed = (
            f"{len(raised)} error event(s), {len(unreadable)} unreadable payload(s), "
            f"outcome {t.outcome.value}" + (f", then {t.done_count} [DONE]" if t.done_count else "")
        )
    elif t.error_events:
        observed = (
            f'{len(t.error_events)} error event(s), none with an "error" member, outcome '
            f"{t.outcome.value}: the openai SDK yields them as chunks and returns the half "
            "answer as complete"
        )
    elif t.done_count:
        observed = f"{t.done_count} [DONE] and no error: the half answer looks complete"
    elif t.outcome is Outcome.TIMED_OUT:
        observed = (
            "outcome timed_out: the client gave up waiting, and nothing it received said the "
            "answer had failed"
        )
    else:
        observed = (
            f"outcome {t.outcome.value}: the body ended cleanly with neither [DONE] nor an "
            "error, so an SDK returns the half answer as complete"
        )
    return Finding(ok, "the failure is visible to the client, nothing invented", observed, True)


def _upstream_finish(x: Exchange) -> set[str]:
    """The finish reasons in the events the upstream wrote to the client's attempt."""
    streamed = x.streamed
    return set() if streamed is None else finish_reasons(bytes(streamed.data))


def finish_reasons(data: bytes) -> set[str]:
    """The finish reasons in the events of an event stream's bytes."""
    found: set[str] = set()
    for event in SSEDecoder().feed(data):
        try:
            payload = json.loads(event.data)
        except ValueError:
            continue
        choices = payload.get("choices") if isinstance(payload, dict) else None
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                found.add(choice["finish_reason"])
    return found


def patience_for(timeouts: Timeouts, journal: Journal | None) -> Patience:
    """How long the client waits, from what it and the upstream have seen so far.

    While an upstream attempt is open (the fake is slow, or silent on purpose), the target
    has its own first-byte or idle timer to act on, with tolerance. Once every attempt is
    over, the target has `settle` to finish the client's stream after the commit point, or
    `retry` to try again (or give up) before it, plus any Retry-After the upstream gave.
    A target that never asks the upstream has `settle` after its headers, or the
    first-byte bound from the request. Past that the client is held: it gives up.
    """
    first_byte = tolerance(timeouts.bound("first_byte"))
    idle = tolerance(timeouts.bound("idle"))
    settle = max(1.0, idle) if timeouts.declares("idle") else 2.0
    retry = max(1.0, first_byte) if timeouts.declares("first_byte") else 3.0

    def until(t: Transcript) -> tuple[float, str]:
        last_client = max(t.sent_at, t.headers_at or 0.0, t.chunks[-1].at if t.chunks else 0.0)
        if journal is None:  # a request the target should answer alone (a bad one)
            if t.status is None:
                total = tolerance(timeouts.bound("total"))
                return t.sent_at + total, f"the target did not answer in {total:.2f} s"
            return last_client + settle, (
                f"the target answered {t.status}, then sent nothing more for {settle:.2f} s"
            )
        attempts = list(journal.attempts)
        if not attempts:
            if t.status is not None:  # it answered without asking: a second is plenty
                return last_client + 1.0, (
                    f"the target answered {t.status} but never asked the upstream, and sent "
                    "nothing more for 1 s"
                )
            # It may be trying providers that are down (connect timeouts) first.
            total = tolerance(timeouts.bound("total"))
            return t.sent_at + total, (
                f"the target neither answered nor asked the upstream in {total:.2f} s"
            )
        last_upstream = max(
            max(a.received_at, a.writes[-1][0] if a.writes else 0.0, a.ended_at or 0.0)
            for a in attempts
        )
        last = max(last_client, last_upstream)
        busy = [a for a in attempts if a.ending is None]
        if busy:
            wait = idle if any(a.writes for a in busy) else max(first_byte, idle)
            return last + wait, (
                f"the upstream was silent and the target sent nothing for {wait:.2f} s "
                f"(its timers: {timeouts.describe()})"
            )
        if t.chunks:
            # A second per MiB the upstream wrote, to relay it on a loaded machine.
            wait = settle + sum(a.bytes_written for a in attempts) / 2**20
            return last + wait, (
                f"the upstream's answer was over, and the target sent nothing more for "
                f"{wait:.2f} s: the client's stream never ended"
            )
        wait = retry + _retry_after(attempts[-1])
        return last + wait, (
            f"every upstream attempt was over, and the target neither answered nor tried "
            f"again for {wait:.2f} s"
        )

    return Patience(until, journal)


def _retry_after(attempt: Attempt) -> float:
    """The Retry-After the fake gave with an error status (`status-429-1`), in seconds."""
    for fault in attempt.faults:
        parts = fault.split("-")
        if parts[0] == "status" and len(parts) == 3 and parts[2].isdigit():
            return float(parts[2])
    return 0.0


class SystemUnderTest:
    def __init__(
        self,
        name: str,
        client: StreamClient,
        provider: FakeProvider,
        timeouts: Timeouts,
        offers: Offers | None = None,
        *,
        log_path: Path | None = None,
        chains: frozenset[str] = frozenset(),
        thresholds: Thresholds | None = None,
        fresh: Callable[..., AbstractContextManager[SystemUnderTest]] | None = None,
        headers: dict[str, str] | None = None,
        secrets: tuple[str, ...] = (),
        max_wait: float = 60.0,
        down: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.max_wait = max_wait  # the longest a timing case may wait (--max-wait)
        self.down = dict(down or {})  # base URLs of providers that are down, by kind
        self.client = client
        self.provider = provider
        self.timeouts = timeouts
        self.offers = offers or Offers()
        self.log_path = log_path
        self.chains = chains  # the route markers (Scenario.via) the target's config has
        self.thresholds = thresholds or Thresholds()  # the alert thresholds of its config
        self._fresh = fresh
        self.headers = dict(headers or {})  # what every request to the target carries
        self.secrets = secrets  # keys the target holds, which must never come back out
        self.exchanges: list[Exchange] = []  # every chat this run sent through it
        self.typed_exchanges: list[TypedExchange] = []  # and every Messages or Responses one
        # A feed client connected since the start (targets that offer the feed): case 6.6
        # checks that every exchange above had its events. None, with the reason, if not.
        self.recorder: FeedRecorder | None = None
        self.recorder_error = "the target does not offer the feed"

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def feed(self, headers: dict[str, str] | None = None) -> FeedConnection:
        """A new client of the target's `/ws` (see harness.feed.FeedConnection)."""
        return FeedConnection(self.base_url, headers={**self.headers, **(headers or {})})

    def stalled_feed(self) -> StalledClient:
        """A new client of `/ws` that reads nothing until told to (harness.feed)."""
        return StalledClient(self.base_url, self.headers)

    def needs(self, *names: str) -> None:
        """Skip the case, saying why, unless the target offers all of `names` (see OFFERS)."""
        for name in names:
            if name not in self.offers:
                pytest.skip(f"the target does not offer {name}: {OFFERS[name]}")

    def waits(self, seconds: float, on: str) -> None:
        """Skip the case, saying why, if it would wait longer than `--max-wait`."""
        if seconds > self.max_wait:
            pytest.skip(
                f"waits up to {seconds:.0f} s on {on} ({self.timeouts.describe()}); "
                f"--max-wait {seconds:.0f} runs it"
            )

    def fresh(self, *, proxy_key: str | None = None) -> AbstractContextManager[SystemUnderTest]:
        """Another process of the same target with nothing recorded yet, for the cases that
        judge counters from zero (alerts); it is stopped when the block ends. With
        `proxy_key`, the config the harness writes gives the proxy that key of its own."""
        if self._fresh is None:
            pytest.skip("the target cannot be started afresh for one case")
        return self._fresh(proxy_key=proxy_key)

    def upstream_down(self, kind: str) -> AbstractContextManager[SystemUnderTest]:
        """Another process of the same target whose `{upstream}` is down: `refused` (nothing
        listens) or `blackhole` (connects never complete), so that every proxy is judged on
        them, whether or not it runs on the harness's config; stopped when the block ends."""
        if self._fresh is None:
            pytest.skip("the target cannot be started again with another upstream")
        if kind not in self.down:
            pytest.skip(f"no {kind} address on this platform")
        return self._fresh(upstream=self.down[kind])

    def door(self, fault: HandshakeFault) -> Door:
        """A door of the fake whose TLS handshakes misbehave as `fault` says (the same
        routes and journals: a request let through is seen). TLS runs only."""
        if self.provider.tls is None:
            pytest.skip("a TLS case: run with --upstream-tls")
        if self._fresh is None:
            pytest.skip("the target cannot be started again with another upstream")
        return self.provider.door(fault)

    def behind(self, door: Door) -> AbstractContextManager[SystemUnderTest]:
        """Another process of the same target whose `{upstream}` is `door`; stopped when
        the block ends."""
        assert self._fresh is not None
        return self._fresh(upstream=door.base_url)

    def health(self) -> Any:
        """`GET /health`, parsed; a failed case if it is not JSON (the target offers it)."""
        response = self.client.get("/health")
        try:
            return response.json()
        except ValueError:
            raise CaseFailed(f"GET /health: status {response.status_code}, not JSON") from None

    def settled_health(self, tries: int = 100) -> Any:
        """`GET /health` once no request is in flight (`requests.active` is 0), so that a
        request the client has left is counted before the report is judged. Bounded: after
        `tries` reports the last one is returned as it is, and the check says what it saw."""
        report = self.health()
        for _ in range(tries - 1):
            if report.get("requests", {}).get("active") == 0:
                break
            report = self.health()
        return report

    def metrics(self) -> str:
        return self.client.get("/metrics").text

    def record_of(self, x: Exchange) -> dict[str, Any] | None:
        """The health report's record of this exchange's request (found by its model)."""
        recent = self.health().get("recent", [])
        return next((r for r in recent if r.get("model") == x.scenario.model), None)

    def log_lines(self, x: Exchange) -> list[str]:
        """The target's log lines that name this exchange's request (by its model)."""
        if self.log_path is None or not self.log_path.exists():
            return []
        model = x.scenario.model
        return [line for line in self.log_path.read_text().splitlines() if model in line]

    def send(self, method: str, path: str, **request: Any) -> Exchange:
        """Any request the target should answer on its own (`StreamClient.send`), with the
        client's patience: a target that holds it is cut off, and the transcript says so.
        The exchange has no journal of its own: the upstream need not be asked."""
        transcript = self.client.send(
            method, path, patience=patience_for(self.timeouts, None), **request
        )
        nonce = secrets.token_hex(6)
        return Exchange(
            Scenario(nonce=nonce), transcript, Journal(nonce), self.secrets, asks_upstream=False
        )

    def simple_chat(
        self, scenario: Scenario, *, stream: bool = True, message: str = "hi"
    ) -> Exchange:
        """`POST /api/chat` (the seed's dialect) with the scenario in its model."""
        scenario = replace(scenario, nonce=secrets.token_hex(6))
        request = {"message": message, "model": scenario.model, "stream": stream}
        journal = self.provider.journal(scenario.nonce)
        transcript = self.client.send(
            "POST", "/api/chat", json=request, patience=patience_for(self.timeouts, journal)
        )
        return self._keep(Exchange(scenario, transcript, journal, self.secrets, dialect="api-chat"))

    def _keep(self, x: Exchange) -> Exchange:
        self.exchanges.append(x)
        return x

    def chat(
        self,
        scenario: Scenario,
        *,
        stream: bool = True,
        leave_after_events: int | None = None,
        leave_before_response: float | None = None,
        asks_upstream: bool = True,
        **body: Any,
    ) -> Exchange:
        """Send `scenario` through the target; `asks_upstream=False` where the fake is not
        the upstream (one that is down), so the premise is not that it was asked."""
        scenario = replace(scenario, nonce=secrets.token_hex(6))
        request = {
            "model": scenario.model,
            "messages": DEFAULT_MESSAGES,
            "stream": stream,
            **body,
        }
        journal = self.provider.journal(scenario.nonce)
        transcript = self.client.chat(
            request,
            leave_after_events=leave_after_events,
            leave_before_response=leave_before_response,
            patience=patience_for(self.timeouts, journal),
        )
        return self._keep(
            Exchange(scenario, transcript, journal, self.secrets, asks_upstream=asks_upstream)
        )

    def messages(
        self,
        scenario: Scenario,
        *,
        stream: bool = True,
        leave_after_events: int | None = None,
        leave_before_response: float | None = None,
        **body: Any,
    ) -> TypedExchange:
        """`POST /v1/messages`, the Anthropic Messages API, with the scenario in its model,
        as the anthropic SDK sends it (with `anthropic-version`); `body` adds to it."""
        request = {"max_tokens": 1024, "messages": DEFAULT_MESSAGES, "stream": stream, **body}
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        return self._typed(
            MESSAGES, scenario, request, headers, leave_after_events, leave_before_response
        )

    def responses(
        self,
        scenario: Scenario,
        *,
        stream: bool = True,
        leave_after_events: int | None = None,
        leave_before_response: float | None = None,
        **body: Any,
    ) -> TypedExchange:
        """`POST /v1/responses`, the OpenAI Responses API, with the scenario in its model;
        `body` adds to the request."""
        request = {"input": DEFAULT_MESSAGES, "stream": stream, **body}
        return self._typed(
            RESPONSES, scenario, request, {}, leave_after_events, leave_before_response
        )

    def _typed(
        self,
        api: str,
        scenario: Scenario,
        request: dict[str, Any],
        headers: dict[str, str],
        leave_after_events: int | None,
        leave_before_response: float | None,
    ) -> TypedExchange:
        scenario = replace(scenario, nonce=secrets.token_hex(6))
        journal = self.provider.journal(scenario.nonce)
        transcript = self.client.send(
            "POST",
            PATHS[api],
            json={"model": scenario.model, **request},
            headers=headers,
            leave_after_events=leave_after_events,
            leave_before_response=leave_before_response,
            patience=patience_for(self.timeouts, journal),
            record=TRANSCRIPTS[api],
        )
        x = TypedExchange(scenario, cast(TypedTranscript, transcript), journal, self.secrets)
        self.typed_exchanges.append(x)
        return x
