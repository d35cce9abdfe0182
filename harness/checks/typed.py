"""Checks of typed streams (the Anthropic Messages and OpenAI Responses APIs), each judged
as the API's official SDK reads the answer (`harness.typed`, docs/verdicts.md)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from streamproof.fake_providers.plan import MESSAGES
from streamproof.harness.checks._words import _difference, _ending, _first
from streamproof.harness.transcript import DONE, INVALID, Transport
from streamproof.harness.typed import ENDS, ERROR_TYPES, Answer, TypedExchange, TypedTranscript
from streamproof.harness.verdict import Finding


def typed_answer_intact(x: TypedExchange) -> Finding:
    """What the client's SDK assembled is the upstream's answer exactly: text, reasoning
    (thinking, summary), signatures, tool calls and their arguments, the blocks or items
    in order, the stop reason."""
    got, want = x.answer_as_compared(), x.expected_answer
    problems = _differences(got, want)
    sdk = "anthropic" if x.api == MESSAGES else "openai"
    observed = "; ".join(problems[:3]) or (
        f"{len(want.text)} chars of text"
        + (f", {len(want.reasoning)} of reasoning" if want.reasoning else "")
        + (f", {len(want.tools)} tool call(s)" if want.tools else "")
        + f", stop {want.stop!r}, identical"
    )
    check = f"the answer the {sdk} SDK reads equals the upstream's"
    return Finding(not problems, check, observed, harm=bool(problems) and _accepted(x))


def _accepted(x: TypedExchange) -> bool:
    """The client's SDK read the answer to its end with no sign of a failure: whatever it
    holds, its caller takes as the upstream's whole answer (a difference is a harm)."""
    t, reading = x.transcript, x.reading
    if not t.streamed:
        return t.status == 200 and not reading.raised
    return bool(reading.end) and not reading.failed


def _differences(got: Answer, want: Answer) -> list[str]:
    """What differs, in words, the text first."""
    said = [
        f"{name}: {_difference(getattr(want, name), getattr(got, name))}"
        for name in ("text", "reasoning")
        if getattr(got, name) != getattr(want, name)
    ]
    if got.signatures != want.signatures:
        said.append(
            f"thinking signatures {_signatures(got.signatures)} "
            f"(upstream {_signatures(want.signatures)})"
        )
    if got.tools != want.tools:
        said.append(f"tool calls {_calls(got.tools)} (upstream {_calls(want.tools)})")
    if got.blocks != want.blocks:
        said.append(f"blocks {list(got.blocks)} (upstream {list(want.blocks)})")
    if got.stop != want.stop:
        said.append(f"stop {got.stop!r} (upstream {want.stop!r})")
    return said


def _signatures(signatures: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"{len(s)} chars" if s else "empty" for s in signatures) + "]"


def _calls(tools: tuple[tuple[str, str, str], ...]) -> str:
    if not tools:
        return "none"
    return ", ".join(f"{name}({len(arguments)} chars of arguments)" for _, name, arguments in tools)


def typed_nothing_replayed(x: TypedExchange) -> Finding:
    """What the client's SDK read is a prefix of what the upstream wrote once: no text or
    reasoning twice."""
    got = x.reading.answer
    text, reasoning, _ = x.upstream_written()
    if text.startswith(got.text) and reasoning.startswith(got.reasoning):
        return Finding(
            True, "no content replayed", f"the client got the first {len(got.text)} chars"
        )
    wrong = got.text if not text.startswith(got.text) else got.reasoning
    return Finding(
        False, "no content replayed", _difference(text if wrong is got.text else reasoning, wrong)
    )


def typed_ends_once(x: TypedExchange) -> Finding:
    """The stream ends as the API ends it: its end event once, as the last event (a ping
    after it aside), and the body's end."""
    t, api = x.transcript, x.api
    # A `[DONE]` after the end is where the openai SDK stops reading, and an event the
    # anthropic SDK skips: harmless to both (same_events notes it).
    kinds = [_kind(kind, payload) for kind, payload in t.typed_events if payload is not DONE]
    ends = [i for i, kind in enumerate(kinds) if kind in ENDS[api]]
    last = max((i for i, kind in enumerate(kinds) if kind != "ping"), default=-1)
    ok = len(ends) == 1 and ends[0] == last and t.transport is Transport.EOF
    ok = ok and x.reading.end != "" and not x.reading.failed
    name = " or ".join(sorted(ENDS[api]))
    observed = f"{len(ends)} end event(s), last event {kinds[last] if kinds else '(none)'!r}"
    return Finding(ok, f"one {name}, last", observed + _ending(t))


