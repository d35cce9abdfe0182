"""A typed exchange whose upstream was asked otherwise than the client asked: in the other
API (a translating gateway), or for a whole answer while the client streams (one that fakes
the stream). The case's events never happened, so it cannot pass; what the upstream said is
still judged, as far as the two APIs share it, and a client harmed still fails it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamproof.fake_providers.plan import MESSAGES, RESPONSES
from streamproof.harness import checks
from streamproof.harness.exchange import api_of
from streamproof.harness.sut import SystemUnderTest
from streamproof.harness.typed import Answer, TypedExchange, _canonical, neutral
from streamproof.harness.upstream import scenario
from streamproof.harness.verdict import Case, CaseFailed, Finding, Judge, Level, Strength
from tests import test_typed_checks

sut = test_typed_checks.sut  # the fixture: the fake provider as its own target

CASE = Case("9.99", "a case", "a requirement", "a source", "what a proxy does")


def _translated(
    sut: SystemUnderTest, client: str, upstream: str, *tokens: str, asked: tuple[str, ...] = ()
) -> TypedExchange:
    """What a gateway that asks the upstream in `upstream`'s API for a whole answer, and
    streams it to its client in `client`'s, makes of the scenario: the client's stream as
    the fake writes it in that API (for `tokens`), the upstream's journal of a whole answer
    in the other (for `asked`, by default the same tokens)."""
    send = {MESSAGES: sut.messages, RESPONSES: sut.responses}
    seen = send[client](scenario(*tokens))
    asked_upstream = send[upstream](scenario(*(asked or tokens)), stream=False)
    return replace(seen, journal=asked_upstream.journal)


def _verdict(x: TypedExchange, *findings_of: Finding) -> Level:
    judge = Judge(CASE)
    try:
        judge.saw(x)
        judge.check(checks.typed_answer_intact(x), checks.typed_usage_is(x), *findings_of)
    except CaseFailed:
        return Level.FAIL
    return judge.level


def test_a_translated_whole_answer_misses_both_premises_and_is_non_strict(
    sut: SystemUnderTest,
) -> None:
    x = _translated(sut, MESSAGES, RESPONSES, "chunks-4", "reasoning-2", "tools-2")
    assert (x.upstream_api, x.upstream_streams, x.asked_as_sent) == (RESPONSES, False, False)
    missed = [f for f in x.harms() if not f.ok]
    assert [f.premise for f in missed] == [True, True]
    assert "asked for a whole answer" in missed[0].observed
    assert "asked in the Responses API (/v1/responses)" in missed[1].observed
    # What the upstream said, as far as both APIs have it, is what the client got.
    assert checks.typed_answer_intact(x).ok
    assert checks.typed_usage_is(x).ok
    assert set(x.expected[1]) == {"input_tokens", "output_tokens"}
    assert _verdict(x) is Level.NON_STRICT


def test_a_premise_missed_is_non_strict_even_when_a_must_check_fails(
    sut: SystemUnderTest,
) -> None:
    x = _translated(sut, MESSAGES, RESPONSES, "chunks-4")
    assert _verdict(x, checks.status_is(x.transcript, 201)) is Level.NON_STRICT


def test_an_answer_altered_in_translation_is_a_harm(sut: SystemUnderTest) -> None:
    """The upstream's answer was cut for length; the client was told it ended its turn."""
    x = _translated(sut, MESSAGES, RESPONSES, "chunks-4", asked=("chunks-4", "finish-length"))
    finding = checks.typed_answer_intact(x)
    assert (finding.ok, finding.harm) == (False, True)
    assert "stop 'end' (upstream 'length')" in finding.observed
    assert _verdict(x) is Level.FAIL


def test_an_unbroken_upstream_answer_shows_no_failure(sut: SystemUnderTest) -> None:
    """The reset after event 3 of a stream never happens to a whole answer: there is no
    failure to show, and the invented end is no invention."""
    x = _translated(sut, MESSAGES, RESPONSES, "chunks-4", asked=("chunks-4", "reset_after-3"))
    assert x.answered is not None
    assert x.answered.faults == []
    assert not x.broke_after_commit
    assert x.failure_shown().ok


def test_a_faked_stream_in_the_same_api_keeps_blocks_and_signatures(
    sut: SystemUnderTest,
) -> None:
    x = _translated(sut, MESSAGES, MESSAGES, "chunks-4", "reasoning-2", "tools-2")
    assert [f.check for f in x.harms() if not f.ok] == [
        "premise: the upstream asked to stream, as the client asked"
    ]
    assert x.expected_answer.signatures
    assert x.expected_answer.blocks
    assert checks.typed_answer_intact(x).ok
    assert checks.typed_usage_is(x).ok


def test_the_reference_of_a_plain_exchange_is_unchanged(sut: SystemUnderTest) -> None:
    x = sut.responses(scenario("chunks-4", "reasoning-2", "tools-2"))
    assert x.asked_as_sent
    assert [f for f in x.harms() if not f.ok] == []
    assert _verdict(x) is Level.PASS


def test_what_a_stop_means_in_either_api() -> None:
    call = (("call_1", "f", '{"a": 1.0}'),)
    messages = neutral(Answer(blocks=("tool_use",), stop="tool_use", tools=call), same_api=False)
    responses = neutral(
        Answer(blocks=("function_call",), stop="completed", tools=call), same_api=False
    )
    assert messages == responses
    assert messages.tools == (("", "f", '{"a": 1}'),)
    refusal = neutral(Answer(stop="refusal"), same_api=False)
    assert refusal == neutral(Answer(stop="incomplete:content_filter"), same_api=False)
    assert refusal != neutral(Answer(stop="max_tokens"), same_api=False)


def test_one_json_number_however_spelt() -> None:
    assert _canonical({"days": [1, 2.5, -300.0]}) == _canonical({"days": [1, 2.5, -300]})
    assert _canonical(2.5) != _canonical(2)


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/v1/messages", MESSAGES),
        ("/b/v1/responses", RESPONSES),
        ("/v1/chat/completions", "chat"),
        ("/v1/messages?beta=true", MESSAGES),
        ("/v1/models", None),
    ],
)
def test_the_api_an_upstream_was_asked_in(path: str, api: str | None) -> None:
    assert api_of(path) == api


def test_a_judge_with_a_missed_premise_still_fails_a_harm() -> None:
    judge = Judge(replace(CASE, strength=Strength.MUST))

    judge.check(Finding(False, "premise: x", "not x", premise=True))
    judge.check(Finding(False, "a must", "no"))
    assert judge.level is Level.NON_STRICT
    with pytest.raises(CaseFailed):
        judge.check(Finding(False, "a harm", "yes", harm=True))


def test_an_end_after_a_translated_break_is_invented(sut: SystemUnderTest) -> None:
    """A gateway that translates a streamed Messages answer into Responses, and completes
    the response after the upstream closed mid-answer, invents its end."""
    client = sut.responses(scenario("chunks-8"))  # the client's: whole and completed
    upstream = sut.messages(scenario("chunks-8", "close_after-6"))  # what it was told
    x = replace(client, journal=upstream.journal, scenario=upstream.scenario)
    assert (x.upstream_api, x.upstream_streams) == (MESSAGES, True)
    assert x.broke_after_commit
    finding = x.failure_shown()
    assert (finding.ok, finding.harm) == (False, True)
    assert finding.observed.startswith("response.completed the upstream never sent")
    whole = replace(client, journal=sut.messages(scenario("chunks-8")).journal)
    assert whole.failure_shown().ok
