"""The reference proxy's `/v1/messages` and `/v1/responses`, with each API's official SDK as
the client, through the fake provider: whole answers whole, every post-commit fault visible
to the SDK's caller, pre-commit failures retried, and each request in the health report.

In process (a mock upstream) for what needs a config of its own: a provider that does not
speak an API, the key header each API sends upstream, error bodies in each API's shape.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from streamproof.fake_providers import FakeProvider, messages, responses
from streamproof.fake_providers.scenario import Scenario
from streamproof.harness.targets import BUNDLED, REFERENCE_TIMEOUTS, ProcessTarget
from streamproof.proxy.config import Route
from tests.test_proxy_dispatch import KEY, Upstream, make_config, proxy, sse

PROMPT: Any = [{"role": "user", "content": "hi"}]
# Faults after the commit point, and the in-band error shapes of each API.
BROKEN = ["reset_after-3", "reset_inside-3", "cut_inside-3", "close_after-3", "stall_after-3"]
BROKEN += ["malformed-3", "nonobject-3-null"]
SHAPES = {"messages": ["event"], "responses": ["event", "failed"]}


@dataclass(frozen=True)
class Experience:
    """What an SDK's caller got: an exception or an error event, or an answer it takes
    for a whole one."""

    told: str | None  # the exception raised, or the error event seen
    text: str
    usage: tuple[int, int] | None = None


def fresh(tokens: str) -> Scenario:
    return Scenario.parse(f"streamproof.id-{secrets.token_hex(6)}.{tokens}")


def claude(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=base_url,
        api_key="sk-ant-client",
        max_retries=0,
        timeout=5.0,
        http_client=anthropic.DefaultHttpxClient(trust_env=False),  # loopback: no env proxy
    )


def gpt(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{base_url}/v1",
        api_key="sk-client",
        max_retries=0,
        timeout=5.0,
        http_client=openai.DefaultHttpx2Client(trust_env=False),  # loopback: no env proxy
    )


def with_messages(base_url: str, scenario: Scenario) -> Experience:
    text: list[str] = []
    with claude(base_url) as client:
        try:
            with client.messages.stream(
                model=scenario.model, max_tokens=64, messages=PROMPT
            ) as stream:
                text.extend(stream.text_stream)
                usage = stream.get_final_message().usage
        except (anthropic.AnthropicError, httpx2.HTTPError) as exc:
            return Experience(type(exc).__name__, "".join(text))
    return Experience(None, "".join(text), (usage.input_tokens, usage.output_tokens))


def with_responses(base_url: str, scenario: Scenario) -> Experience:
    text: list[str] = []
    with gpt(base_url) as client:
        try:
            with client.responses.stream(model=scenario.model, input="hi") as stream:
                for event in stream:
                    if event.type in ("error", "response.failed"):
                        return Experience(event.type, "".join(text))
                    if event.type == "response.output_text.delta":
                        text.append(event.delta)
                usage = stream.get_final_response().usage
        except (openai.OpenAIError, httpx2.HTTPError, RuntimeError) as exc:
            return Experience(type(exc).__name__, "".join(text))
    assert usage is not None
    return Experience(None, "".join(text), (usage.input_tokens, usage.output_tokens))


def expected(api: str, scenario: Scenario) -> tuple[str, tuple[int, int]]:
    """The text and the (input, output) tokens of the whole answer, as the fake reports them."""
    want = (
        messages.expected(scenario, PROMPT)
        if api == "messages"
        else responses.expected(scenario, "hi")
    )
    return want.text, (want.usage["input_tokens"], want.usage["output_tokens"])


SDKS = {"messages": with_messages, "responses": with_responses}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def reference(
    fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessTarget]:
    target = ProcessTarget(
        BUNDLED,
        fake.base_url,
        tmp_path_factory.mktemp("reference"),
        timeouts=REFERENCE_TIMEOUTS,
        readiness="/health",
    )
    target.start()
    try:
        yield target
    finally:
        target.stop()


@pytest.mark.parametrize("api", sorted(SDKS))
@pytest.mark.parametrize("tokens", ["chunks-6", "chunks-3.reasoning-2.tools-2", "chunks-4.chop-1"])
def test_a_whole_answer_reaches_the_sdk_whole_with_the_upstream_usage(reference, api, tokens):
    scenario = fresh(tokens)
    seen = SDKS[api](reference.base_url, scenario)
    assert seen == Experience(None, *expected(api, scenario))


@pytest.mark.parametrize("api", sorted(SDKS))
@pytest.mark.parametrize("fault", BROKEN)
def test_a_stream_broken_after_the_commit_point_is_never_whole_to_the_sdk(reference, api, fault):
    scenario = fresh(f"chunks-8.{fault}")
    seen = SDKS[api](reference.base_url, scenario)
    assert seen.told is not None, f"the SDK took {seen.text!r} for a whole answer"


@pytest.mark.parametrize(("api", "shape"), [(a, s) for a in SHAPES for s in SHAPES[a]])
def test_an_upstream_error_event_mid_stream_reaches_the_sdk(reference, api, shape):
    seen = SDKS[api](reference.base_url, fresh(f"chunks-8.upstream_error-4-{shape}"))
    assert seen.told is not None
    want = {"messages": "APIStatusError", "responses": "error"}
    assert seen.told == ("response.failed" if shape == "failed" else want[api])


@pytest.mark.parametrize("api", sorted(SDKS))
@pytest.mark.parametrize("fault", ["status-503", "reset_before_headers", "reset_after-0"])
def test_a_failure_before_the_commit_point_is_retried(reference, fake, api, fault):
    scenario = fresh(f"chunks-4.{fault}.first-2")
    seen = SDKS[api](reference.base_url, scenario)
    assert seen == Experience(None, *expected(api, scenario))
    journal = fake.journal(scenario.nonce)
    assert [a.status for a in journal.attempts][-1] == 200
    assert len(journal.attempts) == 3


def test_messages_error_status_is_a_real_status_in_anthropic_shape(reference, fake):
    scenario = fresh("chunks-4.status-529")
    with claude(reference.base_url) as client, pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=scenario.model, max_tokens=8, messages=PROMPT)
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert set(body) == {"type", "error"}
    assert body["error"]["type"] == "api_error"
    assert "HTTP 529 from upstream" in body["error"]["message"]
    assert len(fake.journal(scenario.nonce).attempts) == 3


@pytest.mark.parametrize("api", sorted(SDKS))
def test_each_request_is_in_the_health_report_with_its_endpoint_and_usage(reference, api):
    scenario = fresh("chunks-5")
    SDKS[api](reference.base_url, scenario)
    report = httpx.get(f"{reference.base_url}/health", trust_env=False).json()
    (record,) = [r for r in report["recent"] if r["model"] == scenario.model]
    assert record["endpoint"] == f"/v1/{api}"
    assert record["result"] == "success"
    _, (prompt, completion) = expected(api, scenario)
    assert record["usage"]["prompt_tokens"] == prompt
    assert record["usage"]["completion_tokens"] == completion


@pytest.mark.parametrize(
    ("method", "api"),
    [
        (lambda c, m: c.messages.create(model=m, max_tokens=8, messages=PROMPT), "messages"),
        (lambda c, m: c.responses.create(model=m, input="hi"), "responses"),
    ],
)
def test_a_whole_answer_not_streamed_is_passed_through(reference, method, api):
    scenario = fresh("chunks-3")
    client = claude(reference.base_url) if api == "messages" else gpt(reference.base_url)
    with client:
        answer = method(client, scenario.model)
    text, (prompt, completion) = expected(api, scenario)
    got = answer.content[0].text if api == "messages" else answer.output_text
    assert got == text
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (prompt, completion)


# In process: configs of their own, a mock upstream.

MESSAGE_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": "Hello there"}],
    "stop_reason": "end_turn",
}


def answering(body: dict[str, Any]) -> Any:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    return answer


@pytest.mark.asyncio
async def test_a_provider_that_does_not_speak_the_api_is_never_asked():
    upstream = Upstream(answering(MESSAGE_ANSWER))
    async with proxy(upstream) as http:  # make_config's providers speak chat only
        response = await http.post("/v1/messages", json={"model": "m", "messages": PROMPT})
    assert response.status_code == 404
    assert response.json()["type"] == "error"
    assert "Anthropic Messages API" in response.json()["error"]["message"]
    assert upstream.requests == []


@pytest.mark.asyncio
async def test_messages_go_upstream_with_the_key_in_x_api_key_and_anthropic_s_headers():
    upstream = Upstream(answering(MESSAGE_ANSWER))
    # A route whose first provider speaks chat only: the request goes to the second.
    config = make_config(
        """
        [providers.claude]
        base_url = "http://claude.test/v1"
        api_key_env = "STREAMPROOF_UPSTREAM_KEY"
        apis = ["messages"]
        """
    )
    routes = (Route("claude-*", ("fake", "claude")), *config.routes)
    async with proxy(upstream, replace(config, routes=routes)) as http:
        response = await http.post(
            "/v1/messages",
            json={"model": "claude-x", "max_tokens": 8, "messages": PROMPT},
            headers={"anthropic-version": "2023-06-01", "anthropic-beta": "b1"},
        )
    assert response.status_code == 200
    (sent,) = upstream.requests
    assert str(sent.url) == "http://claude.test/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.headers["anthropic-beta"] == "b1"
    body = response.json()
    assert body["content"] == MESSAGE_ANSWER["content"]
    assert body["usage"]["estimated"] is True  # the upstream gave none


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        ("/v1/messages", b"{not json", "anthropic"),
        ("/v1/messages", b'{"model": "m"}', "anthropic"),
        ("/v1/responses", b'{"model": 3}', "openai"),
        ("/v1/responses", b'{"model": "m", "input": 3}', "openai"),
    ],
)
async def test_a_bad_request_is_a_400_in_the_api_s_error_shape(path, body, shape):
    upstream = Upstream()
    async with proxy(upstream) as http:
        response = await http.post(path, content=body)
    assert response.status_code == 400
    error = response.json()
    if shape == "anthropic":
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
    else:
        assert error["error"]["type"] == "invalid_request_error"
    assert upstream.requests == []


@pytest.mark.asyncio
async def test_a_responses_stream_broken_mid_way_ends_with_an_error_event_numbered_next():
    head = (
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
        b'"response":{}}\n\n'
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"sequence_number":1,"delta":"Hel"}\n\n'
    )
    upstream = Upstream(sse(head, httpx.ReadError("reset")))
    async with proxy(upstream, make_config(apis='["responses"]')) as http:
        response = await http.post(
            "/v1/responses", json={"model": "m", "input": "hi", "stream": True}
        )
    assert response.status_code == 200
    assert response.content.startswith(head)
    tail = response.content[len(head) :]
    assert tail.startswith(b"event: error\ndata: ")
    error = json.loads(tail.removeprefix(b"event: error\ndata: "))
    assert error["sequence_number"] == 2
    assert error["code"] == "upstream_reset"


@pytest.mark.parametrize("api", sorted(SDKS))
def test_a_client_that_leaves_mid_stream_closes_the_upstream_and_is_recorded(reference, fake, api):
    scenario = fresh("chunks-40.slow-20")
    body = {"model": scenario.model, "stream": True, "max_tokens": 64, "messages": PROMPT}
    if api == "responses":
        body = {"model": scenario.model, "stream": True, "input": "hi"}
    with (
        httpx.Client(base_url=reference.base_url, trust_env=False) as client,
        client.stream("POST", f"/v1/{api}", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if "delta" in line:
                break  # the client leaves after its first delta
    journal = fake.journal(scenario.nonce)
    report = httpx.get(f"{reference.base_url}/health", trust_env=False).json()
    for _ in range(100):  # the proxy records the request once it has seen the client leave
        if report["requests"]["active"] == 0:
            break
        report = httpx.get(f"{reference.base_url}/health", trust_env=False).json()
    (record,) = [r for r in report["recent"] if r["model"] == scenario.model]
    assert record["result"] == "cancelled"
    (attempt,) = journal.attempts
    assert attempt.peer_closed_at is not None  # the upstream request was closed
    assert attempt.events_written < 40


@pytest.mark.parametrize("api", sorted(SDKS))
def test_a_stall_mid_stream_is_cut_by_the_idle_timer_and_recorded(reference, api):
    scenario = fresh("chunks-8.stall_after-3")
    seen = SDKS[api](reference.base_url, scenario)
    assert seen.told is not None
    report = httpx.get(f"{reference.base_url}/health", trust_env=False).json()
    (record,) = [r for r in report["recent"] if r["model"] == scenario.model]
    assert record["result"] == "failure"
    assert record["error_class"] == "ReadTimeout"