def events_typed(t: TypedTranscript) -> Finding:
    """Every event's `event:` line names the type its payload says (the anthropic SDK
    dispatches on it; the openai SDK does not, but the API sends it)."""
    wrong = [
        f"{payload.get('type')} as {kind!r}"
        for kind, payload in t.typed_events
        if isinstance(payload, dict) and payload.get("type") != kind
    ]
    observed = f"{len(wrong)} of {len(t.typed_events)} events without their type" + _first(wrong)
    # A line an SDK needed shows as an answer lost; any other is NON-STRICT, even in a MUST.
    return Finding(not wrong, "each event's `event:` line names its type", observed, should=True)


def same_events(x: TypedExchange) -> Finding:
    """The client got the upstream's events as it wrote them: the same types, payloads and
    order (`ping`s aside, JSON compared as values: re-serialising is allowed)."""
    client = [_event(kind, payload) for kind, payload in x.transcript.typed_events]
    upstream = [_event(e.event, _json(e.data)) for e in x.upstream_events]
    client = [e for e in client if e[0] != "ping"]
    upstream = [e for e in upstream if e[0] != "ping"]
    first = next(
        (i for i, (a, b) in enumerate(zip(client, upstream, strict=False)) if a != b),
        min(len(client), len(upstream)),
    )
    ok = client == upstream
    if ok:
        observed = f"{len(client)} events, as the upstream wrote them"
    elif first < min(len(client), len(upstream)):
        observed = (
            f"event {first + 1} differs: {client[first][0]!r} "
            f"{_changed(client[first][1], upstream[first][1])} (upstream {upstream[first][0]!r})"
        )
    else:
        observed = f"{len(client)} events, the upstream wrote {len(upstream)}"
    return Finding(ok, "the upstream's events, in order, each as it was written", observed)


def pings_forwarded(x: TypedExchange) -> Finding:
    """Every `ping` the upstream sent reached the client (a proxy may add its own): what a
    careful relay does (a client's keep-alive), though the SDK skips them."""
    sent = sum(1 for e in x.upstream_events if e.event == "ping")
    got = sum(1 for kind, _ in x.transcript.typed_events if kind == "ping")
    observed = f"{got} of {sent} pings"
    return Finding(got >= sent, "the upstream's pings forwarded", observed, should=True)


def sequence_numbers_increase(t: TypedTranscript) -> Finding:
    """The events' `sequence_number`s increase, event after event."""
    numbers = [
        payload["sequence_number"]
        for _, payload in t.typed_events
        if isinstance(payload, dict) and isinstance(payload.get("sequence_number"), int)
    ]
    back = [f"{a} then {b}" for a, b in itertools.pairwise(numbers) if b <= a]
    observed = f"{len(numbers)} numbered events" + (
        f", {len(back)} out of order; first: {back[0]}" if back else ", increasing"
    )
    return Finding(bool(numbers) and not back, "sequence numbers increasing", observed)


def typed_usage_is(x: TypedExchange) -> Finding:
    """The usage the client's SDK reports is the upstream's, exactly: for Messages
    `input_tokens` and the last cumulative `output_tokens` (never a sum); for Responses
    input, output (with reasoning) and total tokens, from `response.completed`."""
    got, want = x.reading.usage, x.expected[1]
    if got is None:
        return Finding(
            False,
            "usage as reported",
            f"no usage reached the client{_ending(x.transcript)}",
            harm=bool(want) and _accepted(x),
        )
    differ = [
        f"{key} {got.get(key)} (upstream {value})"
        for key, value in want.items()
        if got.get(key) != value
    ]
    observed = "; ".join(differ) or ", ".join(f"{key} {value}" for key, value in want.items())
    return Finding(not differ, "usage as reported", observed, harm=bool(differ) and _accepted(x))


