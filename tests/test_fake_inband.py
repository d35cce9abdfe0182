"""The faults that put something other than a chunk where a chunk should be, without sockets.

`nonobject-N-KIND` replaces event N with valid JSON that is not an object; `upstream_error-
N-SHAPE` replaces it with an in-band error in one of the shapes providers use, and ends the
body there. Both take a word as their second parameter, which the scenario grammar checks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamproof.fake_providers import FAULTS, Scenario, ScenarioError, chat
from streamproof.fake_providers.faults import (
    ERROR_MESSAGE,
    ERROR_SHAPES,
    NONOBJECTS,
    NonObject,
    ResetAfter,
    UpstreamError,
)
from streamproof.fake_providers.plan import Ending, FrameKind, Plan
from streamproof.harness.sse import Event, SSEDecoder


def answer(tokens: str = "chunks-4", *, eol: str = "lf") -> Plan:
    scenario = Scenario.parse(f"streamproof.id-inband.eol-{eol}.{tokens}")
    request = {"model": scenario.model, "messages": [], "stream": True}
    return chat.answer(request, scenario, "chatcmpl-inband-1")


def planned(tokens: str) -> Plan:
    """The answer with the scenario's faults applied, as the server would write it."""
    plan = answer(tokens)
    for fault in Scenario.parse(f"streamproof.{tokens}").faults_for(1):
        plan = fault.apply(plan)
    return plan


def decode(body: bytes) -> list[Event]:
    decoder = SSEDecoder()
    return decoder.feed(body) + decoder.close()


# --- nonobject -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "value"), [(k, json.loads(v)) for k, v in NONOBJECTS.items()])
@pytest.mark.parametrize("event", [1, 3, 7])
def test_nonobject_replaces_event_n_with_json_that_is_not_an_object(kind, value, event):
    base = answer()
    plan = NonObject(event, kind).apply(base)
    assert plan.frames[event - 1].kind is FrameKind.NONOBJECT
    assert plan.frames[event - 1].data == b"data: " + NONOBJECTS[kind] + b"\n\n"
    payload: Any = json.loads(decode(plan.frames[event - 1].data)[0].data)
    assert payload == value
    assert not isinstance(payload, dict)
    others = [f for n, f in enumerate(plan.frames, start=1) if n != event]
    assert others == [f for n, f in enumerate(base.frames, start=1) if n != event]
    assert plan.ending is Ending.CLEAN


@pytest.mark.parametrize("event", [0, 8])
def test_nonobject_outside_the_stream_changes_nothing(event):
    assert NonObject(event, "array").apply(answer()) == answer()


def test_nonobject_uses_the_plans_line_ending():
    plan = NonObject(2, "null").apply(answer(eol="crlf"))
    assert plan.frames[1].data == b"data: null\r\n\r\n"


# --- upstream_error ------------------------------------------------------------------------


def error_event(tokens: str) -> tuple[Plan, Event]:
    plan = planned(tokens)
    return plan, decode(plan.body)[-1]


def test_upstream_error_object_shape():
    plan, event = error_event("chunks-4.upstream_error-3-object")
    assert json.loads(event.data) == {
        "error": {"message": ERROR_MESSAGE, "type": "server_error", "code": "overloaded"}
    }
    assert event.event == "message"
    assert [f.kind for f in plan.frames] == [FrameKind.ROLE, FrameKind.CONTENT, FrameKind.ERROR]


def test_upstream_error_flat_shape():
    _, event = error_event("chunks-4.upstream_error-3-flat")
    payload = json.loads(event.data)
    assert payload["object"] == "error"
    assert payload["message"] == ERROR_MESSAGE
    assert payload["code"] == 500
    assert isinstance(payload["type"], str)


def test_upstream_error_event_shape_is_an_error_event():
    plan, event = error_event("chunks-4.upstream_error-3-event")
    assert plan.frames[-1].data.startswith(b"event: error\ndata: ")
    assert event.event == "error"
    assert json.loads(event.data) == {"message": ERROR_MESSAGE}


