"""What several groups share: how a target without retries is judged, and the scenarios
and judgments of the typed-stream groups (9, the Anthropic Messages API; 10, the OpenAI
Responses API), whose cases say the same of two APIs."""

from __future__ import annotations

import pytest

from streamproof.harness import Judge, SystemUnderTest, checks
from streamproof.harness.exchange import BaseExchange
from streamproof.harness.typed import TypedExchange
from streamproof.harness.upstream import scenario
from streamproof.harness.verdict import Finding

# The sources the typed groups cite: the SDK model and the commit point.
TYPED = "streamproof policy: typed streams, as each SDK reads them (docs/verdicts.md)"
COMMIT = "streamproof policy: the commit point (docs/design.md)"
FAILURES = "streamproof policy: retry and fallback (docs/design.md)"


def without_retries(
    sut: SystemUnderTest, judge: Judge, x: BaseExchange, *, retry_after: bool = False
) -> None:
    """A target that does not offer retries and did not retry is judged on failing
    honestly (docs/verdicts.md): NOT-OFFERED if it did, FAIL if it did not."""
    if "retries" in sut.offers or len(x.attempts) != 1:
        return
    if x.transcript.status == 200:  # it had committed: the failure must show in the stream
        judge.offered("retries", checks.not_dressed_up(x))
    judge.offered("retries", *checks.failed_honestly(x, retry_after=retry_after))


# --- the typed groups -----------------------------------------------------------------------

# Write boundaries anywhere, line endings of every kind: the same answer (WHATWG HTML §9.2.6).
SPLITS = {
    "one-write-per-event": (),
    "all-events-in-one-write": ("coalesce",),
    "chop-1": ("chop-1",),
    "chop-2": ("chop-2",),
    "chop-7": ("chop-7",),
    "split-inside-utf8": ("split_utf8",),
    "crlf": ("eol-crlf",),
    "split-inside-crlf": ("eol-crlf", "split_eol"),
    "cr-only": ("eol-cr",),
    "cr-only-chop-1": ("eol-cr", "chop-1"),
}
# Text that stresses a relay, at the splits that matter for it.
TEXTS = {
    "emoji-split-utf8": ("text-emoji", "split_utf8"),
    "cjk-chop-1": ("text-cjk", "chop-1"),
    "combining": ("text-combining",),
    "control": ("text-control",),
}


# Reasoning and tool calls, whole and at the splits that cut inside them.
THINKING = {"one-write-per-event": (), "chop-7-split-utf8": ("chop-7", "split_utf8")}
TOOLS = {"one-write-per-event": ("chunks-0",), "chop-3": ("chunks-2", "chop-3")}


def variants(named: dict[str, tuple[str, ...]], *tokens: str) -> list[object]:
    """One parameter per name: the scenario of `tokens` and the name's own."""
    return [pytest.param(scenario(*tokens, *more), id=name) for name, more in named.items()]


# How an answer breaks after its event N: the fault's token, by the variant's name.
CUTS = {
    "reset": "reset_after",
    "reset-inside-an-event": "reset_inside",
    "close": "close_after",
    "close-inside-an-event": "cut_inside",
}


def breaks(after: int, *shapes: str, cuts: tuple[str, ...] = tuple(CUTS)) -> list[object]:
    """The ways an answer of 8 deltas breaks after its event `after` (a few deltas in):
    the `cuts` (a reset, a reset inside the next event, a clean close, a close inside the
    next event), and the upstream's own in-band errors of `shapes` in the next event."""
    cut = [pytest.param(scenario("chunks-8", f"{CUTS[name]}-{after}"), id=name) for name in cuts]
    errors = [
        pytest.param(scenario("chunks-8", f"upstream_error-{after + 1}-{shape}"), id=shape)
        for shape in shapes
    ]
    return [*cut, *errors]


def relayed_whole(judge: Judge, x: TypedExchange) -> None:
    """Status 200, the answer as the upstream wrote it, read whole by the API's SDK, and
    the stream ended by the API's end event, once."""
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.typed_answer_intact(x),
        checks.typed_ends_once(x),
    )


def broke_visibly(judge: Judge, x: TypedExchange) -> None:
    """Broken after the commit point: nothing replayed, and the failure visible to the
    API's SDK with no end invented (the harm every such exchange is judged on)."""
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.typed_nothing_replayed(x),
        checks.not_dressed_up(x),
    )


def whole_after_a_retry(x: TypedExchange) -> tuple[Finding, ...]:
    """The answer whole and ended, after at least one more upstream attempt."""
    return (
        checks.status_is(x.transcript, 200),
        checks.typed_answer_intact(x),
        checks.typed_ends_once(x),
        checks.attempts_at_least(x, 2),
    )
