"""The fake provider refuses a bad chat request as OpenAI does, over real sockets.

Each bad body gets a 400 `invalid_request_error` naming what is wrong, on a connection that
stays usable: a pass-through proxy relays what the fake says, so a lenient fake (a 200, or
a dropped connection) would make a case about the proxy judge the fake instead.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streamproof.fake_providers import Attempt, FakeProvider, Scenario, chat

TIMEOUT = 5.0  # nothing here should come near it; it only stops a broken test from hanging
DEEP = 100_000
MESSAGES = [{"role": "user", "content": "Say hello."}]
HEADERS = {"content-type": "application/json"}
_ids = itertools.count()


def fresh_nonce(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(stall_limit=TIMEOUT) as provider:
        yield provider


@pytest.fixture
def client(provider: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.base_url, trust_env=False, timeout=TIMEOUT) as client:
        yield client


def body(model: Any = "streamproof.chunks-2", **fields: Any) -> bytes:
    """A good request body, with `fields` changed (a field set to `...` is left out)."""
    document: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": True, **fields}
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def good_request(nonce: str) -> dict[str, Any]:
    return {"model": f"streamproof.id-{nonce}.chunks-3", "messages": MESSAGES, "stream": True}


def expected_body(request: dict[str, Any], attempt: int = 1) -> bytes:
    scenario = Scenario.parse(request["model"])
    return chat.answer(request, scenario, chat.chunk_id(scenario, attempt)).body


def post(client: httpx.Client, content: bytes, path: str = "/chat/completions") -> httpx.Response:
    return client.post(path, content=content, headers=HEADERS)


def finished(provider: FakeProvider, nonce: str, count: int = 1) -> list[Attempt]:
    """The journal's attempts once `count` of them have ended."""
    journal = provider.journal(nonce)
    done = journal.wait_for(
        lambda j: len(j.attempts) >= count and all(a.ending for a in j.attempts), TIMEOUT
    )
    assert done, journal.attempts
    return journal.attempts


def assert_refused(response: httpx.Response, param: str | None, *words: str) -> None:
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, None)
    for word in words:
        assert word in error["message"]


BAD_BODIES = [
    # The body as a whole: nothing in it says whose request it is.
    pytest.param(b"{not json", None, ["could not parse", "Expecting property name"], id="not-json"),
    pytest.param(b"", None, ["could not parse", "Expecting value"], id="empty-body"),
    pytest.param(b'{"model": "x", "messages": [', None, ["could not parse"], id="cut-short"),
    pytest.param(body(temperature=float("nan")), None, ["NaN"], id="nan-is-not-json"),
    pytest.param(b'{"model": "\xff\xfe", "messages": []}', None, ["UTF-8"], id="not-utf8"),
    pytest.param(
        json.dumps({"model": "m", "messages": MESSAGES}).encode("utf-16"),
        None,
        ["UTF-8"],
        id="utf16-json",
    ),
    pytest.param(b"[" * DEEP, None, ["nested too deeply"], id="array-nested-100k-deep"),
    pytest.param(b'{"a":' * DEEP, None, ["nested too deeply"], id="object-nested-100k-deep"),
    pytest.param(b"[1, 2]", None, ["must be a JSON object", "array"], id="json-array"),
    pytest.param(b'"chat"', None, ["must be a JSON object", "string"], id="json-string"),
    pytest.param(b"null", None, ["must be a JSON object", "null"], id="json-null"),
    # The model, which carries the scenario.
    pytest.param(body(model=...), "model", ["model"], id="no-model"),
    pytest.param(body(model=None), "model", ["model"], id="model-null"),
    pytest.param(body(model=""), "model", ["model"], id="model-empty"),
    pytest.param(body(model=7), "model", ["'model'", "string", "number"], id="model-number"),
    pytest.param(body(model=["m"]), "model", ["'model'", "array"], id="model-array"),
    pytest.param(body(model="\ud800"), "model", ["surrogate"], id="model-lone-surrogate"),
    pytest.param(body(model="streamproof.chop-0"), "model", ["at least 1 byte"], id="chop-0"),
    pytest.param(
        body(model="streamproof.bogus"), "model", ["accepted: id, "], id="unknown-scenario-token"
    ),
    # The messages.
    pytest.param(body(messages=...), "messages", ["'messages'"], id="no-messages"),
    pytest.param(body(messages=None), "messages", ["'messages'"], id="messages-null"),
    pytest.param(body(messages=[]), "messages", ["empty array"], id="messages-empty"),
    pytest.param(body(messages="hi"), "messages", ["array", "string"], id="messages-string"),
    pytest.param(
        body(messages={"role": "user"}), "messages", ["array", "object"], id="messages-object"
    ),
    pytest.param(
        body(messages=[*MESSAGES, "hi"]), "messages[1]", ["object", "string"], id="message-string"
    ),
    pytest.param(
        body(messages=[{"content": "hi"}]), "messages[0].role", ["Missing"], id="message-no-role"
    ),
    pytest.param(
        body(messages=[{"role": None, "content": "hi"}]),
        "messages[0].role",
        ["string", "null"],
        id="message-role-null",
    ),
    pytest.param(
        body(messages=[{"role": 1, "content": "hi"}]),
        "messages[0].role",
        ["string", "number"],
        id="message-role-number",
    ),
    pytest.param(
        body(messages=[{"role": "user", "content": 42}]),
        "messages[0].content",
        ["content parts", "number"],
        id="message-content-number",
    ),
    pytest.param(
        body(messages=[{"role": "user", "content": {"text": "hi"}}]),
        "messages[0].content",
        ["content parts", "object"],
        id="message-content-object",
    ),
    # stream.
    pytest.param(body(stream="true"), "stream", ["boolean", "string"], id="stream-string"),
    pytest.param(body(stream=1), "stream", ["boolean", "number"], id="stream-number"),
    pytest.param(body(stream={}), "stream", ["boolean", "object"], id="stream-object"),
]


