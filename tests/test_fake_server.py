"""The fake provider over real sockets on 127.0.0.1, driven by a plain httpx client.

One provider serves the whole module (its port is ephemeral); each test uses its own request
id, so journals never mix. The journal is written on the server's thread after each write, so
a test that reads it waits on its condition variable (`wait_for`) rather than on time.

What TCP does not promise is not asserted: the client may receive several writes in one read,
so split and chopped bodies are compared joined, and write boundaries are read from the
journal, which records each write as the server made it.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streamproof.fake_providers import Attempt, FakeProvider, Scenario, chat, fingerprint
from streamproof.fake_providers.chat import deltas
from streamproof.fake_providers.faults import SplitUtf8
from streamproof.fake_providers.journal import KEPT_BYTES, LABEL_PATTERN, parse_route
from streamproof.fake_providers.plan import Plan
from streamproof.harness.sse import Event, SSEDecoder

TIMEOUT = 5.0  # nothing here should come near it; it only stops a broken test from hanging
TIMING_TOLERANCE = 0.005  # seconds a timer may fire early, as measured by the journal's clock


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(stall_limit=TIMEOUT) as provider:
        yield provider


@pytest.fixture
def client(provider: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.base_url, trust_env=False, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def impatient_client(provider: FakeProvider) -> Iterator[httpx.Client]:
    """A client that gives up on a silent server after 0.2 s."""
    timeout = httpx.Timeout(TIMEOUT, read=0.2)
    with httpx.Client(base_url=provider.base_url, trust_env=False, timeout=timeout) as client:
        yield client


def chat_request(nonce: str, *tokens: str, stream: bool = True, **extra: Any) -> dict[str, Any]:
    model = ".".join(["streamproof", f"id-{nonce}", *tokens])
    messages = [{"role": "user", "content": "Say hello."}]
    return {"model": model, "messages": messages, "stream": stream, **extra}


def clean_plan(request: dict[str, Any], attempt: int = 1) -> Plan:
    """The well-behaved answer the provider builds for `request` on this attempt."""
    scenario = Scenario.parse(request["model"])
    return chat.answer(request, scenario, f"chatcmpl-{scenario.nonce}-{attempt}")


def planned(request: dict[str, Any], attempt: int = 1) -> Plan:
    """What the provider puts on the wire for `request` on this attempt, faults included."""
    plan = clean_plan(request, attempt)
    for fault in Scenario.parse(request["model"]).faults_for(attempt):
        plan = fault.apply(plan)
    return plan


def decode(data: bytes) -> list[Event]:
    decoder = SSEDecoder()
    return decoder.feed(data) + decoder.close()


def finished(provider: FakeProvider, nonce: str, count: int = 1) -> list[Attempt]:
    """The journal's attempts once `count` of them have ended."""
    journal = provider.journal(nonce)
    done = journal.wait_for(
        lambda j: len(j.attempts) >= count and all(a.ending for a in j.attempts), TIMEOUT
    )
    assert done, journal.attempts
    return journal.attempts


def read_until_error(response: httpx.Response) -> tuple[bytes, httpx.TransportError | None]:
    received = bytearray()
    try:
        for piece in response.iter_raw():
            received += piece
    except httpx.TransportError as exc:
        return bytes(received), exc
    return bytes(received), None


# --- well-behaved answers ----------------------------------------------------------------


def test_stream_clean_sends_role_contents_finish_and_done(provider, client):
    request = chat_request("clean", "chunks-5")
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content == clean_plan(request).body
    *chunks, done = decode(response.content)
    assert done.data == "[DONE]"
    payloads = [json.loads(event.data) for event in chunks]
    assert [p["id"] for p in payloads] == ["chatcmpl-clean-1"] * 7
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"}
    assert {p["model"] for p in payloads} == {request["model"]}
    choices = [p["choices"][0] for p in payloads]
    assert choices[0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["delta"]["content"] for c in choices[1:-1]] == deltas(5)
    assert [c["finish_reason"] for c in choices] == [None] * 6 + ["stop"]
    assert choices[-1]["delta"] == {}


