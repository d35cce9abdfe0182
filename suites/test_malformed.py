"""Group 3 — malformed upstreams: what a proxy does with what it should never have been sent.

For each family of bad input there are two claims. The MUST: the proxy does not make it
worse — nothing replayed, no hang, and the damage never hidden behind a clean-looking end.
The SHOULD: the proxy reports it the one way clients understand, a single OpenAI-style
error event and no `[DONE]`. A plain pass-through that forwards the bad bytes as they came
meets the first and not the second; the reference proxy meets both (its policy: end the
stream with an in-band error at the first payload it cannot relay).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamproof.harness import Judge, Strength, SystemUnderTest, case, checks
from streamproof.harness.upstream import scenario

OPENAI = "OpenAI chat completions streaming contract"
POLICY = "streamproof policy (docs/design.md, docs/failures.md)"

BAD_PAYLOADS = [
    pytest.param(("malformed-4",), id="invalid-json"),
    pytest.param(("nonobject-4-array",), id="array"),
    pytest.param(("nonobject-4-string",), id="string"),
    pytest.param(("nonobject-4-number",), id="number"),
    pytest.param(("nonobject-4-null",), id="null"),
]
ERROR_SHAPES = [
    pytest.param(f"upstream_error-4-{shape}", id=shape)
    for shape in ("object", "flat", "event", "finish")
]


@case(
    "3.1",
    "A payload that is not a JSON object is not hidden",
    requirement="Each data payload is one JSON chunk object. When the upstream breaks that, "
    "the client must be able to tell: a clean-looking answer with a hole in it is a lie.",
    source=OPENAI,
    expected="the bad payload forwarded, or an error event, or an unclean end; nothing replayed",
)
@pytest.mark.parametrize("tokens", BAD_PAYLOADS)
def test_bad_payload_not_hidden(
    sut: SystemUnderTest, judge: Judge, tokens: tuple[str, ...]
) -> None:
    x = sut.chat(scenario("chunks-8", *tokens))
    judge.saw(x)
    judge.check(
        checks.fault_visible(x),
        checks.nothing_replayed(x),
        checks.ended_within(x.transcript, x.transcript.sent_at, sut.timeouts.bound("total")),
    )


@case(
    "3.2",
    "A payload that is not a JSON object ends the stream with an error event",
    requirement="A payload the proxy cannot relay is an upstream failure after the commit "
    'point: one in-band `{"error": {...}}` event, no [DONE].',
    source=POLICY,
    expected="one OpenAI-style error event, last, no [DONE]",
    strength=Strength.SHOULD,
)
@pytest.mark.parametrize("tokens", BAD_PAYLOADS)
def test_bad_payload_reported(sut: SystemUnderTest, judge: Judge, tokens: tuple[str, ...]) -> None:
    x = sut.chat(scenario("chunks-8", *tokens))
    judge.saw(x)
    judge.check(checks.openai_error_event(x.transcript), checks.nothing_replayed(x))


@case(
    "3.3",
    "An upstream's own error event is never dressed up as a clean finish",
    requirement="In-band errors come as {'error': {...}}, {'object': 'error'}, `event: error` "
    "or finish_reason 'error'; after one, no [DONE] and no other finish_reason.",
    source=POLICY,
    expected="no [DONE], no finish_reason but 'error', nothing replayed",
)
@pytest.mark.parametrize("token", ERROR_SHAPES)
def test_upstream_error_not_dressed_up(sut: SystemUnderTest, judge: Judge, token: str) -> None:
    x = sut.chat(scenario("chunks-8", token))
    judge.saw(x)
    judge.check(checks.not_dressed_up(x), checks.nothing_replayed(x))


@case(
    "3.4",
    "An upstream's own error event reaches the client in the OpenAI shape",
    requirement="Recognise every shape of upstream error and forward one OpenAI-style error "
    'event, `data: {"error": {"message", "type", "code"}}`, that keeps the upstream\'s message.',
    source=POLICY,
    expected='one {"error": {...}} event, last, no [DONE]',
    strength=Strength.SHOULD,
)
@pytest.mark.parametrize("token", ERROR_SHAPES)
def test_upstream_error_normalised(sut: SystemUnderTest, judge: Judge, token: str) -> None:
    x = sut.chat(scenario("chunks-8", token))
    judge.saw(x)
    judge.check(checks.openai_error_event(x.transcript), checks.upstream_message_kept(x))


@case(
    "3.5",
    "An unterminated final [DONE] after a finish_reason",
    requirement="The unterminated tail at end of input is never dispatched (WHATWG HTML "
    "§9.2.6), but a finish_reason already ended the answer: the client still gets it whole.",
    source="WHATWG HTML §9.2.6",
    expected="the whole answer with its finish_reason; nothing invented",
)
def test_unterminated_done(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-8", "unterminated"))
    judge.saw(x)
    judge.check(checks.answer_intact(x))


@case(
    "3.6",
    "An unterminated final [DONE] is completed",
    requirement="A finish_reason (or [DONE]) is a clean end; downstream gets both.",
    source=POLICY,
    expected="the whole answer, then exactly one terminated [DONE]",
    strength=Strength.SHOULD,
)
def test_unterminated_done_completed(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-8", "unterminated"))
    judge.saw(x)
    judge.check(checks.ends_with_single_done(x.transcript))


@case(
    "3.7",
    "An empty data event does not break the stream",
    requirement="`data:` with an empty value dispatches an event whose data is empty (WHATWG "
    "HTML §9.2.6); it carries nothing, and the answer goes on.",
    source="WHATWG HTML §9.2.6",
    expected="the whole answer, then [DONE]",
    strength=Strength.SHOULD,
)
@pytest.mark.parametrize(
    "split", [pytest.param((), id="events"), pytest.param(("chop-1",), id="chop-1")]
)
def test_empty_data_event(sut: SystemUnderTest, judge: Judge, split: tuple[str, ...]) -> None:
    x = sut.chat(scenario("chunks-8", "empty_data", *split))
    judge.saw(x)
    # The stream is legal: an answer the upstream sent that does not arrive whole is
    # content lost (a harm), however soon the proxy hung up on the upstream after the
    # empty event. (An upstream that answered an error sent none: no harm in that.)
    sent = x.streamed is not None
    judge.check(
        replace(checks.answer_intact(x), harm=sent), checks.ends_with_single_done(x.transcript)
    )


@case(
    "3.8",
    "An answer cut off inside an event is not dressed up as a clean finish",
    requirement="The unterminated tail at end of input is not dispatched (WHATWG HTML "
    "§9.2.6); with no finish_reason and no [DONE] before it, the answer is truncated.",
    source="WHATWG HTML §9.2.6",
    expected="a prefix of the answer; no [DONE]; no finish_reason",
)
def test_cut_inside_event_not_dressed_up(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-8", "cut_inside-4"))
    judge.saw(x)
    judge.check(checks.nothing_replayed(x), checks.not_dressed_up(x))


@case(
    "3.9",
    "An answer cut off inside an event is reported as a truncation",
    requirement="The proxy notices the unterminated tail: it is a truncation signal, not "
    "nothing; one in-band error event follows.",
    source=POLICY,
    expected='one {"error": {...}} event, last, no [DONE]',
    strength=Strength.SHOULD,
)
def test_cut_inside_event_reported(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-8", "cut_inside-4"))
    judge.saw(x)
    judge.check(checks.openai_error_event(x.transcript), checks.upstream_message_kept(x))