@pytest.mark.parametrize(("content", "param", "words"), BAD_BODIES)
def test_bad_chat_request_gets_400_invalid_request_error(client, content, param, words):
    assert_refused(post(client, content), param, *words)


@pytest.mark.parametrize(("content", "param", "words"), BAD_BODIES)
def test_connection_serves_a_good_request_after_a_bad_one(provider, client, content, param, words):
    accepted = provider.accepted
    assert_refused(post(client, content), param, *words)
    request = good_request(fresh_nonce("after"))
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 200
    assert response.content == expected_body(request)
    assert provider.accepted == accepted + 1  # one connection carried both (keep-alive)


def test_body_nested_100k_deep_is_refused_quickly(client):
    post(client, body())  # the connection is open: only the refusal itself is timed
    started = time.perf_counter()
    response = post(client, b"[" * DEEP)
    elapsed = time.perf_counter() - started
    assert_refused(response, None, "nested too deeply")
    assert elapsed < 1.0, f"{elapsed:.3f} s"  # it takes milliseconds; 1 s is for a busy machine


@pytest.mark.parametrize("label", [pytest.param("", id="unlabelled"), pytest.param("b", id="b")])
def test_bad_request_on_any_chat_route_is_refused(provider, client, label):
    url = f"{provider.url_for(label)}/chat/completions"
    assert_refused(post(client, body(messages=...), url), "messages", "'messages'")


def test_refused_request_with_a_request_id_is_journaled_as_a_400_attempt(provider, client):
    nonce = "refusedjournal"
    request = {"model": f"streamproof.id-{nonce}.chunks-3.reset_before_headers", "stream": 1}
    response = client.post("/chat/completions", json=request)
    assert_refused(response, "messages", "'messages'")
    (attempt,) = finished(provider, nonce)
    assert attempt.body == request
    assert attempt.status == 400
    assert attempt.faults == []  # refused at the door: the scenario's fault does not fire
    assert attempt.ending == "clean"
    assert bytes(attempt.data) == response.content


def test_refused_request_counts_as_an_attempt_towards_first_k(provider, client):
    nonce = "refusedfirst"
    model = f"streamproof.id-{nonce}.chunks-3.status-503.first-1"
    assert_refused(post(client, body(model=model, messages=[])), "messages", "empty array")
    request = {"model": model, "messages": MESSAGES, "stream": True}
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 200
    assert response.content == expected_body(request, attempt=2)
    attempts = finished(provider, nonce, count=2)
    assert [(a.number, a.status, a.faults) for a in attempts] == [
        (1, 400, []),
        (2, 200, []),
    ]


def test_refused_request_with_a_malformed_scenario_is_not_journaled(provider, client):
    content = body(model="streamproof.id-unjournaled.chunks-3.bogus")
    assert_refused(post(client, content), "model", "unknown scenario token 'bogus'")
    assert provider.journal("unjournaled").attempts == []


def test_refused_request_without_a_model_is_not_journaled(provider, client):
    # A model without a request id is journaled under "": a request without one is not.
    before = len(provider.journal("").attempts)
    assert_refused(post(client, body(model=...)), "model", "model")
    assert len(provider.journal("").attempts) == before


GOOD_VARIANTS = [
    pytest.param({}, id="plain"),
    pytest.param({"stream": False}, id="whole"),
    pytest.param({"stream": None}, id="stream-null-means-not-given"),
    pytest.param({"stream": ...}, id="stream-left-out"),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        id="content-parts",
    ),
    pytest.param(
        {"messages": [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": []}]},
        id="content-null",
    ),
    pytest.param({"messages": [{"role": "tool", "tool_call_id": "x"}]}, id="content-left-out"),
    pytest.param({"temperature": 0.5, "user": "u", "x-extra": [1]}, id="other-fields-ignored"),
]


@pytest.mark.parametrize("changes", GOOD_VARIANTS)
def test_good_request_is_answered_as_before(provider, client, changes):
    nonce = fresh_nonce("good")
    request = {**good_request(nonce), **changes}
    request = {k: v for k, v in request.items() if v is not ...}
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 200
    assert response.content == expected_body(request)
    assert [(a.status, a.ending) for a in finished(provider, nonce)] == [(200, "clean")]


def test_body_with_a_utf8_bom_is_still_read(client):
    response = post(client, b"\xef\xbb\xbf" + body())
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/models", 200, id="models"),
        pytest.param("GET", "/chat/completions", 405, id="get-chat-completions"),
        pytest.param("POST", "/models", 405, id="post-models"),
        pytest.param("POST", "/completions", 404, id="legacy-completions"),
    ],
)
def test_other_routes_answer_as_before(client, method, path, status):
    response = client.request(method, path, content=b"{not json")
    assert response.status_code == status
    if status != 200:
        error = response.json()["error"]
        assert error | {"message": ""} == {
            "message": "",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
