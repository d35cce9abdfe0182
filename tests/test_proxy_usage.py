"""Usage in the reference proxy (proxy.usage, via proxy.relay): read from every place a
provider puts it, the last report wins, an estimate when there is none and marked as one,
and the OpenAI contract to the client. Sans-IO, plus the app in process on a MockTransport.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import tomllib
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.proxy import usage as usage_module
from streamproof.proxy.app import create_app
from streamproof.proxy.config import parse_config
from streamproof.proxy.relay import Fail, Finish, Forward, Step, StreamCheck
from streamproof.proxy.tokens import count, count_prompt
from streamproof.proxy.usage import Usage, UsageMeter, complete_answer, read_report

MESSAGES = [{"role": "user", "content": "hi"}]
META = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}


def usage(prompt: int, completion: int, total: int | None = None) -> dict[str, int]:
    body = {"prompt_tokens": prompt, "completion_tokens": completion}
    body["total_tokens"] = prompt + completion if total is None else total
    return body


def chunk(content: str | None = "hi", finish: str | None = None, **extra: Any) -> bytes:
    delta = {} if content is None else {"content": content}
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    if "choice_usage" in extra:
        choice["usage"] = extra.pop("choice_usage")
    return json.dumps({**META, "choices": [choice], **extra}).encode()


def usage_chunk(body: object) -> bytes:
    return json.dumps({**META, "choices": [], "usage": body}).encode()


def sse(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + payload + b"\n\n" for payload in payloads)


def check(include_usage: bool) -> StreamCheck:
    return StreamCheck("fake", meter=UsageMeter(include_usage, MESSAGES))


def run(include_usage: bool, *payloads: bytes) -> tuple[list[Step], StreamCheck]:
    stream = check(include_usage)
    steps = stream.feed(sse(*payloads, b"[DONE]"))
    return steps, stream


def payloads(steps: list[Step]) -> list[dict[str, Any]]:
    return [json.loads(step.payload) for step in steps if isinstance(step, Forward)]


def final_usage(steps: list[Step]) -> dict[str, Any]:
    """The one usage chunk, checked to be the last before [DONE] and the only one."""
    assert isinstance(steps[-1], Finish)
    sent = payloads(steps)
    carrying = [p for p in sent if p.get("usage") or any(c.get("usage") for c in p["choices"])]
    assert carrying == [sent[-1]]
    last = sent[-1]
    assert set(last) == {"id", "object", "created", "model", "choices", "usage"}
    assert last["object"] == "chat.completion.chunk"
    assert (last["id"], last["created"], last["model"]) == ("chatcmpl-1", 7, "m")
    assert last["choices"] == []
    result: dict[str, Any] = last["usage"]
    return result


def estimate_for(text: str) -> dict[str, Any]:
    prompt = count_prompt(MESSAGES)
    completion = count(text)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "estimated": True,
    }


# Where the provider puts it.


def test_usage_openai_final_chunk_is_forwarded_exactly_when_asked():
    reported = {**usage(9, 2), "prompt_tokens_details": {"cached_tokens": 4}}
    steps, stream = run(True, chunk("a"), chunk(None, "stop"), usage_chunk(reported))
    assert final_usage(steps) == reported
    assert stream.usage() == Usage(9, 2, 11, estimated=False)


def test_usage_inside_the_choice_moonshot():
    steps, stream = run(True, chunk("a"), chunk(None, "stop", choice_usage=usage(5, 1)))
    assert final_usage(steps) == usage(5, 1)
    assert payloads(steps)[1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert stream.usage() == Usage(5, 1, 6, estimated=False)


def test_usage_cumulative_on_every_chunk_last_wins_never_summed():
    steps, stream = run(
        True,
        chunk("a", usage=usage(5, 1)),
        chunk("b", usage=usage(5, 2)),
        chunk(None, "stop", usage=usage(5, 3)),
    )
    assert final_usage(steps) == usage(5, 3)
    assert stream.usage() == Usage(5, 3, 8, estimated=False)
    assert [p["choices"][0]["delta"].get("content") for p in payloads(steps)[:3]] == [
        "a",
        "b",
        None,
    ]


def test_usage_sent_without_being_asked_is_recorded_and_not_forwarded():
    steps, stream = run(
        False, chunk("a", usage=usage(5, 1)), chunk(None, "stop"), usage_chunk(usage(5, 1))
    )
    sent = payloads(steps)
    assert len(sent) == 2
    assert all("usage" not in p for p in sent)
    assert stream.usage() == Usage(5, 1, 6, estimated=False)


def test_usage_explicit_zero_is_a_report_not_missing():
    steps, stream = run(True, chunk("hello there"), chunk(None, "stop"), usage_chunk(usage(0, 0)))
    assert final_usage(steps) == usage(0, 0)
    assert stream.usage() == Usage(0, 0, 0, estimated=False)


def test_usage_total_tokens_left_out_is_the_sum():
    body = {"prompt_tokens": 4, "completion_tokens": 2}
    steps, _ = run(True, chunk("a"), chunk(None, "stop"), usage_chunk(body))
    assert final_usage(steps) == usage(4, 2)


@pytest.mark.parametrize(
    "body",
    [None, {}, {"prompt_tokens": 1}, {"prompt_tokens": True, "completion_tokens": 1}, "12"],
    ids=["null", "empty", "half", "bool", "string"],
)
def test_usage_what_is_not_a_report(body):
    assert read_report(body) is None


def test_usage_none_reported_is_estimated_on_the_joined_text_and_marked():
    steps, stream = run(True, chunk("Hel"), chunk("lo"), chunk(" world"), chunk(None, "stop"))
    assert final_usage(steps) == estimate_for("Hello world")
    assert stream.usage() == Usage(count_prompt(MESSAGES), 2, count_prompt(MESSAGES) + 2, True)


def test_usage_null_usage_fields_are_not_reports_and_keep_their_bytes():
    with_null = chunk("a", usage=None)
    steps, _ = run(True, with_null, chunk(None, "stop"))
    assert steps[0] == Forward(with_null)
    assert final_usage(steps)["estimated"] is True


def test_usage_estimate_then_report_report_wins():
    steps, _ = run(True, chunk("a"), chunk(None, "stop"), usage_chunk(usage(1, 1)))
    assert "estimated" not in final_usage(steps)


# The contract to the client.


def test_usage_not_asked_nothing_reaches_the_client():
    steps, _ = run(
        False, chunk("a", usage=usage(5, 1)), chunk(None, "stop", choice_usage=usage(5, 1))
    )
    assert len(payloads(steps)) == 2
    assert b"usage" not in b"".join(step.encode() for step in steps)
    assert isinstance(steps[-1], Finish)


def test_usage_chunks_without_usage_keep_their_bytes():
    first, last = chunk("a"), chunk(None, "stop")
    steps, _ = run(True, first, last, usage_chunk(usage(1, 1)))
    assert steps[:2] == [Forward(first), Forward(last)]


def test_usage_final_chunk_also_when_the_upstream_ends_without_done():
    stream = check(True)
    stream.feed(sse(chunk("a"), chunk(None, "stop")))
    steps = stream.end_of_stream()
    assert final_usage(steps) == estimate_for("a")


def test_usage_no_final_chunk_after_a_failure_but_partial_usage_is_kept():
    stream = check(True)
    stream.feed(sse(chunk("Hello"), chunk(" world", usage=usage(3, 1))))
    (step,) = stream.end_of_stream()
    assert isinstance(step, Fail)
    assert stream.usage() == Usage(3, 1, 4, estimated=False)


def test_usage_partial_estimate_counts_what_was_relayed():
    stream = check(False)
    stream.feed(sse(chunk("Hello"), chunk(" world")))
    stream.fail("upstream_reset", "fake: connection reset mid-stream")
    assert stream.usage() == Usage(count_prompt(MESSAGES), 2, count_prompt(MESSAGES) + 2, True)


@st.composite
def cut_stream(draw: st.DrawFn) -> tuple[list[str], list[bytes]]:
    alphabet = st.sampled_from(["a", " é", "日本", "🙂", "Hello", " world", "\n"])
    deltas = draw(st.lists(alphabet, min_size=1, max_size=20))
    wire = sse(*(chunk(delta) for delta in deltas), chunk(None, "stop"), b"[DONE]")
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    bounds = [0, *cuts, len(wire)]
    return deltas, [wire[a:b] for a, b in itertools.pairwise(bounds)]


@settings(derandomize=True, database=None, max_examples=100)
@given(cut_stream())
def test_usage_estimate_is_one_count_of_the_joined_text_at_any_wire_split(case):
    deltas, pieces = case
    stream = check(True)
    steps = [step for piece in pieces for step in stream.feed(piece)]
    assert final_usage(steps) == estimate_for("".join(deltas))


# Every shape a chunk may have, for the meter's fast path: it must relay each as the general
# path (search the usage, strip it, then take the text) does.
SHAPES: list[dict[str, Any]] = [
    {**META, "choices": [{"index": 0, "delta": {"content": "plain"}, "finish_reason": None}]},
    {**META, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "role"}}]},
    {**META, "choices": [{"index": 0, "delta": {"content": "top"}}], "usage": usage(1, 1)},
    {**META, "choices": [{"index": 0, "delta": {"content": "top null"}}], "usage": None},
    {**META, "choices": [{"index": 0, "delta": {"content": "in"}, "usage": usage(2, 2)}]},
    {**META, "choices": [{"index": 0, "delta": {"content": "in null"}, "usage": None}]},
    {**META, "choices": [{"index": 0, "delta": {}, "usage": usage(3, 3)}], "usage": usage(4, 4)},
    {**META, "choices": [{"index": 1, "delta": {"content": "one"}}, {"index": 0, "delta": {}}]},
    {**META, "choices": [{"index": 1, "delta": {"content": "x"}}, {"usage": usage(5, 5)}]},
    {**META, "choices": [], "usage": usage(6, 6)},
    {**META, "choices": []},
    {**META, "choices": None},
    {**META, "choices": "u"},
    {**META, "choices": {"usage": usage(7, 7)}},
    {**META, "choices": [7]},
    {**META, "choices": [["usage"]]},
    {"id": "other", "model": "n", "choices": [{"delta": {"content": "no meta"}}]},
    {"usage": usage(8, 8)},
    {},
]


def general_relay(meter: UsageMeter, document: dict[str, Any], data: bytes) -> bytes | None:
    """What `UsageMeter.relay` does, without its fast path: the reference."""
    for key in ("id", "created", "model"):
        if key in document:
            meter._metadata[key] = document[key]
    stripped = meter._strip_usage(document)
    if stripped is not None:
        if not stripped.get("choices"):
            return None
        document, data = stripped, usage_module._dumps(stripped)
    meter.counter.feed(document)
    return data


@pytest.mark.parametrize("order", [SHAPES, SHAPES[::-1]], ids=["forward", "backward"])
def test_usage_meter_relays_every_shape_as_its_general_path_does(order):
    fast, reference = UsageMeter(True, MESSAGES), UsageMeter(True, MESSAGES)
    for document in order:
        data = json.dumps(document).encode()
        relayed = fast.relay(json.loads(data), data)
        expected = general_relay(reference, json.loads(data), data)
        assert relayed == expected, document
        assert fast._metadata == reference._metadata
        assert fast.report == reference.report
        assert fast.counter.texts() == reference.counter.texts()
    assert fast.usage() == reference.usage()
    assert fast.final_chunk() == reference.final_chunk()


# Non-streaming.


def test_usage_non_streaming_report_is_forwarded_byte_for_byte():
    body = json.dumps({"choices": [], "usage": usage(3, 4)}, indent=1).encode()
    out, found = complete_answer(body, json.loads(body), MESSAGES)
    assert out == body
    assert found == Usage(3, 4, 7, estimated=False)


def test_usage_non_streaming_in_choice_is_moved_to_the_top():
    answer = {"choices": [{"index": 0, "message": {"content": "x"}, "usage": usage(0, 0)}]}
    out, found = complete_answer(json.dumps(answer).encode(), answer, MESSAGES)
    assert json.loads(out)["usage"] == usage(0, 0)
    assert "usage" not in json.loads(out)["choices"][0]
    assert found == Usage(0, 0, 0, estimated=False)


def test_usage_non_streaming_without_usage_gets_a_marked_estimate():
    message = {"role": "assistant", "content": "Hello world"}
    answer = {"id": "x", "choices": [{"index": 0, "message": message}], "usage": None}
    out, found = complete_answer(json.dumps(answer).encode(), answer, MESSAGES)
    assert json.loads(out)["usage"] == estimate_for("Hello world")
    assert found.estimated


# Config and the upstream request.

CONFIG = """
[timeouts]
first_byte = 1.0
idle = 1.0
total = 5.0

