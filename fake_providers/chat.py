"""The well-behaved answer: OpenAI chat completions, streamed or whole, as a `Plan`.

Content is deterministic: a scenario with `chunks-N` always streams the same N deltas,
and every delta carries characters of one, two, three and four UTF-8 bytes, so that a
write boundary inside a character is never far away.
"""

from __future__ import annotations

import json
from typing import Any

from fake_providers import tokens
from fake_providers.plan import Frame, FrameKind, Plan
from fake_providers.scenario import EOLS, Scenario

CREATED = 1_700_000_000
VOCABULARY = (
    "Hello",
    " wörld",
    " —",
    " 你好",
    " 🙂",
    " ça",
    " naïve",
    " café",
    " 𝄞",
    " e\u0301",
    " 東京",
    " ok",
    " ∑",
    " 🇺🇳",
    " über",
    ",",
)


def deltas(count: int) -> list[str]:
    """The content deltas of an answer with `count` chunks."""
    return [VOCABULARY[k % len(VOCABULARY)] for k in range(count)]


def _dumps(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _usage(request: dict[str, Any], text: str) -> dict[str, int]:
    messages = request.get("messages")
    prompt = tokens.count_prompt(messages if isinstance(messages, list) else [])
    completion = tokens.count(text)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def answer(request: dict[str, Any], scenario: Scenario, request_id: str) -> Plan:
    """The plan of a correct answer to `request`, before any fault."""
    model = str(request.get("model", ""))
    eol = EOLS[scenario.eol]
    parts = deltas(scenario.chunks)
    if request.get("stream") is not True:
        document = {
            "id": request_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(parts)},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(request, "".join(parts)),
        }
        body = Frame(FrameKind.DOCUMENT, _dumps(document), "".join(parts))
        return Plan(status=200, content_type="application/json", frames=(body,), eol=eol)

    def chunk(kind: FrameKind, delta: dict[str, str], finish: str | None, text: str = "") -> Frame:
        payload = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return Frame(kind, b"data: " + _dumps(payload) + (eol * 2).encode(), text)

    frames = [chunk(FrameKind.ROLE, {"role": "assistant", "content": ""}, None)]
    frames += [chunk(FrameKind.CONTENT, {"content": part}, None, part) for part in parts]
    frames.append(chunk(FrameKind.FINISH, {}, "stop"))
    options = request.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        usage = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": _usage(request, "".join(parts)),
        }
        frames.append(Frame(FrameKind.USAGE, b"data: " + _dumps(usage) + (eol * 2).encode()))
    frames.append(Frame(FrameKind.DONE, b"data: [DONE]" + (eol * 2).encode()))
    return Plan(
        status=200,
        content_type="text/event-stream; charset=utf-8",
        frames=tuple(frames),
        extra_headers=(("cache-control", "no-cache"),),
        eol=eol,
    )
