"""Group 2 (continued) — every corner of the SSE grammar and of the chat chunk, at every split.

Each variant is pushed through the proxy at the split points that matter for it. The
upstream's bytes differ from variant to variant; what they mean does not, so a correct
proxy delivers the same answer every time. Re-chunking, dropping comments and
re-serialising JSON are all allowed: the checks look at the answer, never at the bytes.
"""

from __future__ import annotations

import pytest

from streamproof.harness import Judge, SystemUnderTest, case, checks
from streamproof.harness.upstream import Scenario, scenario

WHATWG = "WHATWG HTML §9.2.6"
OPENAI = "OpenAI chat completions streaming contract"

# The write patterns every variant is tried with; some variants add their own.
SPLITS = {
    "events": (),
    "coalesce": ("coalesce",),
    "chop-1": ("chop-1",),
    "chop-3": ("chop-3",),
    "split-utf8": ("split_utf8",),
}


def _sweep(*tokens: str, splits: tuple[str, ...] = tuple(SPLITS)) -> list[object]:
    return [pytest.param(scenario("chunks-12", *tokens, *SPLITS[name]), id=name) for name in splits]


def _relay_faithfully(sut: SystemUnderTest, judge: Judge, tokens: object) -> None:
    x = sut.chat(tokens)  # type: ignore[arg-type]
    judge.saw(x)
    judge.check(
        checks.answer_intact(x),
        checks.role_announced(x.transcript),
        checks.payloads_are_json_objects(x.transcript),
        checks.ends_with_single_done(x.transcript),
    )


@case(
    "2.5",
    "A byte order mark before the first event",
    requirement="One leading U+FEFF BOM is dropped by the decoder; it is not part of the first "
    "field name.",
    source=WHATWG,
    expected="the whole answer, then [DONE]",
)
@pytest.mark.parametrize("variant", _sweep("bom"))
def test_bom(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.6",
    "Keep-alive comments between and inside events",
    requirement="Lines starting with a colon are comments and are ignored; they may come "
    "between events (keep-alives such as `: ping`) or inside one.",
    source=WHATWG,
    expected="the whole answer, then [DONE]; comments forwarded or dropped",
)
@pytest.mark.parametrize("variant", _sweep("comments"))
def test_comments(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.7",
    "`data:` without a space after the colon",
    requirement="If the value starts with a space, one space is removed; `data:{...}` and "
    "`data: {...}` carry the same data.",
    source=WHATWG,
    expected="the whole answer, then [DONE]",
)
@pytest.mark.parametrize("variant", _sweep("nospace"))
def test_data_without_space(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.8",
    "Mixed line endings: LF, CRLF and CR in one stream",
    requirement="Lines end at CRLF, a lone LF or a lone CR, in any mix, also when a CR and its "
    "LF arrive in different reads.",
    source=WHATWG,
    expected="the whole answer, then [DONE]",
)
@pytest.mark.parametrize(
    "variant",
    [
        *_sweep("eol-mixed", splits=("events", "coalesce", "chop-1", "chop-3")),
        pytest.param(scenario("chunks-12", "eol-mixed", "split_eol"), id="split-eol"),
    ],
)
def test_mixed_line_endings(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.9",
    "id, event, retry, unknown and colon-less fields",
    requirement="`id`, `event` and `retry` fields, fields with unknown names and lines without "
    "a colon are legal; none of them changes the data.",
    source=WHATWG,
    expected="the whole answer, then [DONE]",
)
@pytest.mark.parametrize("variant", _sweep("fields", splits=("events", "coalesce", "chop-1")))
def test_other_fields(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.10",
    "A JSON payload over several data lines",
    requirement="Several `data:` lines in one event are joined with line feeds; JSON allows "
    "the line feeds between its tokens.",
    source=WHATWG,
    expected="the whole answer, then [DONE]",
)
@pytest.mark.parametrize("variant", _sweep("multiline", splits=("events", "coalesce", "chop-1")))
def test_multiline_data(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


TEXT_KINDS = ["ascii", "emoji", "cjk", "combining", "whitespace", "control", "run", "rtl"]


@case(
    "2.11",
    "Text that stresses the relay",
    requirement="A multi-byte character split across reads is decoded whole; JSON escapes "
    "(control characters, U+2028/U+2029) survive; nothing is normalised.",
    source=WHATWG,
    expected="exactly the upstream's characters, then [DONE]",
)
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(scenario("chunks-12", f"text-{kind}", *SPLITS[split]), id=f"{kind}-{split}")
        for kind in TEXT_KINDS
        for split in ("events", "split-utf8", "chop-1")
    ],
)
def test_stress_text(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.12",
    "Random text from every plane",
    requirement="Any Unicode scalar value survives the relay, at any split.",
    source=WHATWG,
    expected="exactly the upstream's characters, then [DONE]",
)
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(
            scenario("chunks-24", f"text-random-{seed}", *SPLITS[split]), id=f"{seed}-{split}"
        )
        for seed in (1, 2, 3)
        for split in ("split-utf8", "chop-3")
    ],
)
def test_random_text(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.13",
    "A very large event",
    requirement="No small line-length cap: an event of 1 MiB or more (big tool-call arguments, "
    "base64) is relayed whole.",
    source="streamproof policy (docs/failures.md: SSE framing)",
    expected="the whole answer with its 1 MiB and 4 MiB deltas, then [DONE]",
)
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(scenario("chunks-4", "bigdelta-1024"), id="1mib"),
        pytest.param(scenario("chunks-4", "bigdelta-1024", "coalesce"), id="1mib-coalesce"),
        pytest.param(scenario("chunks-4", "bigdelta-1024", "chop-4096"), id="1mib-chop-4096"),
        pytest.param(scenario("chunks-4", "bigdelta-4096"), id="4mib"),
    ],
)
def test_large_event(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.14",
    "Empty and null content deltas",
    requirement='A delta may carry `"content": ""` or `"content": null`; neither is an error '
    "and neither adds text.",
    source=OPENAI,
    expected="the whole answer, then [DONE]",
)
@pytest.mark.parametrize("variant", _sweep("emptydeltas", splits=("events", "chop-1")))
def test_empty_deltas(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.15",
    "Role-only chunks",
    requirement="The first chunks of a choice may carry only `role`; they are chunks like any "
    "other.",
    source=OPENAI,
    expected="the whole answer, then [DONE]",
)
@pytest.mark.parametrize("variant", _sweep("roleonly", splits=("events", "coalesce")))
def test_role_only_chunks(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.16",
    "Tool-call arguments reassemble to the upstream's JSON",
    requirement="`tool_calls` deltas carry `function.arguments` in fragments; joined in order "
    "they are the JSON the model wrote.",
    source=OPENAI,
    expected="one tool call whose arguments equal the upstream's, finish_reason tool_calls",
)
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(
            scenario("chunks-0", "tools-12", "finish-tool_calls", *SPLITS[split]), id=split
        )
        for split in ("events", "coalesce", "chop-1", "split-utf8")
    ],
)
def test_tool_call_arguments(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.17",
    "Several choices (n > 1), interleaved",
    requirement="With n > 1 each chunk names its choice by `index`; every choice's deltas "
    "reassemble independently.",
    source=OPENAI,
    expected="three choices, each whole, each with its finish_reason, then [DONE]",
)
@pytest.mark.parametrize("variant", _sweep("choices-3", splits=("events", "coalesce", "chop-1")))
def test_several_choices(sut: SystemUnderTest, judge: Judge, variant: object) -> None:
    _relay_faithfully(sut, judge, variant)


