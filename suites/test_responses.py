"""Group 10 — the OpenAI Responses API (`POST /v1/responses`), passed through.

A Responses stream is typed events (`response.created`, `response.output_item.added`,
`response.output_text.delta`, …, `response.completed`), each an `event:` line and a
`data:` line with a `sequence_number`, and every case judges it as the `openai` SDK reads
it (`harness.typed`): the SDK dispatches on the payload's `type`, raises on a payload with
an `error` member or one it cannot parse, shows its caller `error` and `response.failed`
events, and ends its caller's loop normally when the body ends cleanly, whether
`response.completed` came or not. A target that does not offer `responses` is not asked
(SKIP).
"""

from __future__ import annotations

import pytest

from streamproof.harness import Judge, Strength, SystemUnderTest, case, checks
from streamproof.harness.upstream import Scenario, scenario

from ._shared import (
    COMMIT,
    FAILURES,
    SPLITS,
    TEXTS,
    THINKING,
    TOOLS,
    TYPED,
    breaks,
    broke_visibly,
    never_answers,
    relayed_whole,
    released_before_first_byte,
    released_mid_stream,
    retried,
    retried_after_429,
    stall_ends_in_time,
    variants,
)

RESPONSES = "OpenAI Responses API, streaming (docs/verdicts.md: typed streams)"
# Events of `chunks-8`: 1 response.created, 2 response.in_progress, 3 output_item.added,
# 4 content_part.added, 5-12 output_text deltas, 13-15 the item's done events, 16
# response.completed. After event 7: three deltas.
AFTER = 7


