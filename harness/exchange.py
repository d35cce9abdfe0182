"""What every exchange is, whatever the API it speaks: a scenario sent through the target,
the client's transcript (A), the fake provider's journal (B), and the harms it is judged on.

`sut.Exchange` (chat completions, `/api/chat`) and `typed.TypedExchange` (the Anthropic
Messages and OpenAI Responses APIs) build on `BaseExchange`: each says what its premise is
and how a failure shows to its API's client; the rest is here (docs/verdicts.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from streamproof.fake_providers import Attempt, Journal, Scenario
from streamproof.fake_providers.plan import CHAT, MESSAGES, RESPONSES
from streamproof.harness.transcript import Transcript, Transport
from streamproof.harness.verdict import Finding

# The fake's faults that break an answer after its first byte (`Attempt.faults` tokens).
BREAKS_AFTER_COMMIT = frozenset(
    {
        "reset_after",
        "reset_inside",
        "stall_after",
        "close_after",
        "cut_inside",
        "malformed",
        "nonobject",
        "upstream_error",
    }
)

# Each API's name in words, and the end of the path it is served at upstream.
NAMES = {CHAT: "chat completions", MESSAGES: "Messages", RESPONSES: "Responses"}
UPSTREAM_PATHS = {CHAT: "/chat/completions", MESSAGES: "/messages", RESPONSES: "/responses"}


def api_of(path: str) -> str | None:
    """The API an upstream request was made in, by its path (None: none of the three)."""
    path = path.split("?")[0].rstrip("/")
    return next((api for api, end in UPSTREAM_PATHS.items() if path.endswith(end)), None)


@dataclass
class BaseExchange:
    scenario: Scenario
    transcript: Transcript
    journal: Journal
    secrets: tuple[str, ...] = ()  # keys the target holds: none may come back out
    # The case's premise needs the upstream asked (False: the target may answer alone).
    asks_upstream: bool = True

    @property
    def api(self) -> str:
        """The API it speaks (`plan.API_NAMES`): chat completions, unless it says otherwise."""
        return CHAT

    @property
    def attempts(self) -> list[Attempt]:
        return self.journal.attempts

    @property
    def streamed(self) -> Attempt | None:
        """The last attempt the fake answered with 200: the one the client was given."""
        answered = [a for a in self.attempts if a.status == 200]
        return answered[-1] if answered else None

    def harms(self) -> list[Finding]:
        """What every exchange is judged on, whatever the case (docs/verdicts.md): its
        premise happened, the client was not held, no secret came back. Each is a harm
        finding: failed, it fails the case whatever its strength."""
        t = self.transcript
        harms = [*self.premise(), not_held(t), no_secret(t, self.secrets)]
        if self.broke_after_commit:
            harms.append(self.failure_shown())
        return harms

    @property
    def answered(self) -> Attempt | None:
        """The attempt whose answer the client was given: the last one answered with 200,
        else the last one."""
        return self.streamed or (self.attempts[-1] if self.attempts else None)

    @property
    def upstream_api(self) -> str | None:
        """The API the upstream was asked in (None: at a path of none of the three)."""
        answered = self.answered
        return api_of(answered.path) if answered is not None else self.api

    @property
    def upstream_streams(self) -> bool:
        """The upstream was asked to stream its answer."""
        answered = self.answered
        body = answered.body if answered is not None else None
        return isinstance(body, dict) and body.get("stream") is True

    @property
    def client_streams(self) -> bool:
        return self.transcript.request.get("stream") is True

    @property
    def asked_as_sent(self) -> bool:
        """The upstream was asked what the client asked: in the same API, streamed if the
        client's answer is (a translating proxy, or one that fakes a stream, did not)."""
        return self.answered is None or (
            self.upstream_api == self.api and self.upstream_streams == self.client_streams
        )

    def asked_otherwise(self) -> list[Finding]:
        """The upstream was asked in the client's API, to stream if the client streams. A
        target that asked otherwise did not meet the case's events: the case cannot pass,
        and only a harm fails it (`premise` findings: NON-STRICT otherwise)."""
        found: list[Finding] = []
        answered = self.answered
        if answered is None:
            return found
        upstream, answered_200 = self.upstream_api, self.streamed is not None
        if answered_200 and self.client_streams and not self.upstream_streams:
            found.append(
                Finding(
                    False,
                    "premise: the upstream asked to stream, as the client asked",
                    "it was asked for a whole answer, which the target cut into events "
                    "itself: the case's splits, faults and pings after the first byte never "
                    "happened, and the client waited for the whole answer before its first "
                    "token (a careful proxy streams)",
                    premise=True,
                )
            )
        # An error status the case's own fault made is judged as it is, in any API; one the
        # upstream gave without a fault is its refusal of a case its API cannot express.
        if upstream != self.api and (answered_200 or not answered.faults):
            asked = f"the {NAMES[upstream]} API" if upstream else "none of the three APIs"
            found.append(
                Finding(
                    False,
                    f"premise: the upstream asked in the {NAMES[self.api]} API, as the client",
                    f"it was asked in {asked} ({answered.path}): the events the case set up "
                    "were never written as such",
                    premise=True,
                )
            )
        return found

    @property
    def broke_after_commit(self) -> bool:
        """The answer the client was given broke on the wire after its first event: the
        client must see that it failed."""
        return (
            self.upstream_broke
            and self.transcript.status == 200
            and self.transcript.transport is not Transport.LEFT
        )

    @property
    def upstream_broke(self) -> bool:
        """The answer the fake gave the client's attempt broke after its first event (a
        fault of the case that never fired, on a whole answer, did not)."""
        streamed = self.streamed
        return streamed is not None and any(
            f.split("-")[0] in BREAKS_AFTER_COMMIT for f in streamed.faults
        )

    def premise(self) -> list[Finding]:
        """The upstream was asked, as the client asked (`asked_otherwise`), and the whole
        events it wrote before any fault reached the client: a case whose premise never
        happened cannot pass."""
        t = self.transcript
        if not self.asks_upstream or t.transport is Transport.LEFT:
            return []
        if not self.attempts:
            said = f"status {t.status}" if t.status is not None else "no answer"
            return [Finding(False, "premise: the upstream was asked", f"never; {said}", harm=True)]
        return [*self.asked_otherwise(), *self.delivered()]

    def delivered(self) -> list[Finding]:
        """The premise's second half, in the API's terms: what the upstream wrote before
        any fault (`good_events`) reached the client."""
        raise NotImplementedError

    def failure_shown(self) -> Finding:
        """A failed stream does not look finished to the API's client."""
        raise NotImplementedError

    def good_events(self) -> int:
        """How many whole events the client's attempt wrote before a fault spoiled one."""
        streamed = self.streamed
        events = streamed.events_written if streamed is not None else 0
        for fault in self.scenario.faults:  # an event the fault spoiled, and all after it
            spoiled = getattr(fault, "event", None)
            if isinstance(spoiled, int):
                events = min(events, spoiled - 1)
        return max(events, 0)

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


def not_held(t: Transcript) -> Finding:
    """The client's exchange ended: the target did not hold it past its timers."""
    held = t.transport is Transport.TIMED_OUT
    return Finding(
        not held,
        "the client's stream ends",
        t.transport_error if held else f"ended ({t.outcome.value})",
        harm=True,
    )


def no_secret(t: Transcript, secrets: tuple[str, ...]) -> Finding:
    """No key the target holds came back in a header, a body or an event."""
    where = []
    for key in secrets:
        if any(key in value for value in t.headers.values()):
            where.append("a response header")
        if key.encode() in t.body:
            where.append("the body")
    return Finding(
        not where,
        "no key disclosed",
        f"the key the target was given is in {' and '.join(where)}" if where else "none",
        harm=True,
    )
