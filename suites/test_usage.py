"""Group 4 — token-count parity: usage that can be trusted, streamed or not, reported or not.

A provider's figures must reach the client exactly, from wherever the provider put them;
when the provider reports nothing, a proxy that offers usage counts it itself, on the
joined text (the harness's own oracle, `harness.tokens`, says what the count must be).
"""

from __future__ import annotations

import pytest

from streamproof.harness import Judge, Strength, SystemUnderTest, case, checks
from streamproof.harness.upstream import scenario

OPENAI = "OpenAI chat completions streaming contract (stream_options.include_usage)"
POLICY = "streamproof policy (docs/design.md: usage; docs/failures.md: token counting)"
INCLUDE_USAGE = {"include_usage": True}


@case(
    "4.1",
    "The provider's usage reaches the client exactly",
    requirement="Usage is forwarded exactly as the provider reported it.",
    source=POLICY,
    expected="prompt, completion and total tokens as the provider sent them",
)
def test_usage_forwarded_exactly(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-final"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    judge.check(checks.usage_is(x.transcript, x.expected_usage))


@case(
    "4.2",
    "Asked-for usage comes as one final chunk before [DONE]",
    requirement="With include_usage, an additional chunk is streamed before `data: [DONE]`: "
    "its `choices` is empty and its `usage` holds the whole request's figures; other chunks "
    "carry no usage.",
    source=OPENAI,
    expected="exactly one usage chunk, choices [], right before [DONE]",
)
def test_usage_in_openai_shape(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-final"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    judge.check(checks.usage_in_openai_shape(x.transcript))


@case(
    "4.3",
    "Usage inside choices[0] (as Moonshot/Kimi send it) is kept exactly",
    requirement="Read usage from every place a provider puts it, inside choices[0] too.",
    source=POLICY,
    expected="the provider's figures reach the client unchanged",
)
def test_usage_in_choice_kept(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-inchoice"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    judge.check(checks.usage_is(x.transcript, x.expected_usage))


@case(
    "4.4",
    "Usage inside choices[0] reaches the client in the OpenAI shape",
    requirement="The client gets usage in the OpenAI shape it asked for, wherever the "
    "provider put it.",
    source=POLICY,
    expected="one final usage chunk (choices: []) before [DONE]",
    strength=Strength.SHOULD,
)
def test_usage_in_choice_normalised(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-inchoice"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    judge.check(checks.usage_in_openai_shape(x.transcript))


@case(
    "4.5",
    "Cumulative usage: the last value wins, never a sum",
    requirement="Usage cumulative on every chunk: the last value wins; never sum.",
    source=POLICY,
    expected="the client's last usage equals the provider's last cumulative figure",
)
def test_cumulative_usage_last_wins(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-cumulative"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    judge.check(checks.usage_is(x.transcript, x.expected_usage))


@case(
    "4.6",
    "Cumulative usage reaches the client as one final usage chunk",
    requirement="With include_usage the usage field of every other chunk is empty; one chunk "
    "before [DONE] carries the figures.",
    source=OPENAI,
    expected="one final usage chunk (choices: []) before [DONE]",
    strength=Strength.SHOULD,
)
def test_cumulative_usage_normalised(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-cumulative"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    judge.check(checks.usage_in_openai_shape(x.transcript))


@case(
    "4.7",
    "Usage the client did not ask for is not sent",
    requirement="The usage chunk is streamed only when stream_options.include_usage is set.",
    source=OPENAI,
    expected="no usage anywhere in the stream",
    strength=Strength.SHOULD,
)
def test_unasked_usage_not_sent(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-always"))
    judge.saw(x)
    judge.check(checks.no_usage(x.transcript))


@case(
    "4.8",
    "An explicit zero is forwarded as zero",
    requirement="Zero is not 'missing': a provider's explicit zero is its report.",
    source=POLICY,
    expected="usage 0, 0, 0 — not an estimate",
)
def test_zero_usage_kept(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-zero"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    judge.check(checks.usage_is(x.transcript, zero, "an explicit zero kept"))


@case(
    "4.9",
    "When the provider reports nothing, the client that asked gets an estimate",
    requirement="When the provider reports no usage, the proxy counts it on the joined text "
    "and knows that it is an estimate.",
    source=POLICY,
    expected="completion tokens exact on the joined text; prompt tokens within the stated "
    "tolerance of the cookbook formula",
    strength=Strength.SHOULD,
)
def test_missing_usage_estimated(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12", "usage-none"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    judge.check(checks.usage_estimate_close(x))


@case(
    "4.10",
    "The estimate is counted on the joined text, for text that is hard to tokenise",
    requirement="Count on the joined text, never chunk by chunk: 'Hel' + 'lo' + ' world' is "
    "three tokens apart and two together.",
    source=POLICY,
    expected="completion tokens exactly the oracle's count of the whole answer",
    strength=Strength.SHOULD,
)
@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param(("chunks-40", "text-emoji", "split_utf8"), id="emoji-split-utf8"),
        pytest.param(("chunks-40", "text-cjk", "chop-1"), id="cjk-chop-1"),
        pytest.param(("chunks-40", "text-whitespace"), id="whitespace"),
        pytest.param(("chunks-8", "text-run"), id="long-runs"),
        pytest.param(("chunks-24", "text-random-7"), id="random-text"),
        pytest.param(("chunks-12", "choices-3"), id="three-choices"),
        pytest.param(("chunks-0", "tools-16", "finish-tool_calls"), id="tool-call"),
    ],
)
def test_estimate_on_joined_text(
    sut: SystemUnderTest, judge: Judge, tokens: tuple[str, ...]
) -> None:
    x = sut.chat(scenario(*tokens, "usage-none"), stream_options=INCLUDE_USAGE)
    judge.saw(x)
    judge.check(checks.usage_estimate_close(x))


@case(
    "4.11",
    "A non-streaming answer's usage is forwarded exactly",
    requirement="Usage is forwarded exactly as the provider reported it.",
    source=POLICY,
    expected="the body's usage equals the provider's",
)
def test_non_streaming_usage_exact(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(scenario("chunks-12"), stream=False)
    judge.saw(x)
    judge.check(checks.usage_is(x.transcript, x.expected_usage))


@case(
    "4.12",
    "Streamed and non-streamed usage of the same answer agree",
    requirement="Streaming and non-streaming counts of the same answer must agree.",
    source=POLICY,
    expected="the same prompt, completion and total tokens both ways",
)
@pytest.mark.parametrize("dialect", ["usage-final", "usage-none"])
def test_streamed_and_whole_usage_agree(sut: SystemUnderTest, judge: Judge, dialect: str) -> None:
    streamed = sut.chat(scenario("chunks-12", dialect), stream_options=INCLUDE_USAGE)
    whole = sut.chat(scenario("chunks-12", dialect), stream=False)
    judge.saw(streamed, "streamed")
    judge.saw(whole, "not streamed")
    judge.check(checks.same_usage(streamed.transcript, whole.transcript))


@case(
    "4.13",
    "A provider that rejects stream_options still serves a client that asks for usage",
    requirement="Providers that reject or ignore stream_options (Mistral, NVIDIA NIM): "
    "per-provider capabilities; the client still gets the OpenAI shape it asked for.",
    source=POLICY,
    expected="status 200, the whole answer, and the provider's usage in one final chunk",
    strength=Strength.SHOULD,
)
def test_provider_rejecting_stream_options(sut: SystemUnderTest, judge: Judge) -> None:
    x = sut.chat(
        scenario("chunks-12", "usage-always", "reject_stream_options"),
        stream_options=INCLUDE_USAGE,
    )
    judge.saw(x)
    judge.check(
        checks.status_is(x.transcript, 200),
        checks.answer_intact(x),
        checks.usage_is(x.transcript, x.expected_usage),
        checks.usage_in_openai_shape(x.transcript),
    )


@case(
    "4.14",
    "A stream that fails mid-way is counted for what was relayed",
    requirement="Usage lost when a stream fails is usage nobody accounts for: the proxy "
    "records the usage of what it relayed, counted once on the joined text.",
    source=POLICY,
    expected="the request's record in the health report holds the completion tokens of the "
    "content the client got, exactly",
)
def test_partial_usage_of_failed_stream(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("health")
    x = sut.chat(scenario("chunks-12", "text-cjk", "usage-none", "reset_after-6"))
    judge.saw(x)
    judge.check(checks.partial_usage(sut.record_of(x), x, exact=True))


@case(
    "4.15",
    "A stream the client leaves is counted for what was relayed",
    requirement="Usage lost when the client cancels: record partial usage.",
    source="docs/failures.md: disconnect and billing",
    expected="the request's record holds completion tokens between those of the content the "
    "client read and those of all the upstream wrote",
)
def test_partial_usage_of_cancelled_stream(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("health")
    x = sut.chat(scenario("chunks-40", "usage-none", "slow-20"), leave_after_events=4)
    judge.saw(x)
    sut.settled_health()  # the proxy counts a left request once it has noticed
    judge.check(checks.partial_usage(sut.record_of(x), x, exact=False))


@case(
    "4.16",
    "Reasoning tokens are reported as the provider counted them",
    requirement="A reasoning model's `completion_tokens` include its reasoning, and "
    "`completion_tokens_details.reasoning_tokens` says how many: both reach the client "
    "exactly, streamed or not.",
    source=POLICY,
    expected="prompt, completion and total tokens, and reasoning_tokens, as the provider sent them",
)
@pytest.mark.parametrize(
    "stream", [pytest.param(True, id="streamed"), pytest.param(False, id="whole")]
)
def test_reasoning_tokens(sut: SystemUnderTest, judge: Judge, stream: bool) -> None:
    answer = scenario("chunks-6", "reasoning-3")
    if stream:
        x = sut.chat(answer, stream_options=INCLUDE_USAGE)
    else:
        x = sut.chat(answer, stream=False)
    judge.saw(x)
    judge.check(
        checks.usage_is(x.transcript, x.expected_usage),
        checks.reasoning_tokens_are(x.transcript, x.expected.reasoning_tokens),
    )
