"""What the answer means: every content and format token, read back as a client reads it.

Each body is built sans-IO (`chat.answer`, then the scenario's faults, then `plan.body`),
decoded with the harness's own WHATWG decoder, and its chunks reassembled per choice: that
must give exactly `chat.expected(scenario)`. A Hypothesis property then does the same for
random combinations of content and format tokens, with the body fed to the decoder in
pieces cut at random places.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.fake_providers import Scenario, chat
from streamproof.fake_providers import scenario as scenario_module
from streamproof.fake_providers.chat import Expected, ToolCall
from streamproof.fake_providers.content import ARGUMENTS, TOOL_NAME, argument_fragments
from streamproof.fake_providers.errors import ALL_SHAPES
from streamproof.fake_providers.faults import NONOBJECTS
from streamproof.fake_providers.plan import FrameKind, Plan
from streamproof.fake_providers.scenario import CONTENT_TOKENS, EOL_NAMES, FINISH_REASONS, FORMATS
from streamproof.fake_providers.text import TEXT_KINDS
from streamproof.harness.sse import Event, SSEDecoder

QUICK = settings(derandomize=True, database=None, deadline=None, max_examples=120)


# --- reading a body as a client does -----------------------------------------------------


@dataclass
class Seen:
    """An answer as a client reassembles it from the chunks it decoded."""

    content: dict[int, str] = field(default_factory=dict)
    tool_calls: dict[int, tuple[ToolCall, ...]] = field(default_factory=dict)
    finish_reasons: dict[int, str] = field(default_factory=dict)
    done: bool = False
    metadata: set[tuple[Any, ...]] = field(default_factory=set)
    deltas: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def decode(body: bytes, cuts: Iterable[int] = ()) -> tuple[list[Event], SSEDecoder]:
    decoder, events, start = SSEDecoder(), [], 0
    for cut in [*sorted(cuts), len(body)]:
        events += decoder.feed(body[start:cut])
        start = cut
    events += decoder.close()
    return events, decoder


def read(body: bytes, cuts: Iterable[int] = ()) -> Seen:
    seen, calls = Seen(), dict[int, dict[int, list[str]]]()
    for event in decode(body, cuts)[0]:
        if event.data == "[DONE]":
            seen.done = True
            continue
        try:
            chunk = json.loads(event.data)
        except ValueError:
            continue
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
            continue
        seen.metadata.add((chunk["id"], chunk["object"], chunk["created"], chunk["model"]))
        for choice in chunk["choices"]:
            index, delta = choice["index"], choice["delta"]
            seen.deltas.append((index, delta))
            text = delta.get("content")
            seen.content[index] = seen.content.get(index, "") + (text or "")
            for call in delta.get("tool_calls", []):
                slot = calls.setdefault(index, {}).setdefault(call["index"], ["", "", ""])
                slot[0] = call.get("id", slot[0])
                slot[1] = call.get("function", {}).get("name", slot[1])
                slot[2] += call["function"]["arguments"]
            if choice["finish_reason"] is not None:
                seen.finish_reasons[index] = choice["finish_reason"]
    seen.tool_calls = {
        index: tuple(ToolCall(*calls.get(index, {})[n]) for n in sorted(calls.get(index, {})))
        for index in seen.content
    }
    return seen


def plan_for(scenario: Scenario, *, stream: bool = True, usage: bool = False) -> Plan:
    request: dict[str, Any] = {"model": scenario.model, "messages": [], "stream": stream}
    if usage:
        request["stream_options"] = {"include_usage": True}
    plan = chat.answer(request, scenario, chat.chunk_id(scenario, 1))
    for fault in scenario.faults_for(1):
        plan = fault.apply(plan)
    return plan


def assert_means_expected(scenario: Scenario, seen: Seen) -> None:
    want = chat.expected(scenario)
    assert seen.content == want.content
    assert seen.tool_calls == want.tool_calls
    assert seen.finish_reasons == want.finish_reasons
    assert seen.done is want.done
    assert seen.metadata == {(want.chunk_id(1), want.object, want.created, want.model)}


def parse(tokens: str) -> Scenario:
    return Scenario.parse(f"streamproof.{tokens}")


# --- every token means what expected() says ------------------------------------------------

TOKENS = [
    *(f"text-{kind}" for kind in TEXT_KINDS),
    "text-random-0",
    "text-random-20261123",
    "bigdelta-1",
    "bigdelta-3",
    "emptydeltas",
    "roleonly",
    "tools-1",
    "tools-3",
    "tools-40",
    "tools-1000",
    "choices-2",
    "choices-5",
    *(f"finish-{reason}" for reason in FINISH_REASONS),
    *FORMATS,
    "eol-mixed",
]


@pytest.mark.parametrize("token", TOKENS)
@pytest.mark.parametrize("chunks", [0, 1, 7])
def test_answer_with_token_decodes_to_expected(token, chunks):
    scenario = parse(f"chunks-{chunks}.{token}")
    assert_means_expected(scenario, read(plan_for(scenario).body))


@pytest.mark.parametrize("token", TOKENS)
def test_token_round_trips_through_the_model_name(token):
    scenario = parse(f"id-rt.chunks-3.{token}")
    assert token in scenario.model.split(".")
    assert Scenario.parse(scenario.model) == scenario
    assert scenario != parse("id-rt.chunks-3")


@pytest.mark.parametrize("token", TOKENS)
def test_whole_answer_with_token_agrees_with_expected(token):
    scenario = parse(f"chunks-5.{token}")
    want = chat.expected(scenario)
    document = json.loads(plan_for(scenario, stream=False).body)
    assert document["id"] == want.chunk_id(1)
    assert document["model"] == want.model
    for choice in document["choices"]:
        index, message = choice["index"], choice["message"]
        assert (message["content"] or "") == want.content[index]
        calls = tuple(
            ToolCall(call["id"], call["function"]["name"], call["function"]["arguments"])
            for call in message.get("tool_calls", [])
        )
        assert calls == want.tool_calls[index]
        assert choice["finish_reason"] == want.finish_reasons[index]
    assert [choice["index"] for choice in document["choices"]] == sorted(want.content)


# --- expected() ----------------------------------------------------------------------------


def test_expected_of_the_default_scenario():
    want = chat.expected(Scenario(nonce="abc", chunks=3))
    assert want == Expected(
        id_prefix="chatcmpl-abc-",
        object="chat.completion.chunk",
        created=chat.CREATED,
        model="streamproof.id-abc.chunks-3",
        content={0: "Hello wörld —"},
        tool_calls={0: ()},
        finish_reasons={0: "stop"},
        done=True,
        # 3 to prime + 3 per message + "user" (1) + "Say something in a few languages." (7)
        usage={"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19},
        usage_dialect="final",
    )
    assert want.chunk_id(2) == "chatcmpl-abc-2"
    assert want.text == "Hello wörld —"


def test_expected_chunk_id_names_the_attempt_and_defaults_to_fake():
    assert chat.expected(Scenario()).chunk_id(3) == "chatcmpl-fake-3"
    assert chat.chunk_id(Scenario(nonce="k3x9"), 7) == "chatcmpl-k3x9-7"


def test_expected_ignores_faults_it_describes_the_clean_answer():
    faulted = parse("id-x.chunks-4.reset_after-2.upstream_error-3-flat.first-1")
    clean = parse("id-x.chunks-4")
    assert chat.expected(faulted).content == chat.expected(clean).content
    assert chat.expected(faulted).finish_reasons == {0: "stop"}


def test_expected_tool_call_arguments_load_as_the_intended_object():
    want = chat.expected(parse("chunks-0.tools-7.choices-2"))
    assert want.content == {0: "", 1: ""}
    for index in (0, 1):
        ((call_id, name, arguments),) = want.tool_calls[index]
        assert (call_id, name) == (f"call_streamproof_{index}", TOOL_NAME)
        value = json.loads(arguments)
        assert value["query"] == 'say "hi"\n\ttab \\ été 🙂 日本'
        assert value["filters"]["tags"] == ["naïve", "東京", ""]
        assert value["filters"]["path"] == "C:\\tmp/x"
        assert value["days"] == [1, 2.5, -300.0]
    assert want.finish_reasons == {0: "tool_calls", 1: "tool_calls"}


def test_expected_done_is_false_only_when_unterminated():
    assert not chat.expected(parse("unterminated")).done
    assert all(chat.expected(parse(token)).done for token in FORMATS if token != "unterminated")


# --- content tokens, chunk by chunk --------------------------------------------------------


def kinds(plan: Plan) -> list[FrameKind]:
    return [frame.kind for frame in plan.frames]


def test_roleonly_adds_two_role_only_chunks_first():
    seen = read(plan_for(parse("chunks-2.roleonly")).body)
    assert [delta for _, delta in seen.deltas[:3]] == [
        {"role": "assistant"},
        {"role": "assistant"},
        {"role": "assistant", "content": ""},
    ]


def test_emptydeltas_puts_empty_content_between_deltas_and_one_null():
    plain, empty = (read(plan_for(parse(f"chunks-4{t}")).body) for t in ("", ".emptydeltas"))
    contents = [delta.get("content", "-") for _, delta in empty.deltas[1:-1]]
    texts = [delta["content"] for _, delta in plain.deltas[1:-1]]
    assert contents == [texts[0], "", texts[1], "", texts[2], "", texts[3], None]
    assert empty.content == plain.content


def test_tools_first_delta_names_the_function_and_the_rest_carry_arguments():
    scenario = parse("chunks-2.tools-5")
    seen = read(plan_for(scenario).body)
    calls = [delta["tool_calls"] for _, delta in seen.deltas if "tool_calls" in delta]
    assert len(calls) == 5
    assert all(len(call) == 1 and call[0]["index"] == 0 for call in calls)
    assert calls[0][0]["id"] == "call_streamproof_0"
    assert calls[0][0]["type"] == "function"
    assert calls[0][0]["function"]["name"] == TOOL_NAME
    assert all(set(call[0]) == {"index", "function"} for call in calls[1:])
    assert all(set(call[0]["function"]) == {"arguments"} for call in calls[1:])
    assert [call[0]["function"]["arguments"] for call in calls] == argument_fragments(5)
    # the content comes first, then the tool call
    assert [("content" in d, "tool_calls" in d) for _, d in seen.deltas[1:4]] == [
        (True, False),
        (True, False),
        (False, True),
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 17, len(ARGUMENTS), 400])
def test_argument_fragments_join_back_and_cut_inside_escapes(count):
    fragments = argument_fragments(count)
    assert len(fragments) == count
    assert "".join(fragments) == ARGUMENTS
    assert fragments == argument_fragments(count)
    if count <= len(ARGUMENTS):
        assert all(fragments)
    ends = {sum(len(f) for f in fragments[: n + 1]) for n in range(count - 1)}
    if count >= 3:
        assert ARGUMENTS.index(r"\"hi") + 1 in ends  # between the backslash and the quote
        assert ARGUMENTS.index(r"\u00e9") + 3 in ends  # inside a \u escape


def test_choices_interleave_round_robin_with_rotated_content_and_own_finish():
    scenario = parse("chunks-4.choices-3")
    seen = read(plan_for(scenario).body)
    assert [index for index, _ in seen.deltas] == [0, 1, 2] * 6
    base = chat.expected(parse("chunks-4")).content[0]
    parts = chat.deltas(4)
    assert seen.content[0] == base
    assert seen.content[1] == "".join(parts[1:] + parts[:1])
    assert seen.content[2] == "".join(parts[2:] + parts[:2])
    assert seen.finish_reasons == {0: "stop", 1: "stop", 2: "stop"}


@pytest.mark.parametrize("reason", FINISH_REASONS)
def test_finish_sets_every_choice_finish_reason(reason):
    scenario = parse(f"chunks-2.choices-2.tools-2.finish-{reason}")
    assert read(plan_for(scenario).body).finish_reasons == {0: reason, 1: reason}


@pytest.mark.parametrize("kib", [1, 5, 1024, 4096])
def test_bigdelta_is_one_delta_of_exactly_kib_kibibytes_in_the_middle(kib):
    scenario = parse(f"chunks-6.bigdelta-{kib}")
    plan = plan_for(scenario)
    contents = [frame.delta for frame in plan.frames if frame.kind is FrameKind.CONTENT]
    assert len(contents) == 7
    big = contents[3]
    assert len(big.encode()) == kib * 1024
    assert {len(char.encode()) for char in set(big)} == {1, 2, 3, 4}
    assert contents[:3] + contents[4:] == chat.deltas(6)
    assert chat.expected(scenario).content[0] == "".join(contents)


def test_usage_chunk_does_not_change_the_answer():
    scenario = parse("chunks-3.choices-2.tools-2.text-cjk")
    plan = plan_for(scenario, usage=True)
    assert kinds(plan)[-2:] == [FrameKind.USAGE, FrameKind.DONE]
    assert_means_expected(scenario, read(plan.body))


# --- the property: any combination, cut anywhere -------------------------------------------


@st.composite
def grammar_scenarios(draw: st.DrawFn) -> Scenario:
    """Scenarios that combine content and format tokens (no faults), kept small."""
    text = draw(st.sampled_from([None, *TEXT_KINDS, "random"]))
    return Scenario(
        nonce=draw(st.sampled_from(["", "prop"])),
        chunks=draw(st.integers(0, 6)),
        eol=draw(st.sampled_from(EOL_NAMES)),
        text=text,
        seed=draw(st.integers(0, 2**32)) if text == "random" else None,
        bigdelta=draw(st.none() | st.just(1)),
        emptydeltas=draw(st.booleans()),
        roleonly=draw(st.booleans()),
        tools=draw(st.none() | st.integers(1, 9)),
        choices=draw(st.integers(1, 3)),
        finish=draw(st.none() | st.sampled_from(FINISH_REASONS)),
        formats=draw(st.frozensets(st.sampled_from(FORMATS))),
    )


@QUICK
@given(scenario=grammar_scenarios(), usage=st.booleans(), data=st.data())
def test_any_grammar_combination_decodes_to_expected_at_any_cut_points(scenario, usage, data):
    body = plan_for(scenario, usage=usage).body
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12), label="cuts")
    assert_means_expected(scenario, read(body, cuts))
    assert Scenario.parse(scenario.model) == scenario


@pytest.mark.parametrize(
    "tokens",
    [
        pytest.param("chunks-3." + ".".join(FORMATS), id="every-format"),
        pytest.param("chunks-3.eol-mixed." + ".".join(FORMATS), id="every-format-eol-mixed"),
        pytest.param("chunks-4.eol-cr.comments.multiline.choices-2.tools-3", id="cr-tools"),
        pytest.param("chunks-6.eol-crlf.text-random-7.bom.fields", id="crlf-random"),
    ],
)
def test_grammar_combination_decodes_the_same_byte_by_byte(tokens):
    scenario = parse(tokens)
    body = plan_for(scenario).body
    whole, _ = decode(body)
    assert decode(body, range(1, len(body)))[0] == whole
    assert_means_expected(scenario, read(body, range(1, len(body))))


# --- determinism ---------------------------------------------------------------------------

DIGEST_MODELS = [
    "streamproof.chunks-9.text-random-42.choices-2.tools-4.emptydeltas.eol-mixed.multiline",
    "streamproof.chunks-12.text-emoji.bom.comments.fields.nospace.empty_data.unterminated",
    *(f"streamproof.chunks-10.text-{kind}" for kind in TEXT_KINDS),
]
_DIGESTS = """
import hashlib, sys
from streamproof.fake_providers import Scenario, chat
from streamproof.fake_providers import scenario as scenario_module
for model in sys.argv[1:]:
    s = Scenario.parse(model)
    plan = chat.answer({"model": model, "stream": True}, s, chat.chunk_id(s, 1))
    print(hashlib.sha256(plan.body).hexdigest())