def test_stream_clean_is_journaled_as_one_clean_attempt(provider, client):
    request = chat_request("cleanjournal", "chunks-5")
    response = client.post("/chat/completions", json=request)
    (attempt,) = finished(provider, "cleanjournal")
    assert attempt.number == 1
    assert (attempt.method, attempt.path) == ("POST", "/v1/chat/completions")
    assert attempt.route == ""
    assert attempt.body == request
    assert attempt.faults == []
    assert attempt.status == 200
    assert attempt.ending == "clean"
    assert attempt.bytes_written == len(response.content)
    assert attempt.events_written == 8
    assert attempt.content_written == "".join(deltas(5))
    assert attempt.peer_closed_at is None


def test_stream_include_usage_adds_usage_chunk_before_done(provider, client):
    request = chat_request("usage", "chunks-3", stream_options={"include_usage": True})
    response = client.post("/chat/completions", json=request)
    assert response.content == clean_plan(request).body
    *_, usage_event, done = decode(response.content)
    assert done.data == "[DONE]"
    usage_chunk = json.loads(usage_event.data)
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] > 0
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    whole = client.post(
        "/chat/completions", json=chat_request("usagewhole", "chunks-3", stream=False)
    )
    assert whole.json()["usage"] == usage


@pytest.mark.parametrize("fault", ["reset_after-3", "stall_after-2", "cut_inside-1", "malformed-2"])
def test_a_fault_after_an_event_leaves_a_whole_answer_whole_and_does_not_fire(
    provider, client, fault
):
    """A proxy that asks for a whole answer (stream false) when its client streams, gets
    one: the fault at an event boundary has no event to break, and the journal says so."""
    nonce = f"wholefault{fault.replace('-', '').replace('_', '')}"
    response = client.post(
        "/chat/completions", json=chat_request(nonce, "chunks-5", fault, stream=False)
    )
    assert response.json()["choices"][0]["message"]["content"] == "".join(deltas(5))
    (attempt,) = finished(provider, nonce)
    assert attempt.faults == []
    assert attempt.ending == "clean"


def test_whole_answer_is_a_chat_completion_with_content_and_usage(provider, client):
    request = chat_request("whole", "chunks-5", stream=False)
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    document = response.json()
    assert document["object"] == "chat.completion"
    assert document["id"] == "chatcmpl-whole-1"
    (choice,) = document["choices"]
    assert choice["message"] == {"role": "assistant", "content": "".join(deltas(5))}
    assert choice["finish_reason"] == "stop"
    usage = document["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    (attempt,) = finished(provider, "whole")
    assert attempt.ending == "clean"
    assert attempt.content_written == "".join(deltas(5))


def test_models_lists_streamproof(client):
    response = client.get("/models")
    assert response.status_code == 200
    document = response.json()
    assert document["object"] == "list"
    assert [model["id"] for model in document["data"]] == ["streamproof"]


# --- requests it refuses -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/nothing", 404, id="unknown-path"),
        pytest.param("POST", "/completions", 404, id="legacy-completions"),
        pytest.param("GET", "/chat/completions", 405, id="get-chat-completions"),
    ],
)
def test_unrouted_request_gets_json_error(client, method, path, status):
    response = client.request(method, path)
    assert response.status_code == status
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"{not json", "Expecting property name", id="invalid-json"),
        pytest.param(b"", "Expecting value", id="empty-body"),
        pytest.param(b'{"model": "\xff"}', "can't decode byte 0xff", id="not-utf8"),
        pytest.param(b"[1, 2]", "must be a JSON object", id="json-array"),
        pytest.param(b'{"model": "streamproof.chop-0"}', "at least 1 byte", id="chop-0"),
        pytest.param(b'{"model": "streamproof.bogus"}', "accepted: id, ", id="unknown-token"),
    ],
)
def test_bad_request_gets_400_json_error_naming_the_problem(client, content, message):
    headers = {"content-type": "application/json"}
    response = client.post("/chat/completions", content=content, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert message in error["message"]


# --- labelled routes: one provider standing in for several ------------------------------


def labelled(provider: FakeProvider, label: str, endpoint: str = "chat/completions") -> str:
    return f"{provider.url_for(label)}/{endpoint}"


@pytest.mark.parametrize("label", ["b", "kimi", "nim-2", "a_b", "0", "x" * 32])
def test_url_for_gives_the_labelled_base_url(provider, label):
    assert provider.url_for(label) == f"http://127.0.0.1:{provider.port}/{label}/v1"


def test_url_for_the_empty_label_is_the_base_url(provider):
    assert provider.url_for("") == provider.base_url


@pytest.mark.parametrize(
    "label",
    [
        pytest.param("B", id="upper-case"),
        pytest.param("-b", id="leading-dash"),
        pytest.param("_b", id="leading-underscore"),
        pytest.param("b/c", id="slash"),
        pytest.param("b.c", id="dot"),
        pytest.param("x" * 33, id="33-characters"),
        pytest.param("b\n", id="newline"),
    ],
)
def test_url_for_rejects_a_bad_label_naming_the_pattern(provider, label):
    with pytest.raises(ValueError, match=re.escape(LABEL_PATTERN)):
        provider.url_for(label)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        pytest.param("/v1/chat/completions", ("", "chat/completions"), id="unlabelled"),
        pytest.param("/v1/models/", ("", "models"), id="unlabelled-models-slash"),
        pytest.param("/b/v1/chat/completions", ("b", "chat/completions"), id="labelled"),
        pytest.param("/nim-2/v1/models", ("nim-2", "models"), id="labelled-models"),
        pytest.param("/v1/v1/chat/completions", ("v1", "chat/completions"), id="label-v1"),
        pytest.param("/B/v1/chat/completions", None, id="upper-case-label"),
        pytest.param("/a/b/v1/chat/completions", None, id="two-labels"),
        pytest.param("/b/v2/chat/completions", None, id="not-v1"),
        pytest.param("/b/chat/completions", None, id="no-v1"),
        pytest.param("/v1/completions", None, id="legacy-completions"),
        pytest.param("//v1/chat/completions", None, id="empty-label"),
    ],
)
def test_parse_route_splits_label_and_endpoint(path, route):
    assert parse_route(path) == route


