"""The format tokens, judged by their bytes: each writes the same events another legal way.

Each test builds the plain body and the body with one format (sans-IO, `chat.answer`), shows
the difference on the bytes, and decodes both with the harness's WHATWG decoder. An
exhaustive test then writes every subset of the formats with every line ending and checks
that the events mean the same thing.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.fake_providers import Scenario, chat
from streamproof.fake_providers.formats import MIXED_CYCLE, split_json
from streamproof.fake_providers.plan import FrameKind, Plan
from streamproof.fake_providers.scenario import EOL_NAMES, FORMATS
from streamproof.harness.sse import Event, SSEDecoder

QUICK = settings(derandomize=True, database=None, deadline=None, max_examples=150)
BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")


def plan_for(tokens: str) -> Plan:
    scenario = Scenario.parse(f"streamproof.id-fmt.{tokens}")
    request = {"model": scenario.model, "messages": [], "stream": True}
    return chat.answer(request, scenario, "chatcmpl-fmt-1")


def decode(body: bytes) -> tuple[list[Event], SSEDecoder]:
    decoder = SSEDecoder()
    events = decoder.feed(body) + decoder.close()
    return events, decoder


def meanings(events: list[Event]) -> list[Any]:
    """What the events say, model name left out (it differs with the tokens)."""
    out = []
    for event in events:
        if event.data in ("[DONE]", ""):
            out.append(event.data)
            continue
        payload = json.loads(event.data)
        payload.pop("model")
        out.append(payload)
    return out


def plain_and(token: str, chunks: int = 3) -> tuple[Plan, Plan]:
    """The plain answer and the answer with `token`, with the same model name in both."""
    formatted = plan_for(f"chunks-{chunks}.{token}")
    model = Scenario.parse(f"streamproof.id-fmt.chunks-{chunks}.{token}").model
    scenario = Scenario(nonce="fmt", chunks=chunks)
    request = {"model": model, "messages": [], "stream": True}
    return chat.answer(request, scenario, "chatcmpl-fmt-1"), formatted


def test_bom_starts_the_body_once():
    plain, bom = plain_and("bom")
    assert bom.body == BOM + plain.body
    assert bom.frames[0].data.startswith(BOM)
    assert bom.body.count(BOM) == 1
    assert decode(bom.body)[0] == decode(plain.body)[0]


def test_comments_ping_before_every_event_and_one_empty_comment_inside():
    plain, commented = plain_and("comments")
    assert all(frame.data.startswith(b": ping\n\n") for frame in commented.frames)
    first_content = next(f for f in commented.frames if f.kind is FrameKind.CONTENT)
    assert b"\n:\n" in first_content.data
    assert commented.body.count(b"\n:\n") == 1
    # inside the event: after its data line, before the blank line that dispatches it
    assert first_content.data.endswith(b"}\n:\n\n")
    stripped = commented.body.replace(b": ping\n\n", b"").replace(b"\n:\n", b"\n")
    assert stripped == plain.body
    assert decode(commented.body)[0] == decode(plain.body)[0]


def test_comments_inside_the_finish_event_when_there_is_no_content():
    _, commented = plain_and("comments", chunks=0)
    (finish,) = (f for f in commented.frames if f.kind is FrameKind.FINISH)
    assert b"\n:\n" in finish.data


def test_nospace_drops_the_space_after_every_data_colon():
    plain, nospace = plain_and("nospace")
    assert b"data: " not in nospace.body
    assert nospace.body == plain.body.replace(b"data: ", b"data:")
    assert decode(nospace.body)[0] == decode(plain.body)[0]


def test_eol_mixed_cycles_lf_cr_crlf_line_by_line_blank_lines_included():
    mixed = plan_for("chunks-3.eol-mixed")
    endings = [m.group() for m in _LINE_END.finditer(mixed.body)]
    lines = len(mixed.frames) * 2  # a data line and a blank line per event
    assert len(endings) == lines
    assert endings == [
        end.encode() for end in itertools.islice(itertools.cycle(MIXED_CYCLE), lines)
    ]
    # Read greedily (CR LF is one ending), the endings are still the cycle: no CR was ever
    # followed by an LF of its own, which would have merged two endings into one.
    assert set(endings) == {b"\n", b"\r", b"\r\n"}
    plain = plan_for("chunks-3")
    assert _LINE_END.sub(b"\n", mixed.body).replace(b".eol-mixed", b"") == plain.body
    assert meanings(decode(mixed.body)[0]) == meanings(decode(plain.body)[0])


def test_fields_add_id_event_unknown_and_colonless_fields_and_one_retry():
    plain, fielded = plain_and("fields")
    for number, frame in enumerate(fielded.frames, start=1):
        head = f"id: {number}\nevent: message\nx-streamproof: 1\nx-flag\n".encode()
        assert frame.data.startswith(head + (b"retry: 1500\n" if number == 1 else b"data: "))
    assert fielded.body.count(b"retry:") == 1
    events, decoder = decode(fielded.body)
    assert decoder.retry == 1500
    assert [event.id for event in events] == [str(n) for n in range(1, len(events) + 1)]
    assert {event.event for event in events} == {"message"}
    assert [event.data for event in events] == [event.data for event in decode(plain.body)[0]]


def test_multiline_cuts_each_json_payload_over_several_data_lines():
    plain, multi = plain_and("multiline")
    plain_events, multi_events = decode(plain.body)[0], decode(multi.body)[0]
    for frame, before, after in zip(multi.frames, plain_events, multi_events, strict=True):
        data_lines = frame.data.count(b"data: ")
        if before.data == "[DONE]":
            assert data_lines == 1
            continue
        assert 2 <= data_lines <= 4
        assert after.data.replace("\n", "") == before.data  # only newlines were added
        assert json.loads(after.data) == json.loads(before.data)


def test_multiline_never_cuts_inside_a_string():
    multi = plan_for("chunks-40.text-ascii.multiline")
    for event in decode(multi.body)[0][:-1]:
        lines = event.data.split("\n")
        assert all(line.endswith(",") for line in lines[:-1])
        assert json.loads(event.data)  # a newline inside a string would be invalid JSON


@pytest.mark.parametrize(
    "document",
    [
        '{"a":"x,y","b":"\\",","c":[1,2],"d":{"e":",\\\\"},"f":"\\\\\\",,"}',
        '{"k":",,,,"}',
        "[1,2,3,4,5,6,7,8]",
        '"a,b"',
        "{}",
    ],
)
def test_split_json_cuts_only_after_commas_outside_strings(document):
    pieces = split_json(document)
    assert "".join(pieces) == document
    assert json.loads("\n".join(pieces)) == json.loads(document)
    assert len(pieces) <= 4


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(string.printable + 'é",\\'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@QUICK
@given(JSON)
def test_split_json_keeps_any_value(value):
    document = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    pieces = split_json(document)
    assert "".join(pieces) == document
    assert json.loads("\n".join(pieces)) == value


def test_unterminated_ends_the_body_right_after_done():
    plain, cut = plain_and("unterminated")
    assert cut.body.endswith(b"data: [DONE]")
    assert cut.body + b"\n\n" == plain.body
    events, decoder = decode(cut.body)
    assert decoder.unterminated
    assert [event.data for event in events] == [e.data for e in decode(plain.body)[0]][:-1]


@pytest.mark.parametrize("eol", EOL_NAMES)
def test_unterminated_has_no_line_ending_at_all(eol):
    body = plan_for(f"chunks-2.eol-{eol}.unterminated.fields").body
    assert body.endswith((b"\ndata: [DONE]", b"\rdata: [DONE]"))


def test_empty_data_adds_one_empty_event_before_the_first_content():
    plain, empty = plain_and("empty_data")
    kinds = [frame.kind for frame in empty.frames]
    assert kinds[:3] == [FrameKind.ROLE, FrameKind.EMPTY, FrameKind.CONTENT]
    assert empty.frames[1].data == b"data:\n\n"
    events = decode(empty.body)[0]
    assert [event.data for event in events].count("") == 1
    assert [e for e in events if e.data] == decode(plain.body)[0]


# --- every subset of formats, every line ending ---------------------------------------------


@pytest.mark.parametrize("eol", EOL_NAMES)
def test_every_format_subset_means_the_same_events(eol):
    plain = meanings(decode(plan_for("chunks-2.choices-2.tools-2").body)[0])
    for size in range(len(FORMATS) + 1):
        for subset in itertools.combinations(FORMATS, size):
            tokens = ".".join(["chunks-2.choices-2.tools-2", f"eol-{eol}", *subset])
            events, decoder = decode(plan_for(tokens).body)
            expect = [m for m in plain if "unterminated" not in subset or m != "[DONE]"]
            said = meanings(events)
            if "empty_data" in subset:
                said.remove("")
            assert said == expect, tokens
            assert decoder.unterminated is ("unterminated" in subset), tokens
