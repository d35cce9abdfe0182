"""The proxy's SSE framer: same events whatever the line endings and wherever reads split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.proxy.errors import SSEFramingError
from streamproof.proxy.sse import SSEEvent, SSEFramer

# One stream touching every rule: both data forms, a comment, an unknown field, an event
# name, multi-line data, a multi-byte character, an empty data line, an id and a retry.
LINES = [
    b'data: {"a": 1}',
    b"",
    b": keep-alive",
    b'data:{"b": "\xc3\xa9\xe2\x82\xac"}',
    b"unknown: field",
    b"",
    b"event: error",
    b"data: line one",
    b"data:  line two",
    b"id: 7",
    b"retry: 100",
    b"",
    b"data",
    b"",
    b"data: [DONE]",
    b"",
]
EXPECTED = [
    SSEEvent(b'{"a": 1}'),
    SSEEvent('{"b": "é€"}'.encode()),
    SSEEvent(b"line one\n line two", b"error"),
    SSEEvent(b""),
    SSEEvent(b"[DONE]"),
]
EOLS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def stream(eol: bytes) -> bytes:
    return b"".join(line + eol for line in LINES)


def frame(*chunks: bytes) -> list[SSEEvent]:
    framer = SSEFramer()
    events = [event for chunk in chunks for event in framer.feed(chunk)]
    assert not framer.pending
    return events


@pytest.mark.parametrize("eol", EOLS.values(), ids=EOLS.keys())
def test_sse_framer_every_line_ending(eol):
    assert frame(stream(eol)) == EXPECTED


def test_sse_framer_mixed_line_endings():
    # Never CR then an empty LF line: that pair is one CRLF, as it should be.
    endings = itertools.cycle([b"\n", b"\r", b"\r\n"])
    data = b"".join(line + eol for line, eol in zip(LINES, endings, strict=False))
    assert frame(data) == EXPECTED


@pytest.mark.parametrize("eol", EOLS.values(), ids=EOLS.keys())
def test_sse_framer_split_at_every_byte(eol):
    data = stream(eol)
    for cut in range(len(data) + 1):
        assert frame(data[:cut], data[cut:]) == EXPECTED, f"cut at {cut}"


@pytest.mark.parametrize("eol", EOLS.values(), ids=EOLS.keys())
def test_sse_framer_one_byte_at_a_time(eol):
    data = stream(eol)
    assert frame(*(data[i : i + 1] for i in range(len(data)))) == EXPECTED


def test_sse_framer_every_pair_of_cuts():
    data = b'data: {"x": "\xe2\x82\xac"}\r\n\r\ndata:y\r\r: c\n\ndata: z\r\n\r\n'
    expected = [SSEEvent(b'{"x": "\xe2\x82\xac"}'), SSEEvent(b"y"), SSEEvent(b"z")]
    for first, second in itertools.combinations(range(len(data) + 1), 2):
        chunks = data[:first], data[first:second], data[second:]
        assert frame(*chunks) == expected, f"cuts at {first}, {second}"


def test_sse_framer_split_between_cr_and_lf_is_one_line_ending():
    framer = SSEFramer()
    assert framer.feed(b"data: a\r") == []
    assert framer.feed(b"\n\r") == [SSEEvent(b"a")]
    assert framer.feed(b"\ndata: b\r\n\r\n") == [SSEEvent(b"b")]


def test_sse_framer_cr_then_empty_read_keeps_the_pending_cr():
    framer = SSEFramer()
    assert framer.feed(b"data: a\r") == []
    assert framer.feed(b"") == []
    assert framer.feed(b"\n\n") == [SSEEvent(b"a")]


def test_sse_framer_lone_cr_ends_lines():
    assert frame(b"data: a\r\rdata: b\r\r") == [SSEEvent(b"a"), SSEEvent(b"b")]


@pytest.mark.parametrize(
    ("line", "data"),
    [
        pytest.param(b"data: x", b"x", id="one-space"),
        pytest.param(b"data:x", b"x", id="no-space"),
        pytest.param(b"data:  x", b" x", id="two-spaces"),
        pytest.param(b"data:", b"", id="empty"),
        pytest.param(b"data", b"", id="no-colon"),
        pytest.param(b"data: a:b", b"a:b", id="colon-in-value"),
    ],
)
def test_sse_framer_data_field_forms(line, data):
    assert frame(line + b"\n\n") == [SSEEvent(data)]


def test_sse_framer_comments_and_unknown_fields_are_skipped():
    data = b": ping\n:PROCESSING\nfoo: bar\nDATA: no\n data: no\n\n"
    assert frame(data) == []


def test_sse_framer_event_without_data_is_not_dispatched():
    assert frame(b"event: ping\n\ndata: x\n\n") == [SSEEvent(b"x")]


def test_sse_framer_multi_line_data_is_joined_with_lf():
    assert frame(b'data: {\r\ndata: "a": 1\r\ndata: }\r\n\r\n') == [SSEEvent(b'{\n"a": 1\n}')]


def test_sse_framer_leading_bom_is_dropped_once_even_when_split():
    bom = b"\xef\xbb\xbf"
    data = bom + b"data: x\n\n"
    for cut in range(len(data) + 1):
        assert frame(data[:cut], data[cut:]) == [SSEEvent(b"x")]
    assert frame(bom + bom + b"data: x\n\n") == []  # the second BOM is part of a field name


def test_sse_framer_utf8_split_inside_a_character_comes_out_whole():
    data = 'data: {"t": "日本"}\n\n'.encode()
    for cut in range(len(data) + 1):
        (event,) = frame(data[:cut], data[cut:])
        assert event.data.decode() == '{"t": "日本"}'


def test_sse_framer_unterminated_tail_is_pending_not_dispatched():
    framer = SSEFramer()
    assert framer.feed(b"data: a\n\ndata: half") == [SSEEvent(b"a")]
    assert framer.pending
    framer = SSEFramer()
    framer.feed(b"data: complete line\n")  # the line ended, the event did not
    assert framer.pending


def test_sse_framer_refuses_an_event_past_the_limit():
    framer = SSEFramer(max_event_bytes=100)
    framer.feed(b"data: " + b"x" * 50 + b"\n")
    with pytest.raises(SSEFramingError, match="100 bytes"):
        framer.feed(b"data: " + b"y" * 60 + b"\n")


def test_sse_framer_long_line_across_many_reads():
    framer = SSEFramer()
    payload = b"z" * 100_000
    data = b"data: " + payload + b"\n\n"
    events = []
    for start in range(0, len(data), 1000):
        events += framer.feed(data[start : start + 1000])
    assert events == [SSEEvent(payload)]


@settings(derandomize=True, database=None, deadline=None)
@given(
    eol=st.sampled_from(list(EOLS.values())),
    cuts=st.lists(st.integers(min_value=0, max_value=len(stream(b"\r\n"))), max_size=12),
)
def test_sse_framer_random_cuts(eol, cuts):
    data = stream(eol)
    points = sorted({0, len(data), *(min(cut, len(data)) for cut in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert frame(*chunks) == EXPECTED


class LineByLine(SSEFramer):
    """The framer without its fast path for whole LF-ended events: the reference for it."""

    def _feed_lf(self, chunk: bytes) -> list[SSEEvent]:
        return self._feed_lines(chunk)


PIECES = [b"data:", b"data: ", b"event: e", b": c", b"id: 1", b"x", b"\n", b"\n\n", b"\r", b" "]


@settings(derandomize=True, database=None, deadline=None, max_examples=400)
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_sse_framer_fast_path_frames_as_line_by_line(pieces, cuts):
    data = b"data: first\n\n" + b"".join(pieces)
    points = sorted({0, len(data), *(min(cut, len(data)) for cut in cuts)})
    fast, reference = SSEFramer(), LineByLine()
    for a, b in itertools.pairwise(points):
        assert fast.feed(data[a:b]) == reference.feed(data[a:b])
        assert fast.pending == reference.pending


def test_sse_framer_fast_path_keeps_the_size_guard():
    framer = SSEFramer(max_event_bytes=100)
    assert framer.feed(b"data: a\n\n") == [SSEEvent(b"a")]
    with pytest.raises(SSEFramingError, match="100 bytes"):
        framer.feed(b"data: b\n\ndata: " + b"y" * 120)