@case(
    "10.1",
    "The answer arrives whole at every split point",
    requirement="Events end at a blank line of CRLF, LF or CR, also when its halves arrive in "
    "different reads; a character split across reads is decoded whole (WHATWG HTML §9.2.6). "
    "The openai SDK reads the same answer whatever the write boundaries.",
    source=RESPONSES,
    expected="status 200, the same text, status and usage, and one response.completed, last",
)
@pytest.mark.parametrize("tokens", variants(SPLITS, "chunks-8"))
def test_whole_at_every_split(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    relayed_whole(judge, sut.responses(tokens))


@case(
    "10.2",
    "Every event keeps its `event:` line",
    requirement="The API names every event's type on its `event:` line; the openai SDK reads "
    "the type from the payload, but a client that dispatches on the line (EventSource's "
    "listeners, other SDKs) does not.",
    source=TYPED,
    expected="the whole answer; each `event:` line names its data's type",
    strength=Strength.SHOULD,
)
def test_event_lines_kept(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    x = sut.responses(scenario("chunks-6", "reasoning-2", "tools-2"))
    relayed_whole(judge, x)
    judge.check(checks.events_typed(x.transcript))


@case(
    "10.3",
    "The upstream's events arrive as it wrote them, their sequence numbers in order",
    requirement="A pass-through relays every event once, in order, with its payload as the "
    "upstream wrote it (ids, output indexes, usage; re-serialising is allowed); the "
    "`sequence_number`s increase.",
    source=TYPED,
    expected="the same events, types and payloads, in the same order; increasing sequence numbers",
    strength=Strength.SHOULD,
)
def test_events_as_written(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    x = sut.responses(scenario("chunks-6", "reasoning-2", "tools-2"))
    judge.saw(x)
    judge.check(checks.same_events(x), checks.sequence_numbers_increase(x.transcript))


@case(
    "10.4",
    "A reasoning summary arrives whole, apart from the text",
    requirement="A reasoning item streams its summary in `response.reasoning_summary_text."
    "delta`s, before the message; it is never merged into the answer's text.",
    source=RESPONSES,
    expected="the reasoning summary and the text, each exactly as the upstream sent it",
)
@pytest.mark.parametrize("tokens", variants(THINKING, "chunks-3", "reasoning-4"))
def test_reasoning_summary(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    relayed_whole(judge, sut.responses(tokens))


@case(
    "10.5",
    "A function call's arguments arrive whole",
    requirement="A function_call item streams its arguments as `response.function_call_"
    "arguments.delta` fragments cut anywhere; joined in order they are the JSON the model "
    "wrote.",
    source=RESPONSES,
    expected="one function call, its call_id, name and arguments exactly the upstream's",
)
@pytest.mark.parametrize("tokens", variants(TOOLS, "tools-6"))
def test_function_call_arguments(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    relayed_whole(judge, sut.responses(tokens))


@case(
    "10.6",
    "Reasoning, message and function call keep their output items and order",
    requirement="Each output item streams between its `response.output_item.added` and "
    "`.done`, numbered by `output_index`; items are neither merged nor reordered.",
    source=RESPONSES,
    expected="three output items, reasoning, message and function_call, each whole",
)
def test_items_in_order(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    relayed_whole(judge, sut.responses(scenario("chunks-4", "reasoning-3", "tools-3")))


@case(
    "10.7",
    "Nothing is lost or duplicated over a long answer",
    requirement="Every event the upstream sends reaches the client once, in order.",
    source=RESPONSES,
    expected="300 text deltas read whole, then response.completed",
)
def test_long_answer(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    relayed_whole(judge, sut.responses(scenario("chunks-300")))


@case(
    "10.8",
    "Every way a response ends reaches the client",
    requirement="A response ends with `response.completed`, or with `response.incomplete` and "
    "its reason (`max_output_tokens`, `content_filter`), which the client acts on.",
    source=RESPONSES,
    expected="the upstream's end event, status and incomplete reason",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-4"), id="completed"),
        pytest.param(scenario("chunks-4", "finish-length"), id="max_output_tokens"),
        pytest.param(scenario("chunks-4", "finish-content_filter"), id="content_filter"),
    ],
)
def test_end_states(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    relayed_whole(judge, sut.responses(tokens))


@case(
    "10.9",
    "Text that stresses a relay arrives unchanged",
    requirement="Text deltas are JSON strings of any Unicode: emoji sequences, CJK, "
    "combining marks, escaped control characters; a relay passes them as they are.",
    source=RESPONSES,
    expected="the same text, character for character",
)
@pytest.mark.parametrize("tokens", variants(TEXTS, "chunks-8"))
def test_stress_text(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    relayed_whole(judge, sut.responses(tokens))


@case(
    "10.10",
    "A whole (non-streamed) response is the upstream's",
    requirement="Without `stream`, the answer is one `response` object: every output item, "
    "the status and the usage as the upstream sent them.",
    source=RESPONSES,
    expected="status 200, every output item exactly, the status and the usage",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-6"), id="text"),
        pytest.param(scenario("chunks-3", "reasoning-2", "tools-3"), id="reasoning-and-call"),
    ],
)
def test_whole_response(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    x = sut.responses(tokens, stream=False)
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.typed_answer_intact(x),
        checks.typed_usage_is(x),
    )


@case(
    "10.11",
    "A payload that is not JSON is not hidden",
    requirement="A broken payload mid-stream is an upstream failure after the commit point: "
    "the SDK raises on it, or is shown an error; never an answer with a hole in it that ends "
    "with response.completed.",
    source=COMMIT,
    expected="the SDK raises or reads an error; nothing replayed",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-8", f"malformed-{AFTER}"), id="malformed"),
        pytest.param(scenario("chunks-8", f"nonobject-{AFTER}-array"), id="array"),
    ],
)
def test_bad_payload_not_hidden(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    x = sut.responses(tokens)
    judge.saw(x)
    judge.check(checks.typed_nothing_replayed(x), checks.typed_fault_visible(x))


@case(
    "10.12",
    "A payload that is not JSON is reported with one error event in the Responses shape",
    requirement="After the commit point an upstream failure becomes one `error` event "
    '(`{"type": "error", "code", "message", "sequence_number"}`), and the stream ends there: '
    "no response.completed.",
    source=COMMIT,
    expected="one `error` event (or response.failed), last",
    strength=Strength.SHOULD,
)
def test_bad_payload_reported(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    x = sut.responses(scenario("chunks-8", f"malformed-{AFTER}"))
    judge.saw(x)
    judge.check(checks.api_error_event(x))


@case(
    "10.13",
    "A break after the commit point is visible, nothing replayed, nothing invented",
    requirement="After the commit point the relay never replays content, and a broken stream "
    "must not look finished to the SDK: an `error` event, `response.failed`, or an aborted "
    "transfer. A clean end without response.completed, or a response.completed the upstream "
    "never sent, hands the SDK's caller half an answer as a whole one.",
    source=COMMIT,
    expected="a prefix of the answer; an error the SDK shows; no response.completed",
)
@pytest.mark.parametrize("tokens", breaks(AFTER, "event", "failed"))
def test_break_visible(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    broke_visibly(judge, sut.responses(tokens))


@case(
    "10.14",
    "A break after the commit point is reported with one error event in the Responses shape",
    requirement="After the commit point an upstream failure becomes exactly one `error` event "
    "(or `response.failed`), and the stream ends; an error the upstream sent itself keeps "
    "its message.",
    source=COMMIT,
    expected="one Responses error event, last, no response.completed",
    strength=Strength.SHOULD,
)
@pytest.mark.parametrize("tokens", breaks(AFTER, "event", cuts=("reset", "close")))
def test_break_reported(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    x = sut.responses(tokens)
    judge.saw(x)
    judge.check(checks.api_error_event(x))


@case(
    "10.15",
    "A stall after the commit point ends the stream within the idle timer",
    requirement="A stalled upstream must not hang the client: the idle timer fires while the "
    "upstream is silent, and the failure is visible to the SDK.",
    source=COMMIT,
    expected="the stream over within the declared idle timer (with tolerance), an error the "
    "SDK shows, no response.completed",
)
def test_stall(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    stall_ends_in_time(sut, judge, sut.responses, AFTER)


@case(
    "10.16",
    "The upstream is closed when the client leaves mid-stream",
    requirement="When the client goes away, the upstream request is closed at once.",
    source=COMMIT,
    expected="the fake provider sees the target hang up within 0.5 s of the client, and no "
    "new attempt",
)
def test_client_leaves_mid_stream(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    released_mid_stream(judge, sut.responses, after=6)


@case(
    "10.17",
    "The upstream is closed when the client leaves before the first byte",
    requirement="When the client goes away while the upstream has not answered, the upstream "
    "request is closed at once.",
    source=COMMIT,
    expected="the fake provider sees the target hang up before its own first-byte timer "
    "could have fired, and no new attempt",
)
def test_client_leaves_before_first_byte(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    released_before_first_byte(sut, judge, sut.responses)


@case(
    "10.18",
    "A failure before the commit point is retried to success",
    requirement="Before the first byte reaches the client nothing is lost by asking again: a "
    "reset, a 500 or a 503 is retried, twice in a row too.",
    source=FAILURES,
    expected="status 200, the whole answer once, after another upstream attempt; without the "
    "`retries` offer, an honest error (NOT-OFFERED)",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-6", "reset_before_headers", "first-1"), id="reset"),
        pytest.param(scenario("chunks-6", "reset_before_headers", "first-2"), id="two-resets"),
        pytest.param(scenario("chunks-6", "status-500", "first-1"), id="500"),
        pytest.param(scenario("chunks-6", "status-503", "first-1"), id="503"),
    ],
)
def test_retried_before_commit(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    retried(sut, judge, sut.responses(tokens))


@case(
    "10.19",
    "A 429 is retried after its Retry-After, or passed on with it",
    requirement="Retry-After says how long the client ought to wait (RFC 9110 §10.2.3): a "
    "relay that retries waits that long; one that does not passes the 429 on with it.",
    source="RFC 9110 §10.2.3",
    expected="status 200 after a retry no sooner than 1 s; without retries, the 429 with its "
    "Retry-After and a JSON error body",
    strength=Strength.SHOULD,
)
def test_429_retry_after(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    retried_after_429(sut, judge, sut.responses)


@case(
    "10.20",
    "A failure before the commit point that persists is a real error status",
    requirement="When every attempt fails before the first byte, the client gets an error "
    'status (502 for a reset, the upstream\'s own 5xx) with `{"error": {"message": ...}}`, '
    "so that the SDK raises the right error; never a 200.",
    source=COMMIT,
    expected="status 502 (or the upstream's 500) with a JSON error body; another body in the "
    "right status class: NON-STRICT",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-4", "status-500"), id="500"),
        pytest.param(scenario("chunks-4", "reset_before_headers"), id="reset"),
    ],
)
def test_persistent_failure(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    x = sut.responses(tokens)
    judge.saw(x)
    judge.check(*checks.failed_honestly(x))


@case(
    "10.21",
    "An upstream 4xx reaches the client as the upstream said it",
    requirement="What the upstream said of its error is never lost: its status class, and "
    "its message, type and code, which the SDK turns into the exception its caller handles.",
    source="streamproof policy (docs/verdicts.md)",
    expected="a 4xx with the upstream's message, type and code",
)
def test_upstream_4xx_kept(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    x = sut.responses(scenario("chunks-4", "status-400"))
    judge.saw(x)
    judge.check(checks.upstream_error_kept(x))


@case(
    "10.22",
    "An upstream that never answers gives the client an error, not a hang",
    requirement="A first-byte timer bounds the wait for an upstream that never answers; the "
    "client then gets a real error status with a JSON error body.",
    source=COMMIT,
    expected="a 5xx with a JSON error body, within the declared total timer",
)
def test_never_answers(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("responses")
    never_answers(sut, judge, sut.responses)


@case(
    "10.23",
    "Usage exactly as the Responses API reports it",
    requirement="`response.completed` alone carries the usage: input, output (with its "
    "reasoning tokens) and total; a relay passes it on unchanged.",
    source=RESPONSES,
    expected="input, output, reasoning and total tokens as the upstream reported them",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-8"), id="text"),
        pytest.param(scenario("chunks-3", "reasoning-3", "tools-3"), id="reasoning-and-call"),
    ],
)
def test_usage(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("responses")
    x = sut.responses(tokens)
    judge.saw(x)
    judge.check(checks.typed_usage_is(x))
