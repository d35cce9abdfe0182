"""The system under test as the suites see it: send a scenario, get both sides back.

`sut.chat(scenario)` gives the scenario a fresh request id, sends it through the target,
and returns an `Exchange`: the client's transcript (A) and the fake provider's journal (B)
for that one request. Checks compare the two.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from fake_providers import Attempt, FakeProvider, Journal, Scenario, chat
from fake_providers.chat import Expected, expected, expected_usage
from harness.client import StreamClient
from harness.feed import FeedConnection, FeedRecorder, StalledClient
from harness.targets import OFFERS, Offers, Thresholds, Timeouts
from harness.transcript import Outcome, Transcript

# What every scenario asks: the fake provider's usage figures are computed for these.
DEFAULT_MESSAGES: list[dict[str, str]] = list(chat.DEFAULT_MESSAGES)


@dataclass
class Exchange:
    scenario: Scenario
    transcript: Transcript
    journal: Journal

    @property
    def attempts(self) -> list[Attempt]:
        return self.journal.attempts

    @property
    def streamed(self) -> Attempt | None:
        """The last attempt the fake answered with 200: the one the client was given."""
        answered = [a for a in self.attempts if a.status == 200]
        return answered[-1] if answered else None

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

    def describe(self) -> str:
        lines = [f"model: {self.scenario.model}", "client saw:", self.transcript.summary()]
        lines.append(f"upstream saw {len(self.attempts)} attempt(s):")
        for a in self.attempts:
            peer = (
                f", peer hung up at +{1000 * (a.peer_closed_at - a.received_at):.1f} ms"
                if a.peer_closed_at is not None
                else ""
            )
            lines.append(
                f"  #{a.number} faults {a.faults or '-'} status {a.status} "
                f"ending {a.ending} events {a.events_written} bytes {a.bytes_written}{peer}"
            )
        return "\n".join(lines)


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
    ) -> None:
        self.name = name
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

    def fresh(self, *, proxy_key: str | None = None) -> AbstractContextManager[SystemUnderTest]:
        """Another process of the same target with nothing recorded yet, for the cases that
        judge counters from zero (alerts); it is stopped when the block ends. With
        `proxy_key`, the config the harness writes gives the proxy that key of its own."""
        if self._fresh is None:
            pytest.skip("the target cannot be started afresh for one case")
        return self._fresh(proxy_key=proxy_key)

    def health(self) -> Any:
        """`GET /health`, parsed; an AssertionError (a failed case) if it is not JSON."""
        response = self.client.get("/health")
        try:
            return response.json()
        except ValueError:
            raise AssertionError(f"GET /health: status {response.status_code}, not JSON") from None

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

    def simple_chat(
        self, scenario: Scenario, *, stream: bool = True, message: str = "hi"
    ) -> Exchange:
        """`POST /api/chat` (the seed's dialect) with the scenario in its model."""
        scenario = replace(scenario, nonce=secrets.token_hex(6))
        request = {"message": message, "model": scenario.model, "stream": stream}
        transcript = self.client.send("POST", "/api/chat", json=request)
        return self._keep(Exchange(scenario, transcript, self.provider.journal(scenario.nonce)))

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
        **body: Any,
    ) -> Exchange:
        scenario = replace(scenario, nonce=secrets.token_hex(6))
        request = {
            "model": scenario.model,
            "messages": DEFAULT_MESSAGES,
            "stream": stream,
            **body,
        }
        transcript = self.client.chat(
            request,
            leave_after_events=leave_after_events,
            leave_before_response=leave_before_response,
        )
        return self._keep(Exchange(scenario, transcript, self.provider.journal(scenario.nonce)))