[retry]
max_attempts = 1

[providers.fake]
base_url = "http://fake.test/v1"
api_key_env = "KEY"
{extra}

[[routes]]
model = "*"
providers = ["fake"]
"""


def config(extra: str = "") -> Any:
    return parse_config(tomllib.loads(CONFIG.format(extra=extra)))


def test_usage_config_stream_options_defaults_to_true_and_parses_false():
    assert config().providers["fake"].stream_options is True
    assert config("stream_options = false").providers["fake"].stream_options is False


def test_usage_config_stream_options_must_be_a_bool():
    from streamproof.proxy.config import ConfigError

    with pytest.raises(
        ConfigError, match=r"providers\.fake\.stream_options: must be true or false"
    ):
        config('stream_options = "no"')


def test_usage_repo_config_marks_mistral_and_nvidia():
    from pathlib import Path

    from streamproof.proxy.config import load_config

    repo = load_config(Path(__file__).resolve().parent.parent / "config.toml")
    flags = {name: p.stream_options for name, p in repo.providers.items()}
    assert flags == {"kimi": True, "nvidia": False, "mistral": False}


class Upstream:
    def __init__(self, body: bytes, stream: bool = True) -> None:
        self.body = body
        self.stream = stream
        self.requests: list[dict[str, Any]] = []
        self.raw: list[bytes] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        self.raw.append(raw)
        self.requests.append(json.loads(raw))
        kind = "text/event-stream" if self.stream else "application/json"
        return httpx.Response(200, headers={"content-type": kind}, content=self.body)


async def post(upstream: Upstream, body: dict[str, Any], extra: str = "") -> httpx.Response:
    app = create_app(
        config(extra),
        {"KEY": "sk-usage"},
        rng=random.Random(0),
        transport=httpx.MockTransport(upstream),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
            return await http.post("/v1/chat/completions", content=json.dumps(body).encode())


def events(body: bytes) -> list[bytes]:
    return [part.removeprefix(b"data: ") for part in body[:-2].split(b"\n\n")]


ASKING = {
    "model": "m",
    "messages": MESSAGES,
    "stream": True,
    "stream_options": {"include_usage": True},
}


@pytest.mark.asyncio
async def test_usage_stream_options_removed_for_a_provider_that_rejects_it_and_still_honoured():
    upstream = Upstream(sse(chunk("Hello"), chunk(" world", "stop"), b"[DONE]"))
    response = await post(upstream, ASKING, "stream_options = false")
    (sent,) = upstream.requests
    assert "stream_options" not in sent
    assert sent["messages"] == MESSAGES
    sent_events = events(response.content)
    assert sent_events[-1] == b"[DONE]"
    assert json.loads(sent_events[-2])["usage"] == estimate_for("Hello world")


@pytest.mark.asyncio
async def test_usage_stream_options_forwarded_as_is_when_supported():
    upstream = Upstream(sse(chunk("a", "stop"), usage_chunk(usage(2, 1)), b"[DONE]"))
    response = await post(upstream, ASKING)
    assert upstream.raw == [json.dumps(ASKING).encode()]
    assert json.loads(events(response.content)[-2])["usage"] == usage(2, 1)


@pytest.mark.asyncio
async def test_usage_is_logged_once_per_request(caplog):
    upstream = Upstream(sse(chunk("a", "stop"), usage_chunk(usage(2, 1)), b"[DONE]"))
    with caplog.at_level(logging.INFO, logger="proxy"):
        response = await post(upstream, {**ASKING, "stream_options": None})
    assert b"usage" not in response.content
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat ")]
    assert len(lines) == 1
    assert "provider=fake" in lines[0]
    assert "usage prompt=2 completion=1 total=3 (reported)" in lines[0]


@pytest.mark.asyncio
async def test_usage_non_streaming_estimate_through_the_app():
    answer = {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world"},
                "finish_reason": "stop",
            }
        ],
    }
    upstream = Upstream(json.dumps(answer).encode(), stream=False)
    response = await post(upstream, {"model": "m", "messages": MESSAGES})
    assert response.json()["usage"] == estimate_for("Hello world")