def test_attempt_route_is_derived_from_its_path():
    def attempt(path: str) -> Attempt:
        return Attempt(number=1, received_at=0.0, method="POST", path=path, headers={}, body={})

    assert attempt("/v1/chat/completions").route == ""
    assert attempt("/kimi/v1/chat/completions/").route == "kimi"


def test_labelled_route_is_journaled_with_its_label(provider, client):
    request = chat_request("routeb", "chunks-3")
    response = client.post(labelled(provider, "b"), json=request)
    assert response.status_code == 200
    assert response.content == clean_plan(request).body
    (attempt,) = finished(provider, "routeb")
    assert (attempt.path, attempt.route) == ("/b/v1/chat/completions", "b")
    assert attempt.ending == "clean"


def test_labelled_route_lists_models(provider, client):
    response = client.get(labelled(provider, "nim-2", "models"))
    assert response.status_code == 200
    assert [model["id"] for model in response.json()["data"]] == ["streamproof"]


@pytest.mark.parametrize(
    ("method", "endpoint"),
    [
        pytest.param("GET", "chat/completions", id="get-chat-completions"),
        pytest.param("POST", "models", id="post-models"),
    ],
)
def test_labelled_route_with_the_wrong_method_gets_405(provider, client, method, endpoint):
    response = client.request(method, labelled(provider, "b", endpoint))
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/B/v1/chat/completions", id="upper-case-label"),
        pytest.param("/a/b/v1/chat/completions", id="two-labels"),
        pytest.param(f"/{'x' * 33}/v1/chat/completions", id="33-character-label"),
        pytest.param("/b/chat/completions", id="no-v1"),
        pytest.param("/b/v1/completions", id="legacy-completions"),
        pytest.param("/b", id="label-alone"),
    ],
)
def test_path_outside_every_route_gets_404_json_error(provider, client, path):
    response = client.post(f"http://127.0.0.1:{provider.port}{path}", json=chat_request("x"))
    assert response.status_code == 404
    assert path in response.json()["error"]["message"]