def test_upstream_error_finish_shape_is_a_chunk_with_finish_reason_error():
    _, event = error_event("chunks-4.choices-2.upstream_error-4-finish")
    chunk = json.loads(event.data)
    want = chat.expected(Scenario.parse("streamproof.id-inband.chunks-4.choices-2"))
    assert chunk["id"] == want.chunk_id(1)
    assert (chunk["object"], chunk["created"]) == (want.object, want.created)
    assert chunk["model"].startswith("streamproof.id-inband.")
    assert chunk["choices"] == [
        {"index": 0, "delta": {}, "finish_reason": "error"},
        {"index": 1, "delta": {}, "finish_reason": "error"},
    ]


@pytest.mark.parametrize("shape", ERROR_SHAPES)
def test_upstream_error_ends_the_stream_without_finish_or_done(shape):
    base = answer("chunks-4")
    plan = UpstreamError(3, shape).apply(base)
    assert plan.frames[:2] == base.frames[:2]
    assert len(plan.frames) == 3
    assert plan.ending is Ending.CLEAN
    assert b"[DONE]" not in plan.body
    assert b'"finish_reason":"stop"' not in plan.body
    decoder = SSEDecoder()
    decoder.feed(plan.body)
    decoder.close()
    assert not decoder.unterminated


def test_upstream_error_after_a_truncation_keeps_the_truncation():
    plan = planned("chunks-4.reset_after-2.upstream_error-5-object")
    assert len(plan.frames) == 2  # event 5 no longer exists: nothing to replace
    assert plan.ending is Ending.RESET


@pytest.mark.parametrize("event", [0, 8])
def test_upstream_error_outside_the_stream_changes_nothing(event):
    assert UpstreamError(event, "flat").apply(answer()) == answer()


def test_upstream_error_on_the_first_attempt_only():
    scenario = Scenario.parse("streamproof.upstream_error-2-object.first-1")
    assert scenario.faults_for(1) == [UpstreamError(2, "object")]
    assert scenario.faults_for(2) == []
    assert scenario.faults == (UpstreamError(2, "object"),)
    assert ResetAfter(1).token == "reset_after-1"


# --- the grammar of word parameters --------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        *(NonObject(3, kind) for kind in NONOBJECTS),
        *(UpstreamError(4, shape) for shape in ERROR_SHAPES),
    ],
)
def test_word_fault_token_round_trips(fault):
    assert Scenario.parse(f"streamproof.{fault.token}").faults == (fault,)
    assert fault.token.split("-")[0] in FAULTS


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param("nonobject", "takes nonobject-event-array|string|number|null", id="none"),
        pytest.param("nonobject-3", "takes nonobject-event-", id="no-kind"),
        pytest.param("nonobject-3-array-1", "takes nonobject-event-", id="too-many"),
        pytest.param("nonobject-3-object", "kind takes one of array, string", id="bad-kind"),
        pytest.param("nonobject-x-array", "whole-number", id="event-not-a-number"),
        pytest.param("nonobject-array-3", "whole-number", id="swapped"),
        pytest.param("upstream_error-2-weird", "shape takes one of object, flat", id="bad-shape"),
        pytest.param("upstream_error-2-Object", "shape takes one of", id="case-sensitive"),
        pytest.param("upstream_error-2", "takes upstream_error-event-object|flat", id="no-shape"),
    ],
)
def test_word_fault_with_bad_arguments_is_rejected_naming_what_it_takes(token, message):
    with pytest.raises(ScenarioError, match="^'" + token) as caught:
        Scenario.parse(f"streamproof.{token}")
    assert message in str(caught.value)


def test_word_fault_built_with_a_bad_word_is_rejected():
    with pytest.raises(ValueError, match="kind takes one of array, string, number, null"):
        NonObject(1, "object")
    with pytest.raises(ValueError, match="whole numbers"):
        UpstreamError(-1, "flat")
