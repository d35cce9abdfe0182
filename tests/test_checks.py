"""Transcripts and checks on hand-made exchanges: each check must be able to fail."""

from __future__ import annotations

import json

import pytest

from streamproof.fake_providers import Journal, Scenario
from streamproof.fake_providers.chat import deltas
from streamproof.harness import checks
from streamproof.harness.sut import Exchange
from streamproof.harness.transcript import Arrival, Outcome, Transcript, Transport


def _chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = "{}" if content is None else json.dumps({"content": content}, ensure_ascii=False)
    reason = "null" if finish is None else f'"{finish}"'
    choice = f'{{"index": 0, "delta": {delta}, "finish_reason": {reason}}}'
    return f'data: {{"choices": [{choice}]}}\n\n'.encode()


def _transcript(
    *bodies: bytes, status: int = 200, transport: Transport = Transport.EOF
) -> Transcript:
    t = Transcript(request={}, sent_at=0.0, status=status, transport=transport, ended_at=1.0)
    t.headers = {"content-type": "text/event-stream"}
    t.chunks = [Arrival(0.1 * n, body) for n, body in enumerate(bodies, start=1)]
    return t


ERROR = b'data: {"error": {"message": "upstream reset", "type": "upstream_error"}}\n\n'
DONE = b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("bodies", "transport", "outcome"),
    [
        pytest.param((_chunk("a"), DONE), Transport.EOF, Outcome.DONE, id="done"),
        pytest.param((_chunk("a"), ERROR), Transport.EOF, Outcome.ERROR, id="error-event"),
        pytest.param((_chunk("a"),), Transport.EOF, Outcome.TRUNCATED, id="truncated"),
        pytest.param((_chunk("a"),), Transport.RESET, Outcome.RESET, id="reset"),
        pytest.param((_chunk("a"),), Transport.TIMED_OUT, Outcome.TIMED_OUT, id="timed-out"),
        pytest.param((_chunk("a"),), Transport.LEFT, Outcome.LEFT, id="left"),
    ],
)
def test_transcript_outcome(
    bodies: tuple[bytes, ...], transport: Transport, outcome: Outcome
) -> None:
    assert _transcript(*bodies, transport=transport).outcome is outcome


def test_transcript_http_error_outcome() -> None:
    assert _transcript(b'{"error": {"message": "x"}}', status=502).outcome is Outcome.HTTP_ERROR


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'data: {"error": {"message": "x"}}\n\n', id="error-object"),
        pytest.param(b'data: {"object": "error", "message": "x"}\n\n', id="object-error"),
        pytest.param(b"event: error\ndata: overloaded\n\n", id="event-error"),
        pytest.param(_chunk(finish="error"), id="finish-reason-error"),
    ],
)
def test_transcript_recognises_every_error_shape(payload: bytes) -> None:
    assert len(_transcript(_chunk("a"), payload).error_events) == 1


def test_transcript_content_is_assembled_across_reads() -> None:
    body = _chunk("Hé") + _chunk("llo") + DONE
    split = body.index("é".encode()) + 1  # inside the two bytes of é
    t = _transcript(body[:split], body[split:])
    assert t.content() == "Héllo"
    assert t.done_count == 1


def _exchange(t: Transcript, chunks: int = 4) -> Exchange:
    return Exchange(Scenario(chunks=chunks), t, Journal("x"))


def test_content_intact_names_a_replay() -> None:
    parts = deltas(4)
    body = b"".join(_chunk(p) for p in parts[:2] + parts) + DONE
    finding = checks.content_intact(_exchange(_transcript(body)))
    assert not finding.ok
    assert "replayed from the beginning" in finding.observed


def test_content_intact_names_a_loss() -> None:
    body = b"".join(_chunk(p) for p in deltas(3)) + DONE
    finding = checks.content_intact(_exchange(_transcript(body)))
    assert not finding.ok
    assert "lost the last" in finding.observed


def test_content_intact_holds_for_the_whole_answer() -> None:
    body = b"".join(_chunk(p) for p in deltas(4)) + DONE
    assert checks.content_intact(_exchange(_transcript(body))).ok


@pytest.mark.parametrize(
    ("bodies", "ok"),
    [
        pytest.param((_chunk("a"), ERROR), True, id="one-error-last"),
        pytest.param((_chunk("a"), ERROR, ERROR), False, id="two-errors"),
        pytest.param((_chunk("a"), ERROR, _chunk("b")), False, id="content-after-error"),
        pytest.param((_chunk("a"),), False, id="no-error"),
    ],
)
def test_single_error_event(bodies: tuple[bytes, ...], ok: bool) -> None:
    assert checks.single_error_event(_transcript(*bodies)).ok is ok


