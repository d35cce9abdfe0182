"""Every fault of the fake provider, judged by the plan it produces: no sockets here.

The base plan is always the well-behaved answer from `chat.answer`; a fault is applied to it
(alone, or in stage order through `Scenario.faults_for`) and the result is compared with what
the fault's docstring promises. Hypothesis then checks the invariant every writer relies on:
whatever faults are composed, the writes join back to exactly the body.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from streamproof.fake_providers import FAULTS, Fault, Scenario, chat
from streamproof.fake_providers.faults import (
    Chop,
    CloseAfter,
    CloseDelimited,
    Coalesce,
    CutInside,
    Malformed,
    NoDone,
    NonObject,
    RaggedAfter,
    ResetAfter,
    ResetBeforeHeaders,
    ResetInside,
    Slow,
    SplitEol,
    SplitUtf8,
    Stale,
    StallAfter,
    StallBeforeHeaders,
    Status,
    TlsRecords,
    UpstreamError,
)
from streamproof.fake_providers.plan import Ending, FrameKind, Plan
from streamproof.fake_providers.scenario import EOLS
from streamproof.harness.sse import SSEDecoder

# Deterministic and quick: same examples on every run, no example database written to disk.
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=150)


def answer(*, chunks: int = 4, eol: str = "lf", stream: bool = True) -> Plan:
    """The well-behaved plan that every fault below starts from."""
    request: dict[str, Any] = {
        "model": f"streamproof.id-faults.chunks-{chunks}",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    return chat.answer(request, Scenario(nonce="faults", chunks=chunks, eol=eol), "chatcmpl-t-1")


def apply(plan: Plan, *faults: Fault) -> Plan:
    """Apply `faults` the way the server does: in stage order, as a scenario lists them."""
    for fault in Scenario(faults=faults).faults_for(1):
        plan = fault.apply(plan)
    return plan


def boundaries(plan: Plan) -> set[int]:
    """Body offsets where one write ends and the next begins."""
    offsets, total = set(), 0
    for piece in list(plan.writes())[:-1]:
        total += len(piece)
        offsets.add(total)
    return offsets


def multibyte_spans(body: bytes) -> list[tuple[int, int]]:
    """The [start, end) byte spans of the characters of `body` that take more than one byte."""
    spans, offset = [], 0
    for char in body.decode():
        size = len(char.encode())
        if size > 1:
            spans.append((offset, offset + size))
        offset += size
    return spans


def crlf_middles(body: bytes) -> set[int]:
    """Offsets of the LF of every CRLF in `body` (a cut there splits the pair)."""
    return {i + 1 for i in range(len(body) - 1) if body[i : i + 2] == b"\r\n"}


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
        return fault
    except ValueError:  # status outside 400-599, chop-0
        reject()


# --- one test per fault ------------------------------------------------------------------


def test_reset_before_headers_sends_nothing_then_resets():
    plan = ResetBeforeHeaders().apply(answer())
    assert plan.before_headers is Ending.RESET
    assert plan.frames == ()
    assert list(plan.writes()) == []


def test_stall_before_headers_sends_nothing_then_stalls():
    plan = StallBeforeHeaders().apply(answer())
    assert plan.before_headers is Ending.STALL
    assert plan.frames == ()
    assert list(plan.writes()) == []


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        pytest.param(Status(429, 2), "2", id="status-429-2"),
        pytest.param(Status(503), None, id="status-503"),
        pytest.param(Status(529), None, id="status-529"),
        pytest.param(Status(400, 0), "0", id="status-400-0"),
    ],
)
def test_status_sends_error_code_with_json_error_body(fault, retry_after):
    plan = fault.apply(answer())
    assert plan.status == fault.code
    assert plan.content_type == "application/json"
    assert [frame.kind for frame in plan.frames] == [FrameKind.DOCUMENT]
    error = json.loads(plan.body)["error"]
    assert error["code"] == fault.code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert dict(plan.extra_headers).get("retry-after") == retry_after
    assert plan.ending is Ending.CLEAN
    assert plan.before_headers is None


@pytest.mark.parametrize("code", [pytest.param(399, id="399"), pytest.param(600, id="600")])
def test_status_rejects_codes_outside_400_to_599(code):
    with pytest.raises(ValueError, match="400 to 599"):
        Status(code)


TRUNCATIONS = [
    pytest.param(ResetAfter, Ending.RESET, id="reset_after"),
    pytest.param(StallAfter, Ending.STALL, id="stall_after"),
    pytest.param(CloseAfter, Ending.CLEAN, id="close_after"),
]


@pytest.mark.parametrize(("cls", "ending"), TRUNCATIONS)
@pytest.mark.parametrize("events", [0, 1, 3, 6])
def test_truncation_keeps_n_events_then_ends(cls, ending, events):
    base = answer(chunks=4)  # role, 4 contents, finish, [DONE]: 7 events
    plan = cls(events).apply(base)
    assert plan.frames == base.frames[:events]
    assert plan.ending is ending
    assert plan.status == 200
    assert list(plan.writes()) == [frame.data for frame in base.frames[:events]]


@pytest.mark.parametrize(("cls", "ending"), TRUNCATIONS)
def test_truncation_past_the_last_event_keeps_every_event(cls, ending):
    base = answer(chunks=4)
    plan = cls(len(base.frames) + 5).apply(base)
    assert plan.frames == base.frames
    assert plan.ending is ending


def test_reset_after_0_is_the_200_headers_then_a_reset_before_any_body_byte():
    base = answer(chunks=4)
    plan = ResetAfter(0).apply(base)
    assert plan.before_headers is None  # the status line and headers are written
    assert (plan.status, plan.content_type) == (base.status, base.content_type)
    assert plan.frames == ()
    assert list(plan.writes()) == []
    assert plan.ending is Ending.RESET


def test_close_after_leaves_out_finish_and_done():
    plan = CloseAfter(3).apply(answer(chunks=4))
    kinds = [frame.kind for frame in plan.frames]
    assert kinds == [FrameKind.ROLE, FrameKind.CONTENT, FrameKind.CONTENT]
    assert plan.ending is Ending.CLEAN


def test_no_done_drops_only_the_done_event():
    base = answer(chunks=4)
    plan = NoDone().apply(base)
    assert plan.frames == base.frames[:-1]
    assert plan.frames[-1].kind is FrameKind.FINISH
    assert b"[DONE]" not in plan.body
    assert plan.ending is Ending.CLEAN


@pytest.mark.parametrize("eol", sorted(EOLS))
@pytest.mark.parametrize("event", [1, 3, 7])
def test_malformed_replaces_event_n_with_invalid_json(event, eol):
    base = answer(chunks=4, eol=eol)
    plan = Malformed(event).apply(base)
    bad = plan.frames[event - 1]
    assert bad.kind is FrameKind.MALFORMED
    terminator = EOLS[eol].encode() * 2
    assert bad.data.startswith(b"data: ")
    assert bad.data.endswith(terminator)
    payload = bad.data.removeprefix(b"data: ").removesuffix(terminator)
    with pytest.raises(json.JSONDecodeError):
        json.loads(payload)
    others = [f for n, f in enumerate(plan.frames, start=1) if n != event]
    assert others == [f for n, f in enumerate(base.frames, start=1) if n != event]


@pytest.mark.parametrize("event", [pytest.param(0, id="zero"), pytest.param(8, id="past-end")])
def test_malformed_outside_the_stream_changes_nothing(event):
    base = answer(chunks=4)
    assert Malformed(event).apply(base) == base


def test_coalesce_makes_one_write():
    base = answer(chunks=4)
    plan = Coalesce().apply(base)
    assert list(plan.writes()) == [base.body]
    assert plan.frames == base.frames


def test_coalesce_of_an_empty_body_makes_no_write():
    plan = apply(answer(chunks=4), CloseAfter(0), Coalesce())
    assert list(plan.writes()) == []


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_chop_writes_b_bytes_except_possibly_the_last(size):
    base = answer(chunks=4)
    writes = list(Chop(size).apply(base).writes())
    assert b"".join(writes) == base.body
    assert all(len(piece) == size for piece in writes[:-1])
    assert 1 <= len(writes[-1]) <= size


def test_chop_rejects_a_zero_size():
    with pytest.raises(ValueError, match="at least 1 byte"):
        Chop(0)


@pytest.mark.parametrize(
    "stream", [pytest.param(True, id="stream"), pytest.param(False, id="json")]
)
def test_split_utf8_cuts_inside_every_multibyte_character(stream):
    base = answer(chunks=16, stream=stream)  # the whole vocabulary: 2-, 3- and 4-byte chars
    plan = SplitUtf8().apply(base)
    cuts = boundaries(plan)
    spans = multibyte_spans(base.body)
    assert {end - start for start, end in spans} == {2, 3, 4}
    for start, end in spans:
        assert set(range(start + 1, end)) <= cuts, base.body[start:end]
    # No cut anywhere else than inside a character or at the end of an event.
    inside = {cut for start, end in spans for cut in range(start + 1, end)}
    assert cuts == inside | (set(base.frame_ends()) - {len(base.body)})
    assert b"".join(plan.writes()) == base.body


def test_split_utf8_leaves_no_write_that_decodes_with_non_ascii():
    # Every multi-byte character is cut, so a write holding any of its bytes holds only part.
    for piece in SplitUtf8().apply(answer(chunks=16)).writes():
        if piece.isascii():
            piece.decode("utf-8", errors="strict")
        else:
            with pytest.raises(UnicodeDecodeError):
                piece.decode("utf-8", errors="strict")


def test_split_eol_cuts_between_every_cr_and_lf():
    base = answer(chunks=4, eol="crlf")
    plan = SplitEol().apply(base)
    middles = crlf_middles(base.body)
    assert len(middles) == 2 * len(base.frames)
    assert boundaries(plan) == middles | (set(base.frame_ends()) - {len(base.body)})
    assert b"".join(plan.writes()) == base.body


@pytest.mark.parametrize("eol", ["lf", "cr"])
def test_split_eol_without_crlf_keeps_one_write_per_event(eol):
    base = answer(chunks=4, eol=eol)
    plan = SplitEol().apply(base)
    assert list(plan.writes()) == [frame.data for frame in base.frames]


def test_slow_sets_the_pause_and_nothing_else():
    base = answer(chunks=4)
    plan = Slow(30).apply(base)
    assert plan.pause == pytest.approx(0.030)
    assert plan.replace(pause=0.0) == base


# --- the registry and tokens -------------------------------------------------------------

EXAMPLES: list[tuple[Fault, str]] = [
    (ResetBeforeHeaders(), "reset_before_headers"),
    (StallBeforeHeaders(), "stall_before_headers"),
    (Status(429), "status-429"),
    (Status(429, 2), "status-429-2"),
    (ResetAfter(6), "reset_after-6"),
    (StallAfter(2), "stall_after-2"),
    (CloseAfter(0), "close_after-0"),
    (CutInside(3), "cut_inside-3"),
    (ResetInside(3), "reset_inside-3"),
    (NoDone(), "no_done"),
    (Malformed(3), "malformed-3"),
    (Coalesce(), "coalesce"),
    (Chop(3), "chop-3"),
    (SplitUtf8(), "split_utf8"),
    (SplitEol(), "split_eol"),
    (Slow(30), "slow-30"),
    (NonObject(3, "array"), "nonobject-3-array"),
    (UpstreamError(4, "flat"), "upstream_error-4-flat"),
    (RaggedAfter(4), "ragged_after-4"),
    (CloseDelimited(), "close_delimited"),
    (TlsRecords(7), "tls_records-7"),
    (Stale("close"), "stale-close"),
    (Stale("reset"), "stale-reset"),
]


def test_fault_examples_cover_the_whole_registry():
    assert {fault.name for fault, _ in EXAMPLES} == set(FAULTS)


@pytest.mark.parametrize(
    ("fault", "token"), [pytest.param(fault, token, id=token) for fault, token in EXAMPLES]
)
def test_fault_token_round_trips_through_scenario_parse(fault, token):
    assert fault.token == token
    assert Scenario.parse(f"streamproof.{token}").faults == (fault,)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_registry_entry_is_named_staged_and_documented(name):
    cls = FAULTS[name]
    assert cls.name == name
    assert cls.stage in {0, 1, 2, 3}
    assert cls.__doc__ is not None
    assert "\n" not in cls.__doc__.strip()


@DETERMINISTIC
@given(faults())
def test_fault_token_round_trips_for_any_parameters(fault):
    assert Scenario.parse(f"streamproof.{fault.token}").faults == (fault,)


# --- composition -------------------------------------------------------------------------


def test_faults_compose_in_stage_order_whatever_order_they_are_written():
    scenario = Scenario.parse("streamproof.chunks-4.slow-5.chop-4.reset_after-3")
    ordered = scenario.faults_for(1)
    assert [type(fault) for fault in ordered] == [ResetAfter, Chop, Slow]
    base = answer(chunks=4)
    plan = apply(base, *scenario.faults)
    assert plan.frames == base.frames[:3]
    writes = list(plan.writes())
    assert b"".join(writes) == b"".join(frame.data for frame in base.frames[:3])
    assert all(len(piece) == 4 for piece in writes[:-1])
    assert plan.pause == pytest.approx(0.005)
    assert plan.ending is Ending.RESET


def test_status_then_truncation_truncates_the_error_body():
    plan = apply(answer(), Status(502), ResetAfter(0))
    assert plan.status == 502
    assert plan.frames == ()
    assert plan.ending is Ending.RESET


def test_split_faults_add_their_cuts_to_each_other():
    base = answer(chunks=16, eol="crlf")
    plan = apply(base, SplitEol(), SplitUtf8())
    cuts = boundaries(plan)
    assert crlf_middles(base.body) <= cuts
    assert all(set(range(start + 1, end)) <= cuts for start, end in multibyte_spans(base.body))


@DETERMINISTIC
@given(
    chunks=st.integers(0, 20),
    eol=st.sampled_from(sorted(EOLS)),
    stream=st.booleans(),
    composed=st.lists(faults(), max_size=5),
)
def test_fault_compositions_write_exactly_the_body(chunks, eol, stream, composed):
    plan = apply(answer(chunks=chunks, eol=eol, stream=stream), *composed)
    writes = list(plan.writes())
    assert b"".join(writes) == plan.body
    assert all(writes)


SHAPERS = st.lists(st.sampled_from([Coalesce(), Chop(1), Chop(5), Chop(64), SplitEol()]))
OTHERS = st.lists(st.builds(ResetAfter, st.integers(0, 20)) | st.builds(Slow, st.integers(0, 50)))


@DETERMINISTIC
@given(chunks=st.integers(0, 20), before=SHAPERS, others=OTHERS)
def test_split_utf8_written_last_splits_every_character(chunks, before, others):
    plan = apply(answer(chunks=chunks, eol="crlf"), *before, SplitUtf8(), *others)
    cuts = boundaries(plan)
    assert all(set(range(start + 1, end)) <= cuts for start, end in multibyte_spans(plan.body))
    assert b"".join(plan.writes()) == plan.body


@DETERMINISTIC
@given(chunks=st.integers(0, 20), before=SHAPERS, others=OTHERS)
def test_split_eol_written_last_splits_every_crlf(chunks, before, others):
    plan = apply(answer(chunks=chunks, eol="crlf"), *before, SplitEol(), *others)
    assert crlf_middles(plan.body) <= boundaries(plan)
    assert b"".join(plan.writes()) == plan.body


def test_cut_inside_ends_with_half_an_event():
    base = answer(chunks=4)
    plan = CutInside(3).apply(base)
    assert plan.frames[:3] == base.frames[:3]
    assert plan.frames[3].data == base.frames[3].data[: len(base.frames[3].data) // 2]
    assert plan.frames[3].deltas == ()
    assert plan.ending is Ending.CLEAN
    decoder = SSEDecoder()
    events = decoder.feed(plan.body) + decoder.close()
    assert len(events) == 3
    assert decoder.unterminated


def test_cut_inside_past_the_end_keeps_every_event():
    base = answer(chunks=2)
    assert CutInside(99).apply(base).frames == base.frames


@pytest.mark.parametrize("eol", sorted(EOLS))
@pytest.mark.parametrize("events", [0, 3, 6])
def test_reset_inside_ends_with_half_an_event_then_a_reset(events, eol):
    base = answer(chunks=4, eol=eol)
    plan = ResetInside(events).apply(base)
    assert plan.frames[:events] == base.frames[:events]
    cut = base.frames[events].data
    assert plan.frames[events].data == cut[: len(cut) // 2]
    assert plan.frames[events].deltas == ()
    assert len(plan.frames) == events + 1
    assert plan.ending is Ending.RESET
    decoder = SSEDecoder()
    assert len(decoder.feed(plan.body) + decoder.close()) == events
    assert decoder.unterminated


def test_reset_inside_writes_what_cut_inside_writes_and_only_ends_differently():
    base = answer(chunks=4)
    assert ResetInside(3).apply(base) == CutInside(3).apply(base).replace(ending=Ending.RESET)


def test_reset_inside_past_the_end_keeps_every_event_then_resets():
    base = answer(chunks=2)
    plan = ResetInside(99).apply(base)
    assert plan.frames == base.frames
    assert plan.ending is Ending.RESET