def api_error_event(x: TypedExchange) -> Finding:
    """One in-band error, in the API's own shape, as the last event, and no end after it:
    for Messages `event: error` with `{"type": "error", "error": {"type", "message"}}`;
    for Responses an `error` event (`{"type": "error", "message", ...}`) or
    `response.failed`. The upstream's own error message, if it gave one, kept in it."""
    t = x.transcript
    errors = t.error_events
    shaped = [
        timed for timed, payload in t.payloads if _in_api_shape(x.api, timed.event.event, payload)
    ]
    # A `[DONE]` after it is where the openai SDK stops, an event the anthropic SDK skips.
    events = [timed for timed, payload in t.payloads if payload is not DONE]
    last = events[-1].event if events else None
    ended = x.reading.end != ""
    ok = len(errors) == 1 and len(shaped) == 1 and shaped[0].event == last and not ended
    said = _upstream_error_message(x)
    kept = said is None or any(said in timed.event.data for timed in errors)
    shape = "Anthropic's" if x.api == MESSAGES else "the Responses API's"
    observed = (
        f"{len(errors)} error event(s), {len(shaped)} in {shape} shape"
        + (f", then {x.reading.end}" if ended else "")
        + ("" if kept else f", the upstream's message {said!r} lost")
        + _ending(t)
    )
    return Finding(ok and kept, f"one error event in {shape} shape, last", observed)


def typed_fault_visible(x: TypedExchange) -> Finding:
    """A broken upstream payload is never hidden: the client's SDK raises on it or is
    shown an error, or the stream does not end as a whole one — never a clean-looking
    answer with a hole in it."""
    reading = x.reading
    hidden = (
        bool(reading.end) and not reading.failed and x.answer_as_compared() != x.expected_answer
    )
    got, want = reading.answer.text, x.expected_answer.text
    observed = (
        f"{reading.end} with {len(got)} of {len(want)} chars and no sign of the broken payload"
        if hidden
        else f"outcome {x.transcript.outcome.value}"
        + (f", the SDK raised on {reading.raised}" if reading.raised else "")
        + (
            f", error event(s) {list(reading.errors)}"
            if reading.errors and not reading.raised
            else ""
        )
    )
    return Finding(not hidden, "the broken payload is not hidden", observed)


def _in_api_shape(api: str, kind: str, payload: Any) -> bool:
    if not isinstance(payload, dict):
        return False
    if api == MESSAGES:
        error = payload.get("error")
        return (
            kind == "error"
            and payload.get("type") == "error"
            and isinstance(error, dict)
            and isinstance(error.get("type"), str)
            and isinstance(error.get("message"), str)
        )
    if payload.get("type") == "error":
        return isinstance(payload.get("message"), str)
    response = payload.get("response")
    error = response.get("error") if isinstance(response, dict) else None
    return (
        payload.get("type") == "response.failed"
        and isinstance(error, dict)
        and isinstance(error.get("message"), str)
    )


def _upstream_error_message(x: TypedExchange) -> str | None:
    """The message of the in-band error the upstream wrote, if it wrote one."""
    for event in x.upstream_events:
        payload = _json(event.data)
        if not isinstance(payload, dict):
            continue
        if event.event != "error" and payload.get("type") not in ERROR_TYPES:
            continue
        response = payload.get("response")
        nested = response.get("error") if isinstance(response, dict) else None
        for found in (payload, payload.get("error"), nested):
            if isinstance(found, dict) and isinstance(found.get("message"), str):
                return str(found["message"])
    return None


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return INVALID


def _kind(kind: str, payload: Any) -> str:
    """An event's type: its payload's, else its `event:` line's."""
    said = payload.get("type") if isinstance(payload, dict) else None
    return said if isinstance(said, str) else kind


def _event(kind: str, payload: Any) -> tuple[str, Any]:
    return _kind(kind, payload), payload


def _changed(got: Any, want: Any) -> str:
    """Which top-level fields of a payload changed, in words."""
    if not isinstance(got, dict) or not isinstance(want, dict):
        return "with another payload"
    keys = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
    return f"with {', '.join(keys)} changed" if keys else "in another order"