@pytest.mark.parametrize(
    ("bodies", "transport", "ok"),
    [
        pytest.param((_chunk("a"), ERROR), Transport.EOF, True, id="error-only"),
        # The client saw the error: the [DONE] after it is a SHOULD (no_done_after_error).
        pytest.param((_chunk("a"), ERROR, DONE), Transport.EOF, True, id="done-after-error"),
        pytest.param((_chunk("a"), DONE), Transport.EOF, False, id="done-without-error"),
        pytest.param((_chunk("a"),), Transport.EOF, False, id="clean-end-without-error"),
        pytest.param((_chunk("a"),), Transport.RESET, True, id="aborted-transfer"),
        pytest.param((_chunk("a"), b"data: {oops\n\n"), Transport.EOF, True, id="unreadable"),
        pytest.param((_chunk("a"), _chunk(finish="stop")), Transport.EOF, False, id="invented"),
        pytest.param((_chunk("a", finish="error"), DONE), Transport.EOF, True, id="finish-error"),
    ],
)
def test_not_dressed_up(bodies: tuple[bytes, ...], transport: Transport, ok: bool) -> None:
    x = Exchange(Scenario(chunks=4), _transcript(*bodies, transport=transport), Journal("x"))
    finding = checks.not_dressed_up(x)
    assert finding.ok is ok
    assert finding.harm


@pytest.mark.parametrize(
    ("bodies", "ok"),
    [
        pytest.param((_chunk("a"), ERROR), True, id="error-only"),
        pytest.param((_chunk("a"), ERROR, DONE), False, id="done-after-error"),
    ],
)
def test_no_done_after_error(bodies: tuple[bytes, ...], ok: bool) -> None:
    assert checks.no_done_after_error(_transcript(*bodies)).ok is ok


@pytest.mark.parametrize(
    ("bodies", "ok"),
    [
        pytest.param((_chunk("a"), DONE), True, id="single-done"),
        pytest.param((_chunk("a"), DONE, DONE), False, id="two-done"),
        pytest.param((_chunk("a"), DONE, _chunk("b")), False, id="event-after-done"),
        pytest.param((_chunk("a"),), False, id="no-done"),
    ],
)
def test_ends_with_single_done(bodies: tuple[bytes, ...], ok: bool) -> None:
    assert checks.ends_with_single_done(_transcript(*bodies)).ok is ok


def test_payloads_are_json_objects_catches_garbage() -> None:
    t = _transcript(_chunk("a"), b"data: {not json\n\n", b"data: [1, 2]\n\n", DONE)
    finding = checks.payloads_are_json_objects(t)
    assert not finding.ok
    assert finding.observed.startswith("2 of 4")


def test_http_error_wants_a_json_error_body() -> None:
    assert checks.http_error(_transcript(b'{"error": {"message": "x"}}', status=502), {502}).ok
    assert not checks.http_error(_transcript(b"Bad Gateway", status=502), {502}).ok
    assert not checks.http_error(_transcript(b'{"error": {"message": "x"}}', status=200), {502}).ok


@pytest.mark.parametrize(
    ("status", "wanted", "should"),
    [
        (408, {502, 503, 504}, True),  # the SDKs retry a 408 as they retry a 5xx
        (400, {502, 503, 504}, False),  # a 400 they raise at once: the request looks wrong
        (500, {502, 503, 504}, True),
        (408, {400}, True),  # a 4xx where a 4xx is meant: the right class
        (408, {200}, False),
    ],
)
def test_http_error_which_wrong_status_a_client_survives(
    status: int, wanted: set[int], should: bool
) -> None:
    finding = checks.http_error(_transcript(b'{"error": {"message": "x"}}', status=status), wanted)
    assert (finding.ok, finding.should) == (False, should)


def test_ended_within_fails_when_the_client_gave_up() -> None:
    t = _transcript(_chunk("a"), transport=Transport.TIMED_OUT)
    assert not checks.ended_within(t, 0.0, 10.0).ok
    assert checks.ended_within(_transcript(_chunk("a"), ERROR), 0.5, 0.6).ok
    assert not checks.ended_within(_transcript(_chunk("a"), ERROR), 0.5, 0.4).ok


@pytest.mark.parametrize(
    ("parts", "tail", "axes"),
    [
        pytest.param(deltas(4), DONE, ("whole", "done"), id="whole-done"),
        pytest.param(deltas(2), ERROR, ("damaged", "error"), id="short-without-upstream"),
        pytest.param(deltas(2) + deltas(2), ERROR, ("damaged", "error"), id="replayed"),
        pytest.param([], ERROR, ("none", "error"), id="nothing"),
    ],
)
def test_exchange_axes(parts: list[str], tail: bytes, axes: tuple[str, str]) -> None:
    body = b"".join(_chunk(p) for p in parts) + tail
    assert _exchange(_transcript(body)).axes() == axes