def test_first_k_counts_attempts_per_request_across_routes(provider, client):
    request = chat_request("acrossroutes", "chunks-2", "reset_before_headers", "first-3")
    for label in ("", "b", "c"):
        with pytest.raises(httpx.TransportError):
            client.post(labelled(provider, label), json=request)
    response = client.post(labelled(provider, "b"), json=request)
    assert response.status_code == 200
    assert response.content == clean_plan(request, attempt=4).body
    attempts = finished(provider, "acrossroutes", count=4)
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    assert [a.route for a in attempts] == ["", "b", "c", "b"]
    assert [a.faults for a in attempts] == [["reset_before_headers"]] * 3 + [[]]
    assert [a.ending for a in attempts] == ["reset", "reset", "reset", "clean"]


# --- faults on the wire ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nonce", "tokens", "ending"),
    [
        pytest.param("wireclose", ["close_after-3"], "clean", id="close_after-3"),
        pytest.param("wirenodone", ["no_done"], "clean", id="no_done"),
        pytest.param("wiremalformed", ["malformed-2"], "clean", id="malformed-2"),
        pytest.param("wirechop", ["chop-7"], "clean", id="chop-7"),
        pytest.param("wirecoalesce", ["coalesce"], "clean", id="coalesce"),
        pytest.param("wiresplit", ["eol-crlf", "split_eol"], "clean", id="eol-crlf-split_eol"),
        pytest.param("wirecr", ["eol-cr"], "clean", id="eol-cr"),
    ],
)
def test_server_sends_exactly_the_planned_body_in_the_planned_writes(
    provider, client, nonce, tokens, ending
):
    request = chat_request(nonce, "chunks-4", *tokens)
    response = client.post("/chat/completions", json=request)
    plan = planned(request)
    assert response.status_code == 200
    assert response.content == plan.body
    (attempt,) = finished(provider, nonce)
    assert attempt.ending == ending
    assert attempt.faults == [fault.token for fault in Scenario.parse(request["model"]).faults]
    assert [size for _, size in attempt.writes] == [len(piece) for piece in plan.writes()]
    assert (bytes(attempt.data), attempt.data_left_out) == (plan.body, 0)


def test_journal_keeps_the_first_kept_bytes_of_a_big_body_and_counts_the_rest(provider, client):
    request = chat_request("keptbytes", "bigdelta-100", "chop-4096")
    response = client.post("/chat/completions", json=request)
    (attempt,) = finished(provider, "keptbytes")
    assert len(response.content) > KEPT_BYTES
    assert bytes(attempt.data) == response.content[:KEPT_BYTES]
    assert attempt.data_left_out == len(response.content) - KEPT_BYTES


def test_journal_keeps_an_error_status_body(provider, client):
    request = chat_request("keptstatus", "status-503")
    response = client.post("/chat/completions", json=request)
    (attempt,) = finished(provider, "keptstatus")
    assert bytes(attempt.data) == response.content
    assert attempt.data_left_out == 0


def test_status_fault_sends_error_with_retry_after(provider, client):
    request = chat_request("status429", "status-429-2")
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == 429
    (attempt,) = finished(provider, "status429")
    assert (attempt.status, attempt.ending) == (429, "clean")


@pytest.mark.parametrize("code", [500, 502, 503, 529])
def test_status_fault_sends_each_5xx_as_a_json_error(provider, client, code):
    request = chat_request(f"status{code}", f"status-{code}")
    response = client.post("/chat/completions", json=request)
    assert response.status_code == code
    assert response.headers["content-type"] == "application/json"
    assert "retry-after" not in response.headers
    assert response.json()["error"]["code"] == code
    (attempt,) = finished(provider, f"status{code}")
    assert (attempt.status, attempt.ending, attempt.faults) == (code, "clean", [f"status-{code}"])


def test_reset_before_headers_is_a_transport_error(provider, client):
    request = chat_request("resetfirst", "reset_before_headers")
    with pytest.raises(httpx.TransportError):
        client.post("/chat/completions", json=request)
    (attempt,) = finished(provider, "resetfirst")
    assert attempt.ending == "reset"
    assert attempt.status is None
    assert attempt.writes == []