@case(
    "2.18",
    "Every finish_reason",
    requirement="finish_reason is one of stop, length, tool_calls, content_filter or "
    "function_call; each reaches the client as sent.",
    source=OPENAI,
    expected="the whole answer with the upstream's finish_reason, then [DONE]",
)
@pytest.mark.parametrize(
    "reason", ["stop", "length", "tool_calls", "content_filter", "function_call"]
)
def test_every_finish_reason(sut: SystemUnderTest, judge: Judge, reason: str) -> None:
    _relay_faithfully(sut, judge, scenario("chunks-4", f"finish-{reason}"))


@case(
    "2.19",
    "The event sequence does not depend on where the upstream's writes fall",
    requirement="The assembled content and the event sequence are the same at every split "
    "point: a relay's output may be re-chunked, but not differently for different splits.",
    source="streamproof policy (docs/design.md)",
    expected="the same (choice, delta) sequence for every split of the same answer",
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(("chunks-16",), id="plain"),
        pytest.param(("chunks-16", "eol-crlf"), id="crlf"),
        pytest.param(("chunks-16", "comments", "fields"), id="comments-and-fields"),
        pytest.param(("chunks-8", "choices-3"), id="choices"),
    ],
)
def test_event_sequence_independent_of_splits(
    sut: SystemUnderTest, judge: Judge, tokens: tuple[str, ...]
) -> None:
    runs = {name: sut.chat(scenario(*tokens, *split)) for name, split in SPLITS.items()}
    for name, x in runs.items():
        judge.saw(x, name)
    judge.check(checks.same_event_sequence({name: x.transcript for name, x in runs.items()}))


@case(
    "2.20",
    "Reasoning deltas arrive whole, in order, apart from the content",
    requirement="Reasoning models (Kimi K2 thinking, DeepSeek R1) stream `reasoning_content` "
    "deltas before the answer's `content`; a whole answer has `message.reasoning_content`. "
    "A relay keeps each whole and in its own field: reasoning merged into the content is an "
    "answer the model never gave.",
    source="Moonshot and DeepSeek chat completions (docs/scenarios.md: reasoning in chat "
    "completions)",
    expected="the reasoning, then the content, each exactly the upstream's",
)
@pytest.mark.parametrize(
    ("tokens", "stream"),
    [
        *(
            pytest.param(scenario("chunks-4", "reasoning-4", *SPLITS[split]), True, id=split)
            for split in ("events", "chop-1", "split-utf8")
        ),
        pytest.param(scenario("chunks-4", "reasoning-4", "tools-3"), True, id="tools"),
        pytest.param(scenario("chunks-4", "reasoning-4"), False, id="whole"),
    ],
)
def test_reasoning_apart(
    sut: SystemUnderTest, judge: Judge, tokens: Scenario, stream: bool
) -> None:
    x = sut.chat(tokens, stream=stream)
    judge.saw(x)
    answer = checks.answer_intact(x) if stream else checks.message_content_intact(x)
    judge.check(answer, checks.reasoning_intact(x))
