"""Scenarios in the model name: printing, parsing, rejecting, and which attempt gets faults.

`Scenario.parse(scenario.model) == scenario` is the property everything else rests on: the
harness builds a `Scenario`, sends its `model`, and the fake provider parses it back.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from streamproof.fake_providers import FAULTS, Fault, Scenario, ScenarioError
from streamproof.fake_providers.chat import expected
from streamproof.fake_providers.faults import (
    Chop,
    Coalesce,
    Malformed,
    NoDone,
    ResetAfter,
    ResetBeforeHeaders,
    Slow,
    SplitEol,
    SplitUtf8,
    StallAfter,
    Status,
)
from streamproof.fake_providers.scenario import (
    CONTENT_TOKENS,
    EOL_NAMES,
    EOLS,
    FINISH_REASONS,
    FORMATS,
    MAX_BIGDELTA,
    MAX_CHOICES,
    USAGE_DIALECTS,
)
from streamproof.fake_providers.text import TEXT_KINDS

# Deterministic and quick: same examples on every run, no example database written to disk.
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=200)


@st.composite
def faults(draw: st.DrawFn) -> Fault:
    """Any fault of the registry, with small event counts or HTTP-error-like numbers."""
    fault_cls: type[Any] = draw(st.sampled_from(sorted(FAULTS.values(), key=lambda c: c.name)))
    least, most = fault_cls.arity
    numbers = st.integers(0, 20) | st.integers(400, 599)
    count = draw(st.integers(least, most))
    args = [  # a parameter listed in `words` takes one of them, the others whole numbers
        draw(st.sampled_from(fault_cls.words[p.name]) if p.name in fault_cls.words else numbers)
        for p in dataclasses.fields(fault_cls)[:count]
    ]
    try:
        fault: Fault = fault_cls(*args)
    except ValueError:  # status outside 400-599, chop-0
        reject()
    return fault


def scenarios() -> st.SearchStrategy[Scenario]:
    return st.builds(
        Scenario,
        nonce=st.text(string.ascii_letters + string.digits, max_size=64),
        via=st.text(string.ascii_lowercase, max_size=32),
        chunks=st.integers(0, 100_000),
        eol=st.sampled_from(sorted(EOLS)),
        first=st.none() | st.integers(0, 1_000),
        faults=st.lists(faults(), max_size=6).map(tuple),
    )


# --- printing and parsing ----------------------------------------------------------------

EXAMPLE = "streamproof.id-k3x9q2.chunks-12.eol-crlf.split_eol.reset_after-6.first-2"


def test_scenario_parse_reads_the_documented_example():
    scenario = Scenario.parse(EXAMPLE)
    assert scenario == Scenario(
        nonce="k3x9q2", chunks=12, eol="crlf", first=2, faults=(SplitEol(), ResetAfter(6))
    )
    assert scenario.model == EXAMPLE


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(Scenario(), id="default"),
        pytest.param(Scenario(nonce="a", chunks=0), id="one-char-id-no-chunks"),
        pytest.param(Scenario(nonce="Z9" * 32, chunks=100_000), id="longest-id-most-chunks"),
        pytest.param(Scenario(eol="cr", first=0), id="eol-cr-first-0"),
        pytest.param(Scenario(nonce="x", via="fallback"), id="via"),
        pytest.param(Scenario(faults=(Status(429, 2), Status(503))), id="status-with-and-without"),
        pytest.param(Scenario(faults=(ResetBeforeHeaders(),), first=2), id="fail-twice"),
        pytest.param(
            Scenario(faults=(Slow(30), Chop(3), ResetAfter(5), Malformed(2), NoDone())),
            id="stages-out-of-order",
        ),
        pytest.param(Scenario(faults=(SplitUtf8(), SplitUtf8())), id="repeated-fault"),
        pytest.param(Scenario(faults=(Coalesce(), StallAfter(0))), id="zero-events"),
    ],
)
def test_scenario_parse_round_trips_model(scenario):
    assert Scenario.parse(scenario.model) == scenario


@DETERMINISTIC
@given(scenarios())
def test_scenario_parse_round_trips_any_model(scenario):
    assert Scenario.parse(scenario.model) == scenario


@DETERMINISTIC
@given(scenarios())
def test_scenario_model_uses_only_router_safe_characters(scenario):
    allowed = set(string.ascii_letters + string.digits + ".-_")
    assert set(scenario.model) <= allowed
    assert scenario.model.startswith("streamproof.")


def test_scenario_model_leaves_out_the_defaults():
    assert Scenario().model == "streamproof.chunks-8"


@pytest.mark.parametrize(
    "model",
    [
        pytest.param("gpt-4o-mini", id="openai-model"),
        pytest.param("", id="empty"),
        pytest.param("streamproof", id="bare-prefix"),
        pytest.param("streamproof.", id="prefix-and-dot"),
        pytest.param("streamproofx.chunks-3", id="longer-prefix"),
        pytest.param("Streamproof.chunks-3", id="capitalised-prefix"),
        pytest.param("fake/streamproof.chunks-3", id="routed-prefix"),
        pytest.param("gpt.bogus-token", id="unparsable-rest-of-other-model"),
    ],
)
def test_scenario_parse_of_other_models_is_the_default(model):
    assert Scenario.parse(model) == Scenario()


def test_scenario_parse_ignores_leading_zeros():
    assert Scenario.parse("streamproof.chunks-007.chop-03") == Scenario(chunks=7, faults=(Chop(3),))


# --- rejecting ---------------------------------------------------------------------------

ACCEPTED_TOKENS = "accepted: id, via, chunks, eol, first, " + ", ".join(FAULTS)


@pytest.mark.parametrize(
    ("tokens", "accepted"),
    [
        pytest.param("bogus", ACCEPTED_TOKENS, id="unknown-token"),
        pytest.param("chunks-3..chop-2", ACCEPTED_TOKENS, id="empty-token"),
        pytest.param("ID-abc", ACCEPTED_TOKENS, id="token-names-are-case-sensitive"),
        pytest.param("chop", "takes 1 whole-number argument", id="chop-without-size"),
        pytest.param("chop-1-2", "takes 1 whole-number argument", id="chop-two-sizes"),
        pytest.param("no_done-1", "takes 0 whole-number argument", id="no_done-with-argument"),
        pytest.param("status", "takes 1 to 2 whole-number", id="status-without-code"),
        pytest.param("status-429-2-3", "takes 1 to 2 whole-number", id="status-three-numbers"),
        pytest.param("chunks", "takes 1 whole-number argument", id="chunks-without-count"),
        pytest.param("first-1-2", "takes 1 whole-number argument", id="first-two-counts"),
        pytest.param("chop-x", "whole-number", id="non-integer-letters"),
        pytest.param("reset_after-+3", "whole-number", id="non-integer-plus-sign"),
        pytest.param("slow-", "whole-number", id="non-integer-empty"),
        pytest.param("chunks--1", "whole-number", id="negative-chunks"),
        pytest.param("first-\u0663", "whole-number", id="non-ascii-digit"),
        pytest.param("status-429-\u00b2", "whole-number", id="superscript-digit"),
        pytest.param("eol-crcr", "eol takes one of lf, crlf, cr", id="bad-eol"),
        pytest.param("eol-LF", "eol takes one of lf, crlf, cr", id="eol-is-case-sensitive"),
        pytest.param("status-399", "from 400 to 599", id="status-below-400"),
        pytest.param("status-600-1", "from 400 to 599", id="status-above-599"),
        pytest.param("chop-0", "at least 1 byte", id="chop-0"),
        pytest.param("chunks-100001", "chunks takes 0 to 100000", id="too-many-chunks"),
        pytest.param("id-k3x_9", "id takes 1 to 64 letters and digits", id="id-underscore"),
        pytest.param("id-caf\u00e9", "id takes 1 to 64 letters and digits", id="id-non-ascii"),
        pytest.param("id-" + "a" * 65, "id takes 1 to 64 letters and digits", id="id-too-long"),
    ],
)
def test_scenario_parse_rejects_malformed_token_naming_what_is_accepted(tokens, accepted):
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(f"streamproof.{tokens}")
    assert accepted in str(caught.value)


def test_scenario_parse_rejects_empty_id():
    with pytest.raises(ScenarioError, match="id takes 1 to 64 letters and digits"):
        Scenario.parse("streamproof.id-.chunks-3")


@pytest.mark.parametrize(
    ("tokens", "accepted"),
    [
        pytest.param("id-3f2a-77c1", "letters and digits", id="id-with-hyphen"),
        pytest.param("id", "letters and digits", id="id-without-value"),
        pytest.param("eol", "lf, crlf, cr", id="eol-without-value"),
        pytest.param("eol-cr-lf", "lf, crlf, cr", id="eol-with-two-values"),
    ],
)
def test_scenario_parse_rejects_id_or_eol_arity_naming_what_it_takes(tokens, accepted):
    with pytest.raises(ScenarioError, match=accepted):
        Scenario.parse(f"streamproof.{tokens}")


def test_scenario_error_is_a_value_error():
    # The server answers 400 for any ValueError raised while reading the request.
    assert issubclass(ScenarioError, ValueError)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"eol": "crlf2"}, id="eol"),
        pytest.param({"chunks": -1}, id="negative-chunks"),
        pytest.param({"chunks": 100_001}, id="too-many-chunks"),
        pytest.param({"nonce": "a.b"}, id="id-with-dot"),
    ],
)
def test_scenario_rejects_invalid_fields_when_built(changes):
    with pytest.raises(ScenarioError):
        Scenario(**changes)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: Scenario(first=-1), id="first"),
        pytest.param(lambda: Scenario(faults=(Slow(-5),)), id="slow"),
        pytest.param(lambda: Scenario(faults=(ResetAfter(-1),)), id="reset_after"),
    ],
)
def test_scenario_built_with_negative_count_is_rejected_or_round_trips(build):
    try:
        scenario = build()
    except ValueError:
        return
    assert Scenario.parse(scenario.model) == scenario


# --- which attempt gets the faults -------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "faulted"),
    [
        pytest.param(None, [1, 2, 3, 4], id="always"),
        pytest.param(0, [], id="first-0-never"),
        pytest.param(1, [1], id="first-1"),
        pytest.param(2, [1, 2], id="first-2"),
    ],
)
def test_scenario_faults_for_fires_on_the_first_k_attempts(first, faulted):
    scenario = Scenario(first=first, faults=(ResetBeforeHeaders(), Status(503)))
    for attempt in range(1, 5):
        expected = [ResetBeforeHeaders(), Status(503)] if attempt in faulted else []
        assert scenario.faults_for(attempt) == expected, attempt


def test_scenario_faults_for_orders_by_stage_keeping_written_order_within_a_stage():
    scenario = Scenario.parse(
        "streamproof.slow-5.split_utf8.chop-3.no_done.reset_after-4.status-500"
    )
    assert scenario.faults_for(1) == [
        Status(500),
        NoDone(),
        ResetAfter(4),
        SplitUtf8(),
        Chop(3),
        Slow(5),
    ]


@DETERMINISTIC
@given(scenarios(), st.integers(1, 1_100))
def test_scenario_faults_for_is_sorted_by_stage(scenario, attempt):
    fired = scenario.faults_for(attempt)
    assert [fault.stage for fault in fired] == sorted(fault.stage for fault in fired)
    if scenario.first is None or attempt <= scenario.first:
        assert sorted(fired, key=repr) == sorted(scenario.faults, key=repr)
    else:
        assert fired == []


# --- content and format tokens -----------------------------------------------------------


def full_scenarios() -> st.SearchStrategy[Scenario]:
    """Scenarios with every kind of token: content, format and faults."""
    text = st.sampled_from([None, *TEXT_KINDS])
    return st.builds(
        Scenario,
        nonce=st.text(string.ascii_letters + string.digits, max_size=8),
        chunks=st.integers(0, 100_000),
        eol=st.sampled_from(EOL_NAMES),
        first=st.none() | st.integers(0, 5),
        faults=st.lists(faults(), max_size=3).map(tuple),
        text=text,
        bigdelta=st.none() | st.integers(1, MAX_BIGDELTA),
        emptydeltas=st.booleans(),
        roleonly=st.booleans(),
        tools=st.none() | st.integers(1, 100_000),
        choices=st.integers(1, MAX_CHOICES),
        finish=st.none() | st.sampled_from(FINISH_REASONS),
        usage=st.none() | st.sampled_from(USAGE_DIALECTS),
        reject_stream_options=st.booleans(),
        formats=st.frozensets(st.sampled_from(FORMATS)),
    ) | st.builds(Scenario, text=st.just("random"), seed=st.integers(0, 999_999_999))


@DETERMINISTIC
@given(full_scenarios())
def test_scenario_with_content_and_format_tokens_round_trips(scenario):
    assert Scenario.parse(scenario.model) == scenario
    assert set(scenario.model) <= set(string.ascii_letters + string.digits + ".-_")


def test_scenario_model_writes_content_then_formats_then_faults_then_first():
    scenario = Scenario.parse(
        "streamproof.first-1.reset_after-9.bom.choices-2.text-random-5.eol-mixed.unterminated"
        ".tools-3.finish-length.comments.roleonly.emptydeltas.bigdelta-2.id-a1.chunks-4"
    )
    assert scenario.model == (
        "streamproof.id-a1.chunks-4.eol-mixed.text-random-5.bigdelta-2.emptydeltas.roleonly"
        ".tools-3.choices-2.finish-length.bom.comments.unterminated.reset_after-9.first-1"
    )
    assert scenario.formats == {"bom", "comments", "unterminated"}
    assert (scenario.text, scenario.seed, scenario.tools) == ("random", 5, 3)


def test_scenario_formats_are_a_set_whatever_order_or_repetition():
    assert Scenario.parse("streamproof.nospace.bom.nospace") == Scenario(
        formats=frozenset({"bom", "nospace"})
    )
    assert Scenario(formats=("bom", "bom")).formats == frozenset({"bom"})  # type: ignore[arg-type]


def test_scenario_finish_reason_defaults_to_stop_or_tool_calls():
    assert Scenario().finish_reason == "stop"
    assert Scenario(tools=2).finish_reason == "tool_calls"
    assert Scenario(tools=2, finish="length").finish_reason == "length"


def test_scenario_accepted_tokens_name_every_content_and_format_token():
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse("streamproof.bogus")
    message = str(caught.value)
    for name in (*CONTENT_TOKENS, *FORMATS, "nonobject", "upstream_error"):
        assert name in message.partition("accepted: ")[2].split(", "), name


@pytest.mark.parametrize(
    ("tokens", "accepted"),
    [
        pytest.param("text", "text takes one of ascii, emoji", id="text-without-kind"),
        pytest.param("text-klingon", "text takes one of ascii, emoji", id="text-unknown-kind"),
        pytest.param("text-emoji-3", "text takes one of", id="text-kind-with-number"),
        pytest.param("text-random", "or random-SEED", id="text-random-without-seed"),
        pytest.param("text-random-x", "whole-number", id="text-random-letters"),
        pytest.param("text-random-1-2", "or random-SEED", id="text-random-two-seeds"),
        pytest.param("bigdelta", "takes 1 whole-number", id="bigdelta-without-size"),
        pytest.param("bigdelta-0", "bigdelta takes 1 to 16384 KiB", id="bigdelta-0"),
        pytest.param("bigdelta-16385", "bigdelta takes 1 to 16384 KiB", id="bigdelta-too-big"),
        pytest.param("tools-0", "tools takes 1 to 100000", id="tools-0"),
        pytest.param("choices-0", "choices takes 1 to 128", id="choices-0"),
        pytest.param("choices-129", "choices takes 1 to 128", id="choices-too-many"),
        pytest.param("finish-error", "finish takes one of stop, length", id="finish-error"),
        pytest.param("finish", "finish takes one of stop, length", id="finish-without-reason"),
        pytest.param("emptydeltas-1", "takes 0 whole-number", id="emptydeltas-with-arg"),
        pytest.param("roleonly-2", "takes 0 whole-number", id="roleonly-with-arg"),
        pytest.param("bom-1", "takes 0 whole-number", id="bom-with-arg"),
        pytest.param("empty_data-x", "takes 0 whole-number", id="empty_data-with-arg"),
        pytest.param("eol-mixed-1", "eol takes one of lf, crlf, cr, mixed", id="eol-mixed-1"),
        pytest.param("eol-MIXED", "eol takes one of lf, crlf, cr, mixed", id="eol-capitals"),
        pytest.param("Bom", "accepted: id, via, chunks", id="format-names-are-case-sensitive"),
    ],
)
def test_scenario_parse_rejects_bad_content_or_format_token(tokens, accepted):
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(f"streamproof.{tokens}")
    assert accepted in str(caught.value)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"text": "klingon"}, id="unknown-text"),
        pytest.param({"text": "random"}, id="random-without-seed"),
        pytest.param({"text": "emoji", "seed": 3}, id="seed-without-random"),
        pytest.param({"seed": 3}, id="seed-alone"),
        pytest.param({"text": "random", "seed": -1}, id="negative-seed"),
        pytest.param({"formats": frozenset({"bom", "gzip"})}, id="unknown-format"),
        pytest.param({"finish": "error"}, id="finish-error"),
        pytest.param({"choices": 0}, id="no-choices"),
    ],
)
def test_scenario_rejects_invalid_content_or_format_fields_when_built(changes):
    with pytest.raises(ScenarioError):
        Scenario(**changes)


@pytest.mark.parametrize("token", ["via", "via-", "via-Fallback", "via-a-b", "via-" + "a" * 33])
def test_scenario_bad_via_is_rejected(token):
    with pytest.raises(ScenarioError, match="via takes"):
        Scenario.parse(f"streamproof.{token}")


def test_scenario_via_is_ignored_by_the_answer():
    assert expected(Scenario(via="fallback")).content == expected(Scenario()).content