"""


def digests(models: list[str]) -> list[str]:
    out = []
    for model in models:
        scenario = Scenario.parse(model)
        plan = chat.answer({"model": model, "stream": True}, scenario, chat.chunk_id(scenario, 1))
        out.append(hashlib.sha256(plan.body).hexdigest())
    return out


def test_same_scenario_gives_the_same_bytes_in_another_process():
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", _DIGESTS, *DIGEST_MODELS],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == digests(DIGEST_MODELS)


def test_every_token_is_documented_in_the_scenario_module():
    doc = scenario_module.__doc__ or ""
    names = [*CONTENT_TOKENS, *FORMATS, *TEXT_KINDS, *FINISH_REASONS, "eol-mixed", "text-random"]
    names += ["nonobject", "upstream_error", *NONOBJECTS, *ALL_SHAPES]
    assert [name for name in names if f"`{name}" not in doc] == []


# --- the chunks' bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "tokens",
    [
        "chunks-5",
        "chunks-4.choices-3.tools-2",
        "chunks-3.usage-cumulative",
        "chunks-3.usage-inchoice.choices-2",
        "chunks-3.usage-always.finish-length",
        "chunks-6.emptydeltas.roleonly",
        *(f"chunks-4.text-{kind}" for kind in TEXT_KINDS),
    ],
)
def test_chunks_are_written_as_json_dumps_writes_them(tokens):
    # The chunks are assembled from pre-encoded pieces (chat._Chunks): each must be the
    # very text `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` gives.
    scenario = Scenario.parse(f"streamproof.{tokens}")
    request: dict[str, Any] = {"model": scenario.model, "stream": True, "messages": []}
    request["stream_options"] = {"include_usage": True}
    plan = chat.answer(request, scenario, chat.chunk_id(scenario, 1))
    payloads = [frame.data.removeprefix(b"data: ").removesuffix(b"\n\n") for frame in plan.frames]
    chunks = [payload for payload in payloads if payload.startswith(b"{")]
    assert len(chunks) >= 5
    for payload in chunks:
        document = json.loads(payload)
        rewritten = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        assert rewritten == payload
