"""What every exchange is, whatever the API it speaks: a scenario sent through the target,
the client's transcript (A), the fake provider's journal (B), and the harms it is judged on.

`sut.Exchange` (chat completions, `/api/chat`) and `typed.TypedExchange` (the Anthropic
Messages and OpenAI Responses APIs) build on `BaseExchange`: each says what its premise is
and how a failure shows to its API's client; the rest is here (docs/verdicts.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from streamproof.fake_providers import Attempt, Journal, Scenario
from streamproof.fake_providers.plan import CHAT
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
    def broke_after_commit(self) -> bool:
        """The answer the client was given broke on the wire after its first event: the
        client must see that it failed."""
        streamed = self.streamed
        return (
            streamed is not None
            and self.transcript.status == 200
            and self.transcript.transport is not Transport.LEFT
            and any(f.split("-")[0] in BREAKS_AFTER_COMMIT for f in streamed.faults)
        )

    def premise(self) -> list[Finding]:
        """The upstream was asked, and the whole events it wrote before any fault reached
        the client: a case whose premise never happened cannot pass."""
        t = self.transcript
        if not self.asks_upstream or t.transport is Transport.LEFT:
            return []
        if not self.attempts:
            said = f"status {t.status}" if t.status is not None else "no answer"
            return [Finding(False, "premise: the upstream was asked", f"never; {said}", harm=True)]
        return self.delivered()

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
