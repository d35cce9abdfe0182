"""The proxy's API surface for bad input: OpenAI-style JSON 4xx, never a 500 or a hang.

These run the app in process through httpx.ASGITransport (which buffers bodies; fine here,
no streaming behaviour is being checked).
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from streamproof.proxy.app import create_app
from streamproof.proxy.config import parse_config
from streamproof.proxy.errors import ConfigError
from streamproof.proxy.validation import MAX_BODY_BYTES

CONFIG = parse_config(
    tomllib.loads(
        """
        [providers.fake]
        base_url = "http://127.0.0.1:9/v1"
        api_key_env = "STREAMPROOF_UPSTREAM_KEY"
        models = { "fake-small" = "small" }

        [providers.other]
        base_url = "http://127.0.0.1:9/v1"
        api_key_env = "STREAMPROOF_OTHER_KEY"
        models = { "other-large" = "large" }

        [[routes]]
        model = "fake-*"
        providers = ["fake"]

        [[routes]]
        model = "other-*"
        providers = ["other"]
        """
    )
)
ENVIRON = {"STREAMPROOF_UPSTREAM_KEY": "sk-test", "STREAMPROOF_OTHER_KEY": "sk-other"}


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(CONFIG, ENVIRON))
    return httpx.AsyncClient(transport=transport, base_url="http://proxy")


async def post(content: bytes, **kwargs: object) -> httpx.Response:
    async with client() as http:
        return await http.post("/v1/chat/completions", content=content, **kwargs)  # type: ignore[arg-type]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["type"]
    return error


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"{not json", "invalid_json", id="invalid-json"),
        pytest.param(b"", "invalid_json", id="empty"),
        pytest.param(b"\xff\xfe{}", "invalid_json", id="not-utf8"),
        pytest.param(b"[]", "invalid_body", id="array"),
        pytest.param(b'"text"', "invalid_body", id="string"),
        pytest.param(b'{"messages": []}', "invalid_model", id="no-model"),
        pytest.param(b'{"model": 3, "messages": []}', "invalid_model", id="model-not-str"),
        pytest.param(b'{"model": "fake-small"}', "invalid_messages", id="no-messages"),
        pytest.param(b'{"model": "fake-small", "messages": {}}', "invalid_messages", id="msgs"),
        pytest.param(
            b'{"model": "fake-small", "messages": [], "stream": "yes"}',
            "invalid_stream",
            id="stream-str",
        ),
        pytest.param(
            b'{"model": "fake-small", "messages": [], "stream": 1}', "invalid_stream", id="num"
        ),
    ],
)
async def test_validation_bad_body_is_400_json(body, code):
    error = assert_error(await post(body), 400, code)
    assert error["type"] == "invalid_request_error"


@pytest.mark.asyncio
async def test_validation_unrouted_model_is_404_json():
    response = await post(b'{"model": "gpt-4o", "messages": []}')
    error = assert_error(response, 404, "model_not_found")
    assert "gpt-4o" in error["message"]


@pytest.mark.asyncio
async def test_validation_oversized_body_is_413_json():
    body = b'{"model": "fake-small", "messages": ["' + b"x" * MAX_BODY_BYTES + b'"]}'
    assert_error(await post(body), 413, "request_too_large")


@pytest.mark.asyncio
async def test_validation_oversized_body_without_content_length_is_413_json():
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * (1024 * 1024)

    async with client() as http:
        response = await http.post("/v1/chat/completions", content=chunks())
    assert_error(response, 413, "request_too_large")


def test_validation_unset_key_is_a_startup_error_naming_the_variable():
    with pytest.raises(
        ConfigError, match=r"providers\.other\.api_key_env: .*STREAMPROOF_OTHER_KEY"
    ):
        create_app(CONFIG, {"STREAMPROOF_UPSTREAM_KEY": "sk-test"})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/chat/completions"),
        ("PUT", "/v1/chat/completions"),
        ("POST", "/v1/models"),
        ("DELETE", "/health"),
    ],
)
async def test_validation_wrong_method_is_405_json(method, path):
    async with client() as http:
        response = await http.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert "allow" in response.headers


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path", ["/index.html", "/v1/completions", "/v1/chat/completions/x", "/v2/models"]
)
async def test_validation_unknown_path_is_404_json(path):
    async with client() as http:
        response = await http.get(path)
    assert_error(response, 404, "not_found")


@pytest.mark.asyncio
async def test_models_lists_configured_model_names():
    async with client() as http:
        response = await http.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in body["data"]] == [
        ("fake-small", "model", "fake"),
        ("other-large", "model", "other"),
    ]


@pytest.mark.asyncio
async def test_health_is_ok():
    async with client() as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["success_rate"] is None  # no requests yet: no rate, no division