def test_stall_before_headers_keeps_the_client_waiting(provider, impatient_client):
    request = chat_request("stallfirst", "stall_before_headers")
    with pytest.raises(httpx.ReadTimeout):
        impatient_client.post("/chat/completions", json=request)
    (attempt,) = finished(provider, "stallfirst")  # the client left, which ends the stall
    assert attempt.ending == "stall"
    assert attempt.status is None
    assert attempt.peer_closed_at is not None


def test_reset_after_3_sends_exactly_3_events_then_a_transport_error(provider, client):
    request = chat_request("resetafter3", "chunks-5", "reset_after-3")
    with client.stream("POST", "/chat/completions", json=request) as response:
        assert response.status_code == 200
        received, error = read_until_error(response)
    assert isinstance(error, httpx.TransportError)
    assert received == b"".join(frame.data for frame in clean_plan(request).frames[:3])
    (attempt,) = finished(provider, "resetafter3")
    assert attempt.ending == "reset"
    assert attempt.events_written == 3
    assert attempt.bytes_written == len(received)


def test_reset_after_0_sends_200_headers_then_a_reset_before_any_body_byte(provider, client):
    request = chat_request("resetafter0", "chunks-3", "reset_after-0")
    with client.stream("POST", "/chat/completions", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        received, error = read_until_error(response)
    assert isinstance(error, httpx.ReadError)
    assert received == b""
    (attempt,) = finished(provider, "resetafter0")
    assert (attempt.status, attempt.ending) == (200, "reset")
    assert (attempt.writes, attempt.bytes_written) == ([], 0)


def test_reset_inside_3_sends_3_events_and_half_the_4th_then_a_reset(provider, client):
    request = chat_request("resetinside3", "chunks-5", "reset_inside-3")
    with client.stream("POST", "/chat/completions", json=request) as response:
        assert response.status_code == 200
        received, error = read_until_error(response)
    assert isinstance(error, httpx.ReadError)
    frames = clean_plan(request).frames
    half = frames[3].data[: len(frames[3].data) // 2]
    assert received == b"".join(frame.data for frame in frames[:3]) + half
    decoder = SSEDecoder()
    assert len(decoder.feed(received) + decoder.close()) == 3
    assert decoder.unterminated
    (attempt,) = finished(provider, "resetinside3")
    assert (attempt.ending, attempt.faults) == ("reset", ["reset_inside-3"])
    assert attempt.bytes_written == len(received)
    assert attempt.content_written == "".join(deltas(5)[:2])


def test_first_2_faults_fire_on_attempts_1_and_2_and_attempt_3_is_clean(provider, client):
    request = chat_request("firsttwo", "chunks-2", "reset_before_headers", "first-2")
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            client.post("/chat/completions", json=request)
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 200
    assert response.content == clean_plan(request, attempt=3).body
    attempts = finished(provider, "firsttwo", count=3)
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.faults for a in attempts] == [["reset_before_headers"]] * 2 + [[]]
    assert [a.ending for a in attempts] == ["reset", "reset", "clean"]


def test_authorization_is_journaled_only_as_a_fingerprint(provider, client):
    key = "sk-streamproof-do-not-journal-0123456789"
    headers = {"Authorization": f"Bearer {key}"}
    client.post("/chat/completions", json=chat_request("authkey", "chunks-1"), headers=headers)
    (attempt,) = finished(provider, "authkey")
    assert attempt.headers["authorization"] == fingerprint(f"Bearer {key}")
    assert attempt.headers["authorization"].startswith("sha256:")
    assert key not in repr(attempt)


def test_keep_alive_connection_carries_several_requests(provider, client):
    def local_address(response: httpx.Response) -> Any:
        return response.extensions["network_stream"].get_extra_info("client_addr")

    streamed = chat_request("keepalive1", "chunks-2")
    stream = client.post("/chat/completions", json=streamed)
    first_address = local_address(stream)
    refused = client.post("/chat/completions", json={"model": "streamproof.chop-0"})
    whole = client.post("/chat/completions", json=chat_request("keepalive2", stream=False))
    assert (stream.status_code, refused.status_code, whole.status_code) == (200, 400, 200)
    assert stream.content == clean_plan(streamed).body
    assert whole.json()["choices"][0]["message"]["content"] == "".join(deltas(8))
    assert local_address(refused) == first_address
    assert local_address(whole) == first_address


def test_stall_after_2_ends_when_the_client_leaves(provider, client):
    request = chat_request("stallafter2", "chunks-5", "stall_after-2")
    journal = provider.journal("stallafter2")
    decoder, received = SSEDecoder(), []
    with client.stream("POST", "/chat/completions", json=request) as response:
        for piece in response.iter_raw():
            received += decoder.feed(piece)
            if len(received) >= 2:
                break
    # Leaving the block closed a response that was not complete: httpx dropped the connection.
    expected = decode(b"".join(frame.data for frame in clean_plan(request).frames[:2]))
    assert received == expected
    assert journal.wait_for(lambda j: j.attempts[-1].peer_closed_at is not None, 2.0)
    (attempt,) = finished(provider, "stallafter2")
    assert attempt.ending == "stall"
    assert attempt.events_written == 2
    assert attempt.last_write_at is not None
    assert attempt.peer_closed_at is not None
    assert attempt.peer_closed_at >= attempt.last_write_at


def test_stall_ends_by_itself_after_the_stall_limit():
    with (
        FakeProvider(stall_limit=0.2) as quick,
        httpx.Client(base_url=quick.base_url, trust_env=False, timeout=TIMEOUT) as client,
    ):
        request = chat_request("stalllimit", "chunks-2", "stall_after-1")
        with client.stream("POST", "/chat/completions", json=request) as response:
            (attempt,) = finished(quick, "stalllimit")
            assert attempt.ending == "stall"
            assert attempt.peer_closed_at is None  # the client is still there
            assert attempt.ended_at is not None
            assert attempt.last_write_at is not None
            assert attempt.ended_at - attempt.last_write_at >= 0.2 - TIMING_TOLERANCE
            received, error = read_until_error(response)
        assert isinstance(error, httpx.RemoteProtocolError)  # closed inside a chunked body
        assert received == clean_plan(request).frames[0].data


def test_slow_30_spaces_writes_by_30_ms(provider, client):
    request = chat_request("slow30", "chunks-2", "slow-30")
    response = client.post("/chat/completions", json=request)
    assert response.content == clean_plan(request).body
    (attempt,) = finished(provider, "slow30")
    times = [at for at, _ in attempt.writes]
    assert len(times) == 5
    assert all(b - a >= 0.030 - TIMING_TOLERANCE for a, b in itertools.pairwise(times))
    assert attempt.ended_at is not None
    assert attempt.ended_at - times[-1] >= 0.030 - TIMING_TOLERANCE  # a pause after the last


def test_split_utf8_body_joins_back_to_the_clean_body(provider, client):
    request = chat_request("splitutf8", "chunks-16", "split_utf8")
    response = client.post("/chat/completions", json=request)
    clean = clean_plan(request)
    assert response.content == clean.body
    assert decode(response.content) == decode(clean.body)
    (attempt,) = finished(provider, "splitutf8")
    split = SplitUtf8().apply(clean)
    assert [size for _, size in attempt.writes] == [len(piece) for piece in split.writes()]


# --- starting and stopping ---------------------------------------------------------------


def test_provider_stop_returns_promptly_with_a_stalled_connection_open():
    provider = FakeProvider().start()  # the default stall limit is far longer than the bound
    stopped = False
    try:
        with httpx.Client(base_url=provider.base_url, trust_env=False, timeout=TIMEOUT) as client:
            request = chat_request("stopstalled", "chunks-2", "stall_after-1")
            journal = provider.journal("stopstalled")
            with client.stream("POST", "/chat/completions", json=request) as response:
                assert journal.wait_for(lambda j: j.attempts[-1].events_written == 1, TIMEOUT)
                began = time.perf_counter()
                provider.stop()
                stopped = True
                took = time.perf_counter() - began
                _, error = read_until_error(response)
    finally:
        if not stopped:
            provider.stop()
    assert took < 1.0
    assert isinstance(error, httpx.TransportError)
    assert journal.attempts[-1].ending == "stall"


def test_provider_stop_twice_is_harmless():
    provider = FakeProvider().start()
    provider.stop()
    provider.stop()


def test_provider_connections_disable_nagle(provider, client):
    request = chat_request("nagle", "chunks-2", "stall_after-1")
    with client.stream("POST", "/chat/completions", json=request):
        assert provider.journal("nagle").wait_for(lambda j: j.attempts[-1].status == 200, TIMEOUT)
        # Nagle would hold small writes back and merge them, undoing chop and the splits.
        # No public API shows the server's side of a connection; read it from the provider.
        writers = list(provider._connections.values())
        sockets = [writer.get_extra_info("socket") for writer in writers]
        assert sockets
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


# --- the grammar variants on the wire -----------------------------------------------------


def answer_of(body: bytes) -> tuple[dict[int, str], dict[int, str], dict[int, str], bool]:
    """Per choice: content, tool-call arguments and finish reason; and whether [DONE] came."""
    contents: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finishes: dict[int, str] = {}
    done = False
    for event in decode(body):
        if event.data == "[DONE]":
            done = True
            continue
        chunk = json.loads(event.data) if event.data.startswith("{") else {}
        for choice in chunk.get("choices", []):
            index, delta = choice["index"], choice["delta"]
            contents[index] = contents.get(index, "") + (delta.get("content") or "")
            for call in delta.get("tool_calls", []):
                arguments[index] = arguments.get(index, "") + call["function"]["arguments"]
            if choice["finish_reason"]:
                finishes[index] = choice["finish_reason"]
    return contents, arguments, finishes, done


GRAMMAR = [
    pytest.param(
        "gramall",
        "chunks-5.eol-mixed.bom.comments.nospace.fields.multiline.empty_data.unterminated"
        ".text-emoji.choices-2.tools-3".split("."),
        id="every-format-emoji-choices-tools",
    ),
    pytest.param("gramcr", ["chunks-6", "eol-cr", "text-control", "split_eol"], id="cr-control"),
    pytest.param(
        "gramcrlf",
        "chunks-4.eol-crlf.text-surrogates.emptydeltas.roleonly.split_eol.split_utf8"
        ".finish-length".split("."),
        id="crlf-surrogates-split",
    ),
    pytest.param("grambig", ["chunks-3", "bigdelta-1024", "multiline", "chop-65536"], id="1mib"),
    pytest.param("gramrandom", ["chunks-40", "text-random-99", "chop-5"], id="random-chop-5"),
]


@pytest.mark.parametrize(("nonce", "tokens"), GRAMMAR)
def test_grammar_variant_arrives_byte_for_byte_and_means_expected(provider, client, nonce, tokens):
    request = chat_request(nonce, *tokens)
    response = client.post("/chat/completions", json=request)
    plan = planned(request)
    assert response.status_code == 200
    assert response.content == plan.body
    scenario = Scenario.parse(request["model"])
    want = chat.expected(scenario)
    arguments = {i: "".join(c.arguments for c in calls) for i, calls in want.tool_calls.items()}
    contents, sent_arguments, finishes, done = answer_of(response.content)
    assert contents == want.content
    assert {i: sent_arguments.get(i, "") for i in contents} == arguments
    assert finishes == want.finish_reasons
    assert done is want.done
    (attempt,) = finished(provider, nonce)
    assert attempt.ending == "clean"
    assert attempt.content_written_by_choice() == want.content
    assert attempt.content_written == want.text
    assert {i: s for i, s in attempt.arguments_written_by_choice().items() if s} == {
        i: s for i, s in arguments.items() if s
    }
    assert [size for _, size in attempt.writes] == [len(piece) for piece in plan.writes()]


@pytest.mark.parametrize("events", [2, 5, 9])
def test_journal_knows_each_choices_content_when_the_stream_breaks(provider, client, events):
    nonce = f"breakchoices{events}"
    request = chat_request(nonce, "chunks-4", "choices-3", f"reset_after-{events}")
    with client.stream("POST", "/chat/completions", json=request) as response:
        received, error = read_until_error(response)
    assert isinstance(error, httpx.TransportError)
    (attempt,) = finished(provider, nonce)
    assert attempt.events_written == events
    written = attempt.content_written_by_choice()
    contents, *_ = answer_of(received)
    assert written == contents
    want = chat.expected(Scenario.parse(request["model"])).content
    assert all(want[index].startswith(text) for index, text in written.items())
    assert attempt.content_written == written.get(0, "")


def test_upstream_error_mid_stream_ends_the_body_cleanly_after_the_error(provider, client):
    request = chat_request("inbandflat", "chunks-4", "upstream_error-4-flat")
    response = client.post("/chat/completions", json=request)
    assert response.content == planned(request).body
    *_, last = decode(response.content)
    assert json.loads(last.data)["object"] == "error"
    (attempt,) = finished(provider, "inbandflat")
    assert (attempt.ending, attempt.faults) == ("clean", ["upstream_error-4-flat"])
    assert attempt.content_written == "".join(deltas(2))


def test_nonobject_then_a_clean_retry(provider, client):
    request = chat_request("nonobjretry", "chunks-3", "nonobject-2-array", "first-1")
    first = client.post("/chat/completions", json=request)
    second = client.post("/chat/completions", json=request)
    assert decode(first.content)[1].data == "[1,2]"
    assert second.content == clean_plan(request, attempt=2).body
    attempts = finished(provider, "nonobjretry", count=2)
    assert [a.faults for a in attempts] == [["nonobject-2-array"], []]


def test_whole_answer_with_choices_and_tools(provider, client):
    request = chat_request("wholetools", "chunks-2", "choices-2", "tools-4", stream=False)
    document = client.post("/chat/completions", json=request).json()
    want = chat.expected(Scenario.parse(request["model"]))
    assert [c["message"]["content"] for c in document["choices"]] == list(want.content.values())
    for choice in document["choices"]:
        (call,) = choice["message"]["tool_calls"]
        assert json.loads(call["function"]["arguments"])["city"] == "Zürich"
        assert choice["finish_reason"] == "tool_calls"
    (attempt,) = finished(provider, "wholetools")
    assert attempt.content_written_by_choice() == want.content
    assert set(attempt.arguments_written_by_choice()) == {0, 1}


@pytest.mark.parametrize("run", range(2))
def test_provider_journals_a_peer_that_resets_mid_write(provider: FakeProvider, run: int) -> None:
    """However the hang-up is noticed (by the watcher, or by a write that fails), the
    journal says when: a check waiting for it must never wait in vain."""
    nonce = f"resetmidwrite{run}"
    # 16 MiB in one write: more than the kernel buffers, so the reset finds it mid-write.
    body = json.dumps(chat_request(nonce, "chunks-4", "bigdelta-16384", "coalesce")).encode()
    with socket.create_connection(("127.0.0.1", provider.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: fake\r\ncontent-type: application/json"
            b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        assert sock.recv(1)  # the answer has started
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    journal = provider.journal(nonce)
    assert journal.wait_for(lambda j: j.attempts[-1].ending is not None, TIMEOUT)
    assert journal.attempts[-1].ending == "peer_left"
    assert journal.attempts[-1].peer_closed_at is not None


def _request(model: str) -> bytes:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n{body}"
    ).encode()


@pytest.mark.parametrize("hang_up", [True, False], ids=["hung-up", "still-there"])
def test_a_request_the_client_gave_up_on_before_it_was_read_is_journaled_abandoned(
    provider: FakeProvider, hang_up: bool
) -> None:
    # The fake's loop is held while the request arrives (and, for one, the client leaves),
    # as a loaded fake reads a request late; then it reads it.
    release, held = threading.Event(), threading.Event()
    assert provider._loop is not None

    def hold() -> None:
        held.set()
        release.wait(TIMEOUT)

    provider._loop.call_soon_threadsafe(hold)
    assert held.wait(TIMEOUT)
    nonce = f"gaveup{int(hang_up)}"
    with socket.create_connection(("127.0.0.1", provider.port), timeout=TIMEOUT) as sock:
        sock.sendall(_request(f"streamproof.id-{nonce}.chunks-2"))
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        release.set()
        if not hang_up:
            sock.recv(1)  # the answer has begun: the request was read with the client there
        journal = provider.journal(nonce)
        assert journal.wait_for(lambda j: bool(j.attempts), TIMEOUT)
    assert journal.attempts[0].abandoned is hang_up
