"""Fuzzing: the harness's SSE decoder, and the reference proxy's handling of bad requests.

The examples per test come from `STREAMPROOF_FUZZ_SSE` and `STREAMPROOF_FUZZ_REQUESTS`
(200 each by default, so the ordinary run stays quick; `make fuzz` runs 100,000 and 10,000):

- any bytes, structured like SSE or not, decode to the same events, the same last event id
  and the same "unterminated" verdict whether fed whole or cut at any points, and the
  decoder never raises;
- any request a client can send the proxy over HTTP — any method, path, headers and body,
  JSON or not, nested or not, valid UTF-8 or not — is answered, within a bound, with a 2xx
  or with a 4xx whose body is an OpenAI-style JSON error: never a 5xx, never a hang.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproof.fake_providers import FakeProvider
from streamproof.harness.sse import SSEDecoder
from streamproof.harness.targets import BUNDLED, ProcessTarget


def _fuzz(variable: str) -> settings:
    examples = int(os.environ.get(variable, "200"))
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=examples <= 1000,  # the ordinary run is the same every time
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# SSE-ish material: the grammar's pieces, and the bytes that are easy to get wrong.
FIELDS = [b"data", b"event", b"id", b"retry", b"", b":", b": comment", b"dat", b"\xef\xbb\xbf"]
ENDINGS = [b"\n", b"\r", b"\r\n", b"\n\n", b"\r\n\r\n", b""]
VALUES = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"[DONE]", b"{}", b"\xf0\x9f\x99\x82", b"\xe6\x9d\xb1", b"\xff", b"123"]),
    st.text(max_size=16).map(str.encode),
)


@st.composite
def sse_like(draw: st.DrawFn) -> bytes:
    lines = draw(
        st.lists(
            st.tuples(
                st.sampled_from(FIELDS),
                st.sampled_from([b": ", b":", b""]),
                VALUES,
                st.sampled_from(ENDINGS),
            ),
            max_size=30,
        )
    )
    return b"".join(name + colon + value + end for name, colon, value, end in lines)


def _decode(stream: bytes, cuts: list[int]) -> tuple[object, ...]:
    decoder = SSEDecoder()
    events = []
    start = 0
    for cut in [*cuts, len(stream)]:
        events += decoder.feed(stream[start:cut])
        start = cut
    events += decoder.close()
    return tuple(events), decoder.last_event_id, decoder.unterminated


@_fuzz("STREAMPROOF_FUZZ_SSE")
@given(stream=st.one_of(sse_like(), st.binary(max_size=400)), data=st.data())
def test_sse_decoder_same_events_at_any_cuts(stream: bytes, data: st.DataObject) -> None:
    cuts = sorted(
        data.draw(st.sets(st.integers(0, len(stream)), max_size=12), label="cuts"),
    )
    assert _decode(stream, cuts) == _decode(stream, [])


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of the reference proxy, run as the suites run it, before the fake provider."""
    with FakeProvider() as fake:
        target = ProcessTarget(BUNDLED, fake.base_url, Path(tmp_path_factory.mktemp("proxy")))
        target.start()
        try:
            with httpx.Client(base_url=target.base_url, timeout=httpx.Timeout(10.0)) as client:
                yield client
        finally:
            target.stop()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
CHAT_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(JSON, st.text(max_size=12)),
        "messages": st.one_of(JSON, st.lists(JSON, max_size=3)),
        "stream": JSON,
        "stream_options": JSON,
        "message": JSON,
    },
)
BODIES = st.one_of(
    CHAT_FIELDS.map(lambda body: json.dumps(body).encode()),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth),
    st.integers(1, 5_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.just(b'{"model": "\xff", "messages": []}'),
)
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=16)
HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
HEADERS = st.dictionaries(
    st.one_of(
        TOKEN.map(lambda name: "x-" + name),
        st.sampled_from(["content-type", "content-encoding", "accept", "authorization"]),
    ),
    HEADER_VALUE,
    max_size=4,
)
PATHS = st.one_of(
    st.sampled_from(["/v1/chat/completions", "/api/chat", "/v1/models", "/health", "/metrics"]),
    TOKEN.map(lambda name: "/" + name),
    st.sampled_from(["/v1/chat/completions/", "//v1/chat/completions", "/%00", "/v1/%2e%2e/x"]),
)
METHODS = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"])


@_fuzz("STREAMPROOF_FUZZ_REQUESTS")
@given(method=METHODS, path=PATHS, headers=HEADERS, body=BODIES)
def test_proxy_answers_any_request_without_a_5xx(
    proxy: httpx.Client, method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    response = proxy.request(method, path, headers=headers, content=body)
    status = response.status_code
    assert status < 500, f"{method} {path} {headers}: {status} {response.text[:200]}"
    if status >= 400:
        error = response.json().get("error")
        assert isinstance(error, dict), response.text[:200]
        assert isinstance(error.get("message"), str)
