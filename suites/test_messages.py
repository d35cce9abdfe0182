"""Group 9 — the Anthropic Messages API (`POST /v1/messages`), passed through.

A Messages stream is typed events (`message_start`, `content_block_*`, `ping`,
`message_delta`, `message_stop`), each an `event:` line and a `data:` line, and every case
judges it as the `anthropic` SDK reads it (`harness.typed`): the SDK dispatches on the
`event:` line, raises on `event: error`, skips `ping`, and ends its caller's loop normally
when the body ends cleanly, `message_stop` or not. A target that does not offer
`messages` is not asked (SKIP).
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

ANTHROPIC = "Anthropic Messages API, streaming (docs/verdicts.md: typed streams)"
# Events of `chunks-8`: 1 message_start, 2 content_block_start, 3 ping, 4-11 text deltas,
# 12 content_block_stop, 13 message_delta, 14 message_stop. After event 6: three deltas.
AFTER = 6


@case(
    "9.1",
    "The answer arrives whole at every split point",
    requirement="Events end at a blank line of CRLF, LF or CR, also when its halves arrive in "
    "different reads; a character split across reads is decoded whole (WHATWG HTML §9.2.6). "
    "The anthropic SDK reads the same answer whatever the write boundaries.",
    source=ANTHROPIC,
    expected="status 200, the same text, stop reason and usage, and one message_stop, last",
)
@pytest.mark.parametrize("tokens", variants(SPLITS, "chunks-8"))
def test_whole_at_every_split(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    relayed_whole(judge, sut.messages(tokens))


@case(
    "9.2",
    "Every event keeps its `event:` line",
    requirement="The anthropic SDK dispatches on the `event:` line: an event without one is "
    "skipped, so a relay that drops the lines delivers an answer the SDK never reads. Each "
    "line names the type its data says.",
    source=TYPED,
    expected="the whole answer read by the SDK; each `event:` line names its data's type "
    "(a wrong name the SDK survives: NON-STRICT)",
)
def test_event_lines_kept(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    x = sut.messages(scenario("chunks-6", "reasoning-2", "tools-2"))
    relayed_whole(judge, x)
    judge.check(checks.events_typed(x.transcript))


@case(
    "9.3",
    "The upstream's events arrive as it wrote them",
    requirement="A pass-through relays every event once, in order, with its payload as the "
    "upstream wrote it (ids, indexes, usage; re-serialising is allowed).",
    source=TYPED,
    expected="the same events, types and payloads, in the same order (pings aside)",
    strength=Strength.SHOULD,
)
def test_events_as_written(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    x = sut.messages(scenario("chunks-6", "reasoning-2", "tools-2"))
    judge.saw(x)
    judge.check(checks.same_events(x))


@case(
    "9.4",
    "Pings between and inside blocks change nothing",
    requirement="The API sends `event: ping` anywhere in the stream; the SDK skips it. A relay "
    "forwards the answer around it whole, and the pings themselves (a client's keep-alive).",
    source=ANTHROPIC,
    expected="the whole answer and one message_stop; every upstream ping forwarded (SHOULD)",
)
@pytest.mark.parametrize(
    "tokens",
    variants(
        {"inside-a-block": (), "all-events-in-one-write": ("coalesce",), "chop-7": ("chop-7",)},
        "chunks-6",
        "ping-5",
        "ping-7",
    ),
)
def test_pings_interleaved(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    x = sut.messages(tokens)
    relayed_whole(judge, x)
    judge.check(checks.pings_forwarded(x))


@case(
    "9.5",
    "A thinking block and its signature arrive whole",
    requirement="Extended thinking streams `thinking_delta`s, then one `signature_delta` that "
    "a client must send back unchanged: a signature lost or altered breaks the next turn.",
    source=ANTHROPIC,
    expected="the thinking, its signature, then the text, exactly as the upstream sent them",
)
@pytest.mark.parametrize("tokens", variants(THINKING, "chunks-3", "reasoning-4"))
def test_thinking_and_signature(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    relayed_whole(judge, sut.messages(tokens))


@case(
    "9.6",
    "A tool's input JSON arrives whole",
    requirement="A tool_use block streams its input as `input_json_delta` fragments cut "
    "anywhere; joined in order they are the JSON the model wrote.",
    source=ANTHROPIC,
    expected="one tool_use block, its id, name and input JSON exactly the upstream's; stop "
    "reason tool_use",
)
@pytest.mark.parametrize("tokens", variants(TOOLS, "tools-6"))
def test_tool_input(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    relayed_whole(judge, sut.messages(tokens))


@case(
    "9.7",
    "Thinking, text and tool use keep their blocks, indexes and order",
    requirement="Each content block is numbered by `index` and its deltas name it; the SDK "
    "accumulates each delta into its block. Blocks are neither merged nor reordered.",
    source=ANTHROPIC,
    expected="three blocks, thinking, text and tool_use, each whole",
)
def test_blocks_in_order(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    relayed_whole(judge, sut.messages(scenario("chunks-4", "reasoning-3", "tools-3")))


@case(
    "9.8",
    "Nothing is lost or duplicated over a long answer",
    requirement="Every event the upstream sends reaches the client once, in order.",
    source=ANTHROPIC,
    expected="300 text deltas read whole, then message_stop",
)
def test_long_answer(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    relayed_whole(judge, sut.messages(scenario("chunks-300")))


@case(
    "9.9",
    "Every stop reason reaches the client",
    requirement="`message_delta` carries the stop reason the client acts on (`max_tokens`: "
    "ask for more; `tool_use`: run the tool).",
    source=ANTHROPIC,
    expected="the upstream's stop reason, in its message_delta",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-4"), id="end_turn"),
        pytest.param(scenario("chunks-4", "finish-length"), id="max_tokens"),
        pytest.param(scenario("chunks-2", "tools-2"), id="tool_use"),
        pytest.param(scenario("chunks-4", "finish-content_filter"), id="refusal"),
    ],
)
def test_stop_reasons(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    relayed_whole(judge, sut.messages(tokens))


@case(
    "9.10",
    "Text that stresses a relay arrives unchanged",
    requirement="Text deltas are JSON strings of any Unicode: emoji sequences, CJK, "
    "combining marks, escaped control characters; a relay passes them as they are.",
    source=ANTHROPIC,
    expected="the same text, character for character",
)
@pytest.mark.parametrize("tokens", variants(TEXTS, "chunks-8"))
def test_stress_text(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    relayed_whole(judge, sut.messages(tokens))


@case(
    "9.11",
    "A whole (non-streamed) message is the upstream's",
    requirement="Without `stream`, the answer is one `message` object: every block, the stop "
    "reason and the usage as the upstream sent them.",
    source=ANTHROPIC,
    expected="status 200, every block exactly, the stop reason and the usage",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-6"), id="text"),
        pytest.param(scenario("chunks-3", "reasoning-2", "tools-3"), id="thinking-and-tool-use"),
    ],
)
def test_whole_message(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    x = sut.messages(tokens, stream=False)
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.typed_answer_intact(x),
        checks.typed_usage_is(x),
    )


@case(
    "9.12",
    "A payload that is not JSON is not hidden",
    requirement="A broken payload mid-stream is an upstream failure after the commit point: "
    "the SDK raises on it, or is shown an error; never an answer with a hole in it that ends "
    "with message_stop.",
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
    sut.needs("messages")
    x = sut.messages(tokens)
    judge.saw(x)
    judge.check(checks.typed_nothing_replayed(x), checks.typed_fault_visible(x))


@case(
    "9.13",
    "A payload that is not JSON is reported with one error event in Anthropic's shape",
    requirement="After the commit point an upstream failure becomes one `event: error` with "
    "Anthropic's error document, and the stream ends there: no message_stop.",
    source=COMMIT,
    expected='one `event: error` with {"type": "error", "error": {"type", "message"}}, last',
    strength=Strength.SHOULD,
)
def test_bad_payload_reported(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    x = sut.messages(scenario("chunks-8", f"malformed-{AFTER}"))
    judge.saw(x)
    judge.check(checks.api_error_event(x))


@case(
    "9.14",
    "A break after the commit point is visible, nothing replayed, nothing invented",
    requirement="After the commit point the relay never replays content, and a broken stream "
    "must not look finished to the SDK: it raises (`event: error`, an aborted transfer). A "
    "clean end without message_stop, or a message_stop or stop reason the upstream never "
    "sent, hands the SDK's caller half an answer as a whole one.",
    source=COMMIT,
    expected="a prefix of the answer; the SDK raises; no message_stop, no stop reason",
)
@pytest.mark.parametrize("tokens", breaks(AFTER, "event"))
def test_break_visible(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    broke_visibly(judge, sut.messages(tokens))


@case(
    "9.15",
    "A break after the commit point is reported with one error event in Anthropic's shape",
    requirement="After the commit point an upstream failure becomes exactly one `event: "
    'error` with `{"type": "error", "error": {"type": ..., "message": ...}}`, and the stream '
    "ends; an error the upstream sent itself keeps its message.",
    source=COMMIT,
    expected="one Anthropic error event, last, no message_stop",
    strength=Strength.SHOULD,
)
@pytest.mark.parametrize("tokens", breaks(AFTER, "event", cuts=("reset", "close")))
def test_break_reported(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    x = sut.messages(tokens)
    judge.saw(x)
    judge.check(checks.api_error_event(x))


@case(
    "9.16",
    "A stall after the commit point ends the stream within the idle timer",
    requirement="A stalled upstream must not hang the client: the idle timer fires while the "
    "upstream is silent, and the failure is visible to the SDK.",
    source=COMMIT,
    expected="the stream over within the declared idle timer (with tolerance), the SDK "
    "raising, no message_stop",
)
def test_stall(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    stall_ends_in_time(sut, judge, sut.messages, AFTER)


@case(
    "9.17",
    "The upstream is closed when the client leaves mid-stream",
    requirement="When the client goes away, the upstream request is closed at once.",
    source=COMMIT,
    expected="the fake provider sees the target hang up within 0.5 s of the client, and no "
    "new attempt",
)
def test_client_leaves_mid_stream(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    released_mid_stream(judge, sut.messages, after=5)


@case(
    "9.18",
    "The upstream is closed when the client leaves before the first byte",
    requirement="When the client goes away while the upstream has not answered, the upstream "
    "request is closed at once.",
    source=COMMIT,
    expected="the fake provider sees the target hang up before its own first-byte timer "
    "could have fired, and no new attempt",
)
def test_client_leaves_before_first_byte(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    released_before_first_byte(sut, judge, sut.messages)


@case(
    "9.19",
    "A failure before the commit point is retried to success",
    requirement="Before the first byte reaches the client nothing is lost by asking again: a "
    "reset, a 500 or Anthropic's 529 (overloaded) is retried, twice in a row too.",
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
        pytest.param(scenario("chunks-6", "status-529", "first-1"), id="529-overloaded"),
    ],
)
def test_retried_before_commit(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    retried(sut, judge, sut.messages(tokens))


@case(
    "9.20",
    "A 429 is retried after its Retry-After, or passed on with it",
    requirement="Retry-After says how long the client ought to wait (RFC 9110 §10.2.3): a "
    "relay that retries waits that long; one that does not passes the 429 on with it.",
    source="RFC 9110 §10.2.3",
    expected="status 200 after a retry no sooner than 1 s; without retries, the 429 with its "
    "Retry-After and Anthropic's rate_limit_error",
    strength=Strength.SHOULD,
)
def test_429_retry_after(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    retried_after_429(sut, judge, sut.messages)


@case(
    "9.21",
    "A failure before the commit point that persists is a real error status",
    requirement="When every attempt fails before the first byte, the client gets an error "
    "status (502 for a reset, the upstream's own 5xx) with Anthropic's error document, so "
    "that the SDK raises the right error; never a 200.",
    source=COMMIT,
    expected='status 502 (or the upstream\'s 500) with {"type": "error", "error": {"type", '
    '"message"}}; another body in the right status class: NON-STRICT',
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-4", "status-500"), id="500"),
        pytest.param(scenario("chunks-4", "reset_before_headers"), id="reset"),
    ],
)
def test_persistent_failure(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    x = sut.messages(tokens)
    judge.saw(x)
    judge.check(*checks.failed_honestly(x))


@case(
    "9.22",
    "An upstream 4xx reaches the client as the upstream said it",
    requirement="What the upstream said of its error is never lost: its status class, and "
    "its error type and message, which the SDK turns into the exception its caller handles.",
    source="streamproof policy (docs/verdicts.md)",
    expected="a 4xx with the upstream's error type and message",
)
def test_upstream_4xx_kept(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    x = sut.messages(scenario("chunks-4", "status-400"))
    judge.saw(x)
    judge.check(checks.upstream_error_kept(x))


@case(
    "9.23",
    "An upstream that never answers gives the client an error, not a hang",
    requirement="A first-byte timer bounds the wait for an upstream that never answers; the "
    "client then gets a real error status with Anthropic's error document.",
    source=COMMIT,
    expected="a 5xx with a JSON error body, within the declared total timer",
)
def test_never_answers(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("messages")
    never_answers(sut, judge, sut.messages)


@case(
    "9.24",
    "Usage exactly as Anthropic reports it, never summed",
    requirement="`message_start` carries `input_tokens` (and a first `output_tokens`); each "
    "`message_delta` carries the cumulative `output_tokens`, which replaces the last: summed, "
    "the client is billed twice.",
    source=ANTHROPIC,
    expected="input_tokens and the last output_tokens as the upstream reported them",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(scenario("chunks-8"), id="text"),
        pytest.param(scenario("chunks-3", "reasoning-3", "tools-3"), id="thinking-and-tool-use"),
    ],
)
def test_usage(sut: SystemUnderTest, judge: Judge, tokens: Scenario) -> None:
    sut.needs("messages")
    x = sut.messages(tokens)
    judge.saw(x)
    judge.check(checks.typed_usage_is(x))
