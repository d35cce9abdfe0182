"""Conformance vectors for harness.sse against the WHATWG "Interpreting an event stream" rules.

Every vector must decode to the same outcome whether it is fed whole, one byte at a time, cut
once at every possible offset, or cut at Hypothesis-chosen offsets (empty feeds included).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.harness.sse import DecoderClosedError, Event, SSEDecoder

# Deterministic and quick: same examples on every run, no example database written to disk.
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)


@dataclass(frozen=True)
class Outcome:
    """Everything observable after decoding a whole stream."""

    events: tuple[Event, ...] = ()
    retry: int | None = None
    last_event_id: str = ""
    unterminated: bool = False


def decode_at(stream: bytes, cuts: Iterable[int]) -> Outcome:
    """Feed ``stream`` cut at ``cuts`` (offsets; repeats give empty feeds), then close."""
    decoder = SSEDecoder()
    events: list[Event] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        events += decoder.feed(stream[start:cut])
        start = cut
    events += decoder.close()
    return Outcome(tuple(events), decoder.retry, decoder.last_event_id, decoder.unterminated)


def cut_points(size: int) -> st.SearchStrategy[list[int]]:
    """Sorted cut offsets into a stream of ``size`` bytes; repeated offsets mean empty feeds."""
    return st.lists(st.integers(0, size), max_size=12).map(sorted)


def msg(data: str, id: str = "", event: str = "message") -> Event:
    return Event(event=event, data=data, id=id)


def events(
    *items: Event, retry: int | None = None, last_event_id: str = "", unterminated: bool = False
) -> Outcome:
    return Outcome(items, retry, last_event_id, unterminated)


V = pytest.param

SPEC_EXAMPLES = [
    V(
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        events(msg("YHOO\n+2\n10")),
        id="spec-stock-ticker-multiline-data",
    ),
    V(
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n",
        events(msg("first event", id="1"), msg("second event"), msg(" third event")),
        id="spec-test-stream-with-comments",
    ),
    V(
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n",
        events(msg("first event", id="1"), msg("second event"), unterminated=True),
        id="spec-test-stream-without-final-blank-line",
    ),
    V(
        b"data\n\ndata\ndata\n\ndata:",
        events(msg(""), msg("\n"), unterminated=True),
        id="spec-empty-data-fields-then-unterminated-tail",
    ),
    V(
        b"data:test\n\ndata: test\n\n",
        events(msg("test"), msg("test")),
        id="spec-one-leading-space-is-optional",
    ),
    V(
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
        events(
            msg("73857293", event="add"), msg("2153", event="remove"), msg("113411", event="add")
        ),
        id="spec-event-types",
    ),
]

FIELD_PARSING = [
    V(b": hello\n: world\n", events(), id="comment-only-stream"),
    V(b":\ndata: x\n\n", events(msg("x")), id="comment-lone-colon"),
    V(b"data: a\n: c\ndata: b\n\n", events(msg("a\nb")), id="comment-between-data-lines"),
    V(b"data: a: b:c\n\n", events(msg("a: b:c")), id="value-keeps-later-colons"),
    V(b"data:  x\n\n", events(msg(" x")), id="value-only-one-space-removed"),
    V(b"data:\tx\n\n", events(msg("\tx")), id="value-tab-is-not-stripped"),
    V(b"data: x \n\n", events(msg("x ")), id="value-trailing-space-kept"),
    V(b"data: a\x00b\n\n", events(msg("a\x00b")), id="value-nul-in-data-kept"),
    V(b"data : x\ndata: y\n\n", events(msg("y")), id="name-with-trailing-space-is-unknown"),
    V(b" data: x\n\n", events(), id="name-with-leading-space-is-unknown"),
    V(
        b"Data: x\nDATA: y\nEvent: e\nID: 1\nRetry: 5\ndata: z\n\n",
        events(msg("z")),
        id="names-are-case-sensitive",
    ),
    V(b"foo: bar\ndata: x\nbaz\n\n", events(msg("x")), id="unknown-fields-ignored"),
    V(b"data\n\n", events(msg("")), id="colonless-data-is-empty-value"),
    V(b"data\ndata\n\n", events(msg("\n")), id="colonless-data-twice"),
    V(b"event: a\nevent\ndata: x\n\n", events(msg("x")), id="colonless-event-clears-type"),
    V(b"data:\n\n", events(msg("")), id="data-empty-value"),
    V(b"data: a\ndata:\ndata: b\n\n", events(msg("a\n\nb")), id="data-lines-joined-by-lf"),
    V(b"data: a\ndata\n\n", events(msg("a\n")), id="data-only-one-trailing-lf-removed"),
    V(b"\n\n\r\n\r\r", events(), id="blank-lines-without-data-dispatch-nothing"),
    V(b"\n\ndata: x\n\n", events(msg("x")), id="leading-blank-lines"),
]

EVENT_TYPE = [
    V(b"event: add\ndata: 1\n\n", events(msg("1", event="add")), id="event-type-set"),
    V(
        b"event: a\ndata: 1\n\ndata: 2\n\n",
        events(msg("1", event="a"), msg("2")),
        id="event-type-reset-after-dispatch",
    ),
    V(b"event: a\n\ndata: 2\n\n", events(msg("2")), id="event-type-reset-by-empty-dispatch"),
    V(b"event: a\nevent: b\ndata: x\n\n", events(msg("x", event="b")), id="event-type-last-wins"),
    V(b"event:\ndata: x\n\n", events(msg("x")), id="event-type-empty-means-message"),
    V(b"event:  a \ndata: x\n\n", events(msg("x", event=" a ")), id="event-type-keeps-spaces"),
    V(
        b"data: x\nevent: late\n\n",
        events(msg("x", event="late")),
        id="event-type-after-data-in-same-block",
    ),
]

EVENT_ID = [
    V(
        b"id: 1\ndata: a\n\ndata: b\n\n",
        events(msg("a", id="1"), msg("b", id="1"), last_event_id="1"),
        id="id-persists-across-events",
    ),
    V(
        b"id: 1\ndata: a\n\nid\ndata: b\n\n",
        events(msg("a", id="1"), msg("b")),
        id="id-colonless-clears",
    ),
    V(b"id: 1\n\nid:\n\n", events(last_event_id=""), id="id-empty-value-clears"),
    V(b"id: 7\n\n", events(last_event_id="7"), id="id-only-block-sets-last-event-id"),
    V(
        b"id: 7\n\ndata: x\n\n",
        events(msg("x", id="7"), last_event_id="7"),
        id="id-from-block-without-data-applies-later",
    ),
    V(
        b"data: a\nid: 3\n\n",
        events(msg("a", id="3"), last_event_id="3"),
        id="id-after-data-in-same-block",
    ),
    V(
        b"data: a\n\nid: 2\n",
        events(msg("a"), unterminated=True),
        id="id-takes-effect-only-at-dispatch",
    ),
    V(
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        events(msg("a", id="1"), msg("b", id="1"), last_event_id="1"),
        id="id-with-nul-ignored",
    ),
    V(b"id: 1\n\nid: \x00\n\n", events(last_event_id="1"), id="id-only-nul-ignored"),
    V(
        "id: a:b é\ndata: x\n\n".encode(),
        events(msg("x", id="a:b é"), last_event_id="a:b é"),
        id="id-keeps-colons-and-unicode",
    ),
]

RETRY_INVALID = {
    "leading-space": b"  1000",
    "plus-sign": b" +1",
    "minus-sign": b" -1",
    "underscore": b" 1_0",
    "empty": b"",
    "only-space": b" ",
    "trailing-letter": b" 10a",
    "trailing-space": b" 10 ",
    "decimal-point": b" 1.5",
    "exponent": b" 1e3",
    "hex": b" 0x10",
    "arabic-indic-digits": " ١٢".encode(),
    "fullwidth-digits": " \uff11\uff12".encode(),
    "superscript-digit": " ²".encode(),
}

RETRY = [
    V(b"retry: 1000\n\n", events(retry=1000), id="retry-valid"),
    V(b"retry:1000\n\n", events(retry=1000), id="retry-valid-without-space"),
    V(b"retry: 0\n\n", events(retry=0), id="retry-zero"),
    V(b"retry: 0010\n\n", events(retry=10), id="retry-leading-zeros"),
    V(b"retry: 5\nretry: 7\n\n", events(retry=7), id="retry-last-valid-wins"),
    V(b"retry: 5\nretry: x\n\n", events(retry=5), id="retry-invalid-keeps-previous"),
    V(b"retry: 5\n", events(retry=5, unterminated=True), id="retry-applies-without-dispatch"),
    V(b"retry: 5", events(unterminated=True), id="retry-in-partial-line-ignored"),
    V(b"retry\n\n", events(), id="retry-colonless-ignored"),
    *(
        V(b"retry:" + value + b"\n\n", events(), id=f"retry-invalid-{name}")
        for name, value in RETRY_INVALID.items()
    ),
]

LINE_ENDINGS = [
    V(
        b"event: e\r\ndata: a\r\ndata: b\r\n\r\n",
        events(msg("a\nb", event="e")),
        id="crlf-everywhere",
    ),
    V(b"data: a\r\n\r\ndata: b\r\n\r\n", events(msg("a"), msg("b")), id="crlf-pairs-not-doubled"),
    V(b"data: a\rdata: b\r\rdata: c\r\r", events(msg("a\nb"), msg("c")), id="cr-only"),
    V(
        b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\n\r",
        events(msg("a\nb\nc"), msg("d")),
        id="mixed-line-endings",
    ),
    V(b"data: a\n\rdata: b\n\n", events(msg("a"), msg("b")), id="lf-cr-is-two-line-ends"),
    V(b"data: a\r\r\n", events(msg("a")), id="cr-then-crlf"),
    V(b"data: a\r\n\n", events(msg("a")), id="crlf-then-lf"),
    V(b"data: a\r\r", events(msg("a")), id="trailing-cr-terminates-stream"),
    V(b"data: a\r", events(unterminated=True), id="trailing-single-cr-leaves-event-open"),
    V(
        "data: a\x0bb\x0cc\x85d\u2028e\u2029f\x1cg\n\n".encode(),
        events(msg("a\x0bb\x0cc\x85d\u2028e\u2029f\x1cg")),
        id="other-unicode-line-breaks-are-content",
    ),
]

BOM = [
    V(b"\xef\xbb\xbfdata: x\n\n", events(msg("x")), id="bom-dropped"),
    V(b"\xef\xbb\xbf: c\ndata: x\n\n", events(msg("x")), id="bom-before-comment"),
    V(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", events(), id="bom-twice-second-is-content"),
    V(b"data: a\n\n\xef\xbb\xbfdata: b\n\n", events(msg("a")), id="bom-only-at-stream-start"),
    V(b"\xef\xbb\xbfdata: \xef\xbb\xbfx\n\n", events(msg("\ufeffx")), id="bom-in-value-kept"),
    V(b"\xef\xbb\xbf", events(), id="bom-alone"),
    V(b"\xef\xbbdata: x\n\n", events(), id="bom-truncated-is-replacement-char"),
]

UTF8 = [
    V(b"data: \xff\n\n", events(msg("\ufffd")), id="utf8-invalid-byte"),
    V(b"data: a\x80b\n\n", events(msg("a\ufffdb")), id="utf8-lone-continuation-byte"),
    V(b"data: \xe2\x82\n\n", events(msg("\ufffd")), id="utf8-truncated-3-byte-is-one-fffd"),
    V(b"data: \xf0\x9f\x98x\n\n", events(msg("\ufffdx")), id="utf8-truncated-4-byte-then-ascii"),
    V(b"data: \xc0\xaf\n\n", events(msg("\ufffd" * 2)), id="utf8-overlong-2-byte"),
    V(b"data: \xe0\x80\xaf\n\n", events(msg("\ufffd" * 3)), id="utf8-overlong-3-byte"),
    V(b"data: \xed\xa0\x80\n\n", events(msg("\ufffd" * 3)), id="utf8-surrogate"),
    V(b"data: \xf4\x90\x80\x80\n\n", events(msg("\ufffd" * 4)), id="utf8-above-u10ffff"),
    V(b"data: \xe2\r\r", events(msg("\ufffd")), id="utf8-truncated-before-cr"),
    V(b"d\xffata: x\n\n", events(), id="utf8-invalid-in-field-name"),
    V(
        b"data: x\n\n\xe2\x82",
        events(msg("x"), unterminated=True),
        id="utf8-truncated-at-end-of-stream",
    ),
    V("data: café\n\n".encode(), events(msg("café")), id="utf8-2-byte"),
    V("data: 5 €\n\n".encode(), events(msg("5 €")), id="utf8-3-byte"),
    V("data: 😀!\n\n".encode(), events(msg("😀!")), id="utf8-4-byte"),
    V(
        "event: ü€😀\nid: ✓\ndata: ß\ndata: 😀€\n\n".encode(),
        events(msg("ß\n😀€", id="✓", event="ü€😀"), last_event_id="✓"),
        id="utf8-multibyte-in-every-field",
    ),
]

UNTERMINATED = [
    V(b"", events(), id="empty-stream"),
    V(b"data: x\n\n", events(msg("x")), id="complete-stream-is-terminated"),
    V(b"data: x\n\n\n\n", events(msg("x")), id="extra-blank-lines-are-terminated"),
    V(b"data: x", events(unterminated=True), id="unterminated-partial-line"),
    V(b"data: a\n\ndata: b", events(msg("a"), unterminated=True), id="unterminated-after-events"),
    V(b"data: x\n", events(unterminated=True), id="unterminated-field-line-without-blank"),
    V(b"foo\n", events(unterminated=True), id="unterminated-unknown-field-line"),
    V(b"id: 1\n", events(unterminated=True), id="unterminated-id-line"),
    V(b"data: a\n: c\n", events(unterminated=True), id="unterminated-comment-after-field"),
    V(b"data: a\n\n: keep", events(msg("a"), unterminated=True), id="unterminated-partial-comment"),
    V(b"data: a\n\n: keepalive\n", events(msg("a")), id="trailing-comment-is-terminated"),
    V(b": keepalive\n", events(), id="comment-only-is-terminated"),
]

VECTORS = [
    *SPEC_EXAMPLES,
    *FIELD_PARSING,
    *EVENT_TYPE,
    *EVENT_ID,
    *RETRY,
    *LINE_ENDINGS,
    *BOM,
    *UTF8,
    *UNTERMINATED,
]


@pytest.mark.parametrize(("stream", "expected"), VECTORS)
def test_decoder_fed_whole(stream: bytes, expected: Outcome) -> None:
    assert decode_at(stream, []) == expected


@pytest.mark.parametrize(("stream", "expected"), VECTORS)
def test_decoder_fed_one_byte_at_a_time(stream: bytes, expected: Outcome) -> None:
    assert decode_at(stream, range(len(stream))) == expected


@pytest.mark.parametrize(("stream", "expected"), VECTORS)
def test_decoder_fed_with_one_cut_anywhere(stream: bytes, expected: Outcome) -> None:
    for cut in range(len(stream) + 1):
        assert decode_at(stream, [cut]) == expected, f"cut at {cut}"


@pytest.mark.parametrize(("stream", "expected"), VECTORS)
@settings(DETERMINISTIC, max_examples=10)
@given(data=st.data())
def test_decoder_fed_at_random_cuts(stream: bytes, expected: Outcome, data: st.DataObject) -> None:
    cuts = data.draw(cut_points(len(stream)), label="cuts")
    assert decode_at(stream, cuts) == expected


@pytest.mark.parametrize(
    ("stream", "cuts", "expected"),
    [
        V(b"data: a\r\n\r\n", [8], events(msg("a")), id="crlf-split-between-cr-and-lf"),
        V(
            b"data: a\r\n\r\n",
            [8, 8, 8, 10],
            events(msg("a")),
            id="empty-feeds-between-cr-and-lf",
        ),
        V(b"data: a\r\rdata: b\r\r", [8], events(msg("a"), msg("b")), id="cr-at-feed-end-then-cr"),
        V(
            "data: a\ré\n\n".encode(),
            [8, 9],
            events(msg("a")),
            id="cr-then-split-char-is-not-swallowed",
        ),
        V(b"\xef\xbb\xbfdata: x\n\n", [1], events(msg("x")), id="bom-split-after-byte-1"),
        V(b"\xef\xbb\xbfdata: x\n\n", [2], events(msg("x")), id="bom-split-after-byte-2"),
        V(b"\xef\xbb\xbfdata: x\n\n", [1, 2, 3], events(msg("x")), id="bom-split-into-bytes"),
        V(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", [3], events(), id="bom-twice-split-between"),
        V("data: €\n\n".encode(), [7, 8], events(msg("€")), id="euro-split-into-three-feeds"),
    ],
)
def test_decoder_explicit_cuts(stream: bytes, cuts: list[int], expected: Outcome) -> None:
    assert decode_at(stream, cuts) == expected


def test_decoder_dispatches_at_cr_without_waiting_for_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\r") == [msg("a")]
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []  # the CR's LF, not another blank line
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\n\r") == [msg("b")]
    assert decoder.close() == []
    assert decoder.unterminated is False


def test_decoder_state_is_visible_before_close() -> None:
    decoder = SSEDecoder()
    assert (decoder.retry, decoder.last_event_id, decoder.unterminated) == (None, "", False)
    assert decoder.feed(b"retry: 5\nid: 3\n\ndata: x") == []
    assert (decoder.retry, decoder.last_event_id, decoder.unterminated) == (5, "3", False)
    assert decoder.close() == []
    assert decoder.unterminated is True


def test_decoder_feed_after_close_raises() -> None:
    decoder = SSEDecoder()
    decoder.close()
    with pytest.raises(DecoderClosedError, match=r"after close\(\)"):
        decoder.feed(b"data: x\n\n")
    assert issubclass(DecoderClosedError, ValueError)


def test_decoder_close_twice_returns_nothing() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: x")
    assert decoder.close() == []
    assert decoder.close() == []
    assert decoder.unterminated is True


def test_event_defaults_frozen_and_slotted() -> None:
    event = Event()
    assert event == Event(event="message", data="", id="")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "x"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_decoder_retry_beyond_python_int_digit_limit() -> None:
    # int() refuses strings over sys.get_int_max_str_digits() (4300); the spec has no such limit.
    stream = b"retry: " + b"9" * 5000 + b"\n\n"
    expected = events(retry=10**5000 - 1)
    assert decode_at(stream, []) == expected
    assert decode_at(stream, range(len(stream))) == expected


def test_decoder_huge_single_line_in_16_byte_pieces() -> None:
    # Quadratic buffering would make this (and so the suite) visibly slow; no timing asserted.
    payload = "€" * ((1 << 20) // 3)
    stream = b"data: " + payload.encode() + b"\n\n"
    outcome = decode_at(stream, range(16, len(stream), 16))
    assert outcome == events(msg(payload))


# --- properties -------------------------------------------------------------------------------

TEXT = st.characters(codec="utf-8", exclude_characters="\r\n")
ID_TEXT = st.characters(codec="utf-8", exclude_characters="\r\n\x00")
IGNORED_LINES = ["foo: bar", "Data: x", "Event: x", "id: a\x00b", "retry: 1x", "retry"]


@st.composite
def field_line(draw: st.DrawFn, name: str, value: str) -> str:
    """``name: value``, or ``name:value`` when that means the same, or bare ``name`` for ""."""
    forms = [f"{name}: {value}"]
    if not value.startswith(" "):
        forms.append(f"{name}:{value}")
    if not value:
        forms.append(name)
    return draw(st.sampled_from(forms))


@st.composite
def encoded_streams(draw: st.DrawFn) -> tuple[bytes, Outcome]:
    """A well-formed stream and the outcome it must decode to."""
    out: list[str] = ["\ufeff"] if draw(st.booleans()) else []
    expected: list[Event] = []
    last_id = ""
    retry: int | None = None

    def emit(line: str) -> None:
        endings = ["\n", "\r", "\r\n"]
        if not line and out and out[-1].endswith("\r"):
            endings.remove("\n")  # it would be read as the second half of the CR before it
        out.append(line + draw(st.sampled_from(endings)))

    for _ in range(draw(st.integers(0, 5))):
        data = draw(st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=20))
        lines = [draw(field_line("data", part)) for part in data.split("\n")]
        extra = [":" + comment for comment in draw(st.lists(st.text(TEXT, max_size=8), max_size=2))]
        name = draw(st.none() | st.text(TEXT, max_size=8))
        if name is not None:
            extra.append(draw(field_line("event", name)))
        event_id = draw(st.none() | st.text(ID_TEXT, max_size=8))
        if event_id is not None:
            extra.append(draw(field_line("id", event_id)))
            last_id = event_id
        new_retry = draw(st.none() | st.integers(0, 10**12))
        if new_retry is not None:
            extra.append(f"retry: {new_retry}")
            retry = new_retry
        extra += draw(st.lists(st.sampled_from(IGNORED_LINES), max_size=2))
        for line in extra:  # data lines keep their order; the rest go anywhere among them
            lines.insert(draw(st.integers(0, len(lines))), line)
        for line in lines:
            emit(line)
        for _ in range(draw(st.integers(1, 2))):
            emit("")
        expected.append(Event(name or "message", data, last_id))
    stream = "".join(out).encode()
    return stream, Outcome(tuple(expected), retry, last_id, False)


@settings(DETERMINISTIC, max_examples=120)
@given(case=encoded_streams(), data=st.data())
def test_decoder_round_trips_random_streams(
    case: tuple[bytes, Outcome], data: st.DataObject
) -> None:
    stream, expected = case
    assert decode_at(stream, data.draw(cut_points(len(stream)), label="cuts")) == expected


UTF8_BYTES = [b"a", b" ", b"\x80", b"\xa0", b"\xbf", b"\xc3", b"\xe2", b"\x82", b"\xac"]
UTF8_BYTES += [b"\xed", b"\xf0", b"\x9f", b"\xf4", b"\xff", b"\xef\xbb\xbf", "é😀".encode()]


@settings(DETERMINISTIC, max_examples=200)
@given(
    payload=st.lists(st.sampled_from(UTF8_BYTES), max_size=12).map(b"".join),
    data=st.data(),
)
def test_decoder_utf8_replacement_independent_of_cuts(payload: bytes, data: st.DataObject) -> None:
    # CPython's "replace" handler emits one U+FFFD per maximal subpart, as WHATWG's UTF-8 decode.
    stream = b"data: " + payload + b"\n\n"
    expected = events(msg(payload.decode("utf-8", errors="replace")))
    assert decode_at(stream, data.draw(cut_points(len(stream)), label="cuts")) == expected
