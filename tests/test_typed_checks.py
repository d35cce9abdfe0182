"""The checks of typed streams on exchanges with the fake provider itself, as a target that
relays perfectly, and on what proxies make of the same answers: each check must be able to
fail, and say why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from streamproof.fake_providers import FakeProvider
from streamproof.fake_providers.plan import MESSAGES, RESPONSES
from streamproof.harness import checks
from streamproof.harness.client import StreamClient
from streamproof.harness.sse import Event, SSEDecoder
from streamproof.harness.sut import SystemUnderTest
from streamproof.harness.targets import Timeouts
from streamproof.harness.transcript import Arrival, Outcome
from streamproof.harness.typed import TRANSCRIPTS, TypedExchange
from streamproof.harness.upstream import scenario
from tests.test_typed_sdk import (
    ANTHROPIC_ERROR,
    END,
    OPENAI_ERROR,
    RESPONSES_ERROR,
    Events,
    Proxy,
    _frame,
    _summed,
    _then,
    _typed,
    _untyped,
)


@pytest.fixture(scope="module")
def sut() -> Iterator[SystemUnderTest]:
    """The fake provider as its own target: a perfect relay of itself."""
    with FakeProvider() as fake:
        client = StreamClient(f"http://{fake.host}:{fake.port}")
        try:
            yield SystemUnderTest("the fake itself", client, fake, Timeouts())
        finally:
            client.close()


def _exchange(
    sut: SystemUnderTest, api: str, *tokens: str, proxy: Proxy | None = None
) -> TypedExchange:
    """The fake's answer to `tokens`, as the client got it, or as `proxy` would relay it."""
    send = sut.messages if api == MESSAGES else sut.responses
    x = send(scenario(*tokens))
    if proxy is None:
        return x
    relayed = _frame(proxy(SSEDecoder().feed(x.transcript.body)))
    t = TRANSCRIPTS[api](request=x.transcript.request, sent_at=x.transcript.sent_at)
    t.status, t.headers, t.transport = 200, dict(x.transcript.headers), x.transcript.transport
    t.chunks, t.ended_at = [Arrival(x.transcript.sent_at, relayed)], x.transcript.ended_at
    return replace(x, transcript=t)


@pytest.mark.parametrize("api", [MESSAGES, RESPONSES])
def test_a_perfect_relay_passes_every_check(sut: SystemUnderTest, api: str) -> None:
    x = _exchange(sut, api, "chunks-4", "reasoning-2", "tools-2")
    found = [
        *x.harms(),
        checks.typed_answer_intact(x),
        checks.typed_ends_once(x),
        checks.typed_usage_is(x),
        checks.same_events(x),
        checks.events_typed(x.transcript),
        checks.typed_nothing_replayed(x),
    ]
    assert [f for f in found if not f.ok] == []
    assert x.axes() == ("whole", "done")


def test_pings_are_counted(sut: SystemUnderTest) -> None:
    x = _exchange(sut, MESSAGES, "chunks-4", "ping-5")
    assert checks.pings_forwarded(x).ok
    dropped = _exchange(sut, MESSAGES, "chunks-4", "ping-5", proxy=_without_pings)
    finding = checks.pings_forwarded(dropped)
    assert (finding.ok, finding.should, finding.observed) == (False, True, "0 of 2 pings")
    assert checks.typed_answer_intact(dropped).ok  # the SDK skips them: nothing else lost


def _without_pings(events: Events) -> Events:
    return [e for e in events if e.event != "ping"]


@pytest.mark.parametrize(
    ("api", "cut", "end"),
    [
        (MESSAGES, "close_after-6", "message_stop"),
        (RESPONSES, "close_after-7", "response.completed"),
    ],
)
def test_an_end_invented_after_a_break_is_a_harm(
    sut: SystemUnderTest, api: str, cut: str, end: str
) -> None:
    x = _exchange(sut, api, "chunks-8", cut, proxy=_then(END[api]))
    finding = x.failure_shown()
    assert not finding.ok
    assert finding.harm
    assert finding.observed.startswith(f"{end} the upstream never sent")
    assert x.transcript.outcome is Outcome.DONE


@pytest.mark.parametrize(
    ("api", "cut", "error", "shaped"),
    [
        (MESSAGES, "close_after-6", _typed("error", ANTHROPIC_ERROR), True),
        (MESSAGES, "close_after-6", _typed("error", OPENAI_ERROR), False),
        (RESPONSES, "close_after-7", _typed("error", RESPONSES_ERROR), True),
        (RESPONSES, "close_after-7", _typed("message", OPENAI_ERROR), False),
    ],
)
def test_a_visible_break_in_or_out_of_the_apis_shape(
    sut: SystemUnderTest, api: str, cut: str, error: Event, shaped: bool
) -> None:
    x = _exchange(sut, api, "chunks-8", cut, proxy=_then(error))
    assert x.failure_shown().ok
    assert x.transcript.outcome is Outcome.ERROR
    assert checks.api_error_event(x).ok is shaped


def test_an_untyped_error_is_no_error_to_the_anthropic_sdk(sut: SystemUnderTest) -> None:
    chat = _typed("message", OPENAI_ERROR)
    x = _exchange(sut, MESSAGES, "chunks-8", "close_after-6", proxy=_then(chat))
    finding = x.failure_shown()
    assert not finding.ok
    assert "error event(s) the anthropic SDK does not see" in finding.observed


def test_a_clean_end_without_the_end_event_is_a_truncation(sut: SystemUnderTest) -> None:
    x = _exchange(sut, RESPONSES, "chunks-8", "close_after-7")
    assert x.transcript.outcome is Outcome.TRUNCATED
    assert "hands its caller the half answer" in x.failure_shown().observed
    assert x.axes() == ("prefix", "truncated")  # deltas 5 to 7 came: an honest prefix


def test_untyped_events_lose_the_messages_answer_not_the_responses_one(
    sut: SystemUnderTest,
) -> None:
    lost = _exchange(sut, MESSAGES, "chunks-4", proxy=_untyped)
    assert [f.check for f in lost.harms() if not f.ok] == [
        "premise: what the upstream sent reached the client"
    ]
    kept = _exchange(sut, RESPONSES, "chunks-4", proxy=_untyped)
    assert checks.typed_answer_intact(kept).ok
    finding = checks.events_typed(kept.transcript)
    assert (finding.ok, finding.should) == (False, True)


def test_summed_output_tokens_are_not_the_usage(sut: SystemUnderTest) -> None:
    x = _exchange(sut, MESSAGES, "chunks-4", proxy=_summed)
    finding = checks.typed_usage_is(x)
    assert not finding.ok
    assert "output_tokens" in finding.observed
    assert not checks.same_events(x).ok


def test_sequence_numbers_out_of_order(sut: SystemUnderTest) -> None:
    def renumbered(events: Events) -> Events:
        return [
            Event(e.event, json.dumps({**json.loads(e.data), "sequence_number": 0})) for e in events
        ]

    x = _exchange(sut, RESPONSES, "chunks-2", proxy=renumbered)
    assert checks.typed_answer_intact(x).ok
    assert not checks.sequence_numbers_increase(x.transcript).ok
