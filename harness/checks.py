"""Checks: each compares what the client saw (A) with what the upstream did (B).

A check returns a `Finding`, never raises and never looks inside the proxy: that is what
lets one case run against any proxy. The words in `observed` are what a reader of the
report sees, so they say what happened, with numbers.
"""

from __future__ import annotations

import time
from typing import Any

from fake_providers import Attempt
from harness import tokens
from harness.sut import Exchange
from harness.transcript import DONE, Outcome, Transcript
from harness.verdict import Finding


def status_is(t: Transcript, expected: int) -> Finding:
    return Finding(t.status == expected, f"status {expected}", f"status {t.status}")


def is_event_stream(t: Transcript) -> Finding:
    return content_type_is(t, "text/event-stream")


def payloads_are_json_objects(t: Transcript) -> Finding:
    bad = [
        timed.event.data[:60]
        for timed, payload in t.payloads
        if payload is not DONE and not isinstance(payload, dict)
    ]
    observed = f"{len(bad)} of {len(t.payloads)} data payloads are not JSON objects"
    return Finding(not bad, "each data payload is one JSON object", observed + _first(bad))


def ends_with_single_done(t: Transcript) -> Finding:
    datas = [timed.event.data for timed in t.events]
    last = datas[-1] if datas else "(no events)"
    ok = t.done_count == 1 and last == "[DONE]" and t.transport.value == "eof"
    observed = f"{t.done_count} [DONE], last event {last[:40]!r}, outcome {t.outcome.value}"
    return Finding(ok, "exactly one [DONE], last", observed)


def content_intact(x: Exchange) -> Finding:
    """The assembled content is exactly the upstream's: nothing lost, added or reordered."""
    got, want = x.transcript.content(), x.expected_content
    return Finding(got == want, "content equals the upstream's", _difference(want, got))


def answer_intact(x: Exchange) -> Finding:
    """Every choice's content, tool calls and finish_reason are exactly the upstream's."""
    want, t = x.expected, x.transcript
    problems: list[str] = []
    for index, content in sorted(want.content.items()):
        if t.content(index) != content:
            problems.append(f"choice {index}: {_difference(content, t.content(index))}")
        calls = [(name, arguments) for _, name, arguments in t.tool_calls(index)]
        wanted = [(name, arguments) for _, name, arguments in want.tool_calls.get(index, ())]
        if calls != wanted:
            problems.append(
                f"choice {index}: tool calls {_calls(calls)} (upstream {_calls(wanted)})"
            )
        if t.finish_reason(index) != want.finish_reasons.get(index):
            problems.append(
                f"choice {index}: finish_reason {t.finish_reason(index)!r} "
                f"(upstream {want.finish_reasons.get(index)!r})"
            )
    extra = set(t.choice_indices) - set(want.content)
    if extra:
        problems.append(f"choices the upstream never sent: {sorted(extra)}")
    choices = len(want.content)
    observed = "; ".join(problems[:3]) or (
        f"{choices} choice(s), {sum(len(c) for c in want.content.values())} chars"
        + (
            f", {sum(len(c) for c in want.tool_calls.values())} tool call(s)"
            if any(want.tool_calls.values())
            else ""
        )
        + ", identical"
    )
    return Finding(not problems, "answer equals the upstream's", observed)


def _calls(calls: list[tuple[str, str]]) -> str:
    if not calls:
        return "none"
    return ", ".join(f"{name}({len(arguments)} chars of arguments)" for name, arguments in calls)


def same_event_sequence(runs: dict[str, Transcript]) -> Finding:
    """Every run delivered the same sequence of (choice, delta) events."""
    sequences = {name: t.delta_sequence() for name, t in runs.items()}
    first_name, first = next(iter(sequences.items()))
    differ = [name for name, sequence in sequences.items() if sequence != first]
    observed = (
        f"{len(first)} deltas, the same in all {len(runs)} runs"
        if not differ
        else f"{', '.join(differ)} differ from {first_name} "
        f"({', '.join(str(len(sequences[n])) for n in differ)} vs {len(first)} deltas)"
    )
    return Finding(not differ and bool(first), "same event sequence at every split", observed)


def role_announced(t: Transcript) -> Finding:
    """Every choice's deltas announce `role: assistant` (the first chunk of each does)."""
    roles = {
        choice.get("index", 0)
        for _, chunk in t.chat_chunks
        for choice in chunk["choices"]
        if isinstance(choice, dict)
        and isinstance(choice.get("delta"), dict)
        and choice["delta"].get("role") == "assistant"
    }
    missing = sorted(set(t.choice_indices) - roles)
    ok = bool(t.choice_indices) and not missing
    observed = (
        f"no role for choice(s) {missing}" if missing else f"{len(roles)} choice(s) with a role"
    )
    return Finding(ok, "role assistant announced", observed)


def nothing_replayed(x: Exchange) -> Finding:
    """What the client got is a prefix of what the upstream sent once: nothing twice."""
    got, want = x.transcript.content(), x.upstream_content
    if want.startswith(got):
        return Finding(True, "no content replayed", f"client got the first {len(got)} chars")
    return Finding(False, "no content replayed", _difference(want, got))


def not_dressed_up(t: Transcript) -> Finding:
    """A failed stream must not look finished: no `[DONE]`, no invented finish_reason."""
    reasons = [reason for reason in t.finish_reasons if reason != "error"]  # "error" is honest
    ok = t.done_count == 0 and not reasons
    observed = (
        f"{t.done_count} [DONE], finish reasons {reasons or 'none'}, outcome {t.outcome.value}"
    )
    return Finding(ok, "no [DONE] and no finish_reason after a failure", observed)


def fault_visible(x: Exchange) -> Finding:
    """A broken upstream payload is never hidden: the client sees it, an error event, or a
    stream that does not end cleanly — never a clean-looking answer with a hole in it."""
    t = x.transcript
    bad = [p for _, p in t.payloads if p is not DONE and not isinstance(p, dict)]
    hole = t.content() != x.expected_content
    hidden = t.outcome is Outcome.DONE and hole and not bad and not t.error_events
    observed = (
        f"a clean end with {len(t.content())} of {len(x.expected_content)} chars and no sign "
        "of the broken payload"
        if hidden
        else f"outcome {t.outcome.value}, {len(t.error_events)} error event(s), "
        f"{len(bad)} invalid payload(s) forwarded"
    )
    return Finding(not hidden, "the broken payload is not hidden", observed)


def openai_error_event(t: Transcript) -> Finding:
    """Exactly one in-band error, in the OpenAI shape `{"error": {"message": ...}}`, last."""
    errors = t.error_events
    shaped = [
        timed
        for timed, payload in t.payloads
        if isinstance(payload, dict)
        and isinstance(payload.get("error"), dict)
        and isinstance(payload["error"].get("message"), str)
    ]
    last = t.events[-1].event if t.events else None
    ok = len(errors) == 1 and len(shaped) == 1 and shaped[0].event == last and t.done_count == 0
    observed = (
        f"{len(errors)} error event(s), {len(shaped)} in the OpenAI shape, "
        f"{t.done_count} [DONE]{_ending(t)}"
    )
    return Finding(ok, 'one {"error": {...}} event, last, no [DONE]', observed)


def single_error_event(t: Transcript) -> Finding:
    """Exactly one in-band error event, and it is the last event of the stream."""
    errors, events = t.error_events, [timed.event for timed in t.events]
    last_is_error = bool(errors) and events[-1] == errors[-1].event
    ok = len(errors) == 1 and last_is_error
    observed = f"{len(errors)} error event(s){_ending(t)}"
    if errors and not last_is_error:
        observed += ", events after the error"
    return Finding(ok, "one in-band error event, last", observed)


def ended_within(t: Transcript, since: float, seconds: float) -> Finding:
    """The stream was over (by the proxy's doing) no later than `seconds` after `since`."""
    what = f"stream over within {seconds:.2f} s"
    if t.ended_at is None or t.outcome is Outcome.TIMED_OUT:
        return Finding(False, what, f"the client gave up waiting{_ending(t)}")
    took = t.ended_at - since
    return Finding(took <= seconds, what, f"over after {took:.3f} s{_ending(t)}")


def http_error(t: Transcript, statuses: set[int]) -> Finding:
    """A real error status with an OpenAI-style JSON error body, not a 200."""
    body = t.json_body
    shaped = (
        isinstance(body, dict)
        and isinstance(body.get("error"), dict)
        and isinstance(body["error"].get("message"), str)
    )
    ok = t.status in statuses and shaped
    wanted = _statuses(statuses)
    observed = f"status {t.status}, body {'is' if shaped else 'is not'} a JSON error object"
    return Finding(ok, f"status {wanted} with a JSON error body", observed)


def attempts_exactly(x: Exchange, count: int) -> Finding:
    made = len(x.attempts)
    return Finding(made == count, f"upstream asked {count} time(s)", f"{made} attempt(s)")


def content_type_is(t: Transcript, expected: str) -> Finding:
    kind = t.headers.get("content-type", "")
    ok = kind.split(";")[0].strip().lower() == expected
    return Finding(ok, f"content-type {expected}", f"content-type {kind or '(none)'}")


def attempts_at_least(x: Exchange, count: int) -> Finding:
    made = len(x.attempts)
    return Finding(made >= count, f"upstream asked {count}+ times", f"{made} attempt(s)")


def upstream_released(x: Exchange, left: float, within: float, watch: float) -> Finding:
    """After the client left, the proxy hung up on the upstream within `within` seconds and
    started no new attempt for the `watch` seconds after the client left."""
    what = f"upstream closed within {within:.2f} s, no new attempt"
    before = sum(1 for a in x.attempts if a.received_at <= left)
    closed = x.journal.wait_for(
        lambda j: all(a.peer_closed_at is not None or a.ending for a in j.attempts),
        max(0.0, left + within - time.perf_counter()),
    )
    attempts = x.attempts
    if not closed or not attempts:
        return Finding(False, what, f"upstream still open {within:.2f} s after the client left")
    last = attempts[-1]
    took = (last.peer_closed_at or last.ended_at or left) - left
    # Negative evidence needs a window: any attempt made after the client left is a leak.
    retried = x.journal.wait_for(
        lambda j: len(j.attempts) > before, max(0.0, left + watch - time.perf_counter())
    )
    if retried:
        made = len(x.attempts) - before
        return Finding(False, what, f"{made} new attempt(s) after the client left")
    return Finding(took <= within, what, f"closed {took:.3f} s after the client left")


def delivered_incrementally(x: Exchange) -> Finding:
    """The first content reached the client before the upstream had written its last byte."""
    streamed, content = x.streamed, x.transcript.content_events()
    if streamed is None or streamed.last_write_at is None or not content:
        return Finding(False, "content forwarded as it arrives", f"nothing streamed{_ending(x)}")
    lead = streamed.last_write_at - content[0].at
    return Finding(
        lead > 0,
        "content forwarded as it arrives",
        f"first content {abs(lead) * 1000:.0f} ms {'before' if lead > 0 else 'after'} "
        "the upstream's last write",
    )


def no_content_encoding(t: Transcript) -> Finding:
    encoding = t.headers.get("content-encoding", "identity")
    return Finding(encoding == "identity", "no content encoding", f"content-encoding {encoding}")


def finish_reasons_are(t: Transcript, expected: list[str]) -> Finding:
    reasons = t.finish_reasons
    return Finding(reasons == expected, f"finish reasons {expected}", f"finish reasons {reasons}")


def retried_after(x: Exchange, seconds: float) -> Finding:
    """The second attempt came no sooner than `seconds` after the first (10 ms slack)."""
    attempts = x.attempts
    if len(attempts) < 2:
        return Finding(False, f"retried after {seconds:g} s", f"{len(attempts)} attempt(s)")
    gap = attempts[1].received_at - attempts[0].received_at
    return Finding(
        gap >= seconds - 0.01, f"retried after {seconds:g} s", f"retried after {gap:.3f} s"
    )


def message_content_intact(x: Exchange) -> Finding:
    """A non-streaming answer's message content is exactly the upstream's."""
    got = x.transcript.content()
    return Finding(
        got == x.expected_content,
        "message content equals the upstream's",
        _difference(x.expected_content, got),
    )


def header_absent(t: Transcript, name: str) -> Finding:
    value = t.headers.get(name.lower())
    return Finding(value is None, f"no {name} header", f"{name}: {value or '(none)'}")


def charset_is_utf8(t: Transcript) -> Finding:
    """Event streams are always UTF-8; a charset parameter, if any, must say so."""
    kind = t.headers.get("content-type", "")
    params = dict(part.strip().lower().split("=", 1) for part in kind.split(";")[1:] if "=" in part)
    charset = params.get("charset", "").strip('"')
    ok = charset in ("", "utf-8", "utf8")
    return Finding(ok, "charset absent or utf-8", f"content-type {kind or '(none)'}")


def chunk_objects(t: Transcript) -> Finding:
    """Every chat chunk says `"object": "chat.completion.chunk"`."""
    objects = [str(chunk.get("object")) for _, chunk in t.chat_chunks]
    wrong = [o for o in objects if o != "chat.completion.chunk"]
    observed = f"{len(wrong)} of {len(objects)} chunks with another object{_first(wrong)}"
    return Finding(bool(objects) and not wrong, "object chat.completion.chunk", observed)


def metadata_preserved(x: Exchange) -> Finding:
    """Every chunk keeps the upstream's `id`, `model` and `created`."""
    want = x.upstream_metadata
    if want is None:
        return Finding(False, "chunk metadata preserved", f"nothing streamed{_ending(x)}")
    changed = sorted(
        {
            f"{key} {chunk.get(key)!r} (upstream {value!r})"
            for _, chunk in x.transcript.chat_chunks
            for key, value in want.items()
            if chunk.get(key) != value
        }
    )
    observed = f"{len(x.transcript.chat_chunks)} chunks" + (
        f"; changed: {'; '.join(changed[:3])}" if changed else ", id/model/created as sent"
    )
    return Finding(not changed, "chunk metadata preserved", observed)


def paced_like_upstream(x: Exchange, tolerance: float) -> Finding:
    """Each content event reached the client within `tolerance` s of the upstream's write."""
    streamed = x.streamed
    client = x.transcript.content_events()
    if streamed is None or not client:
        return Finding(False, "events forwarded promptly", f"nothing streamed{_ending(x)}")
    written = event_write_times(streamed)
    content_frames = [t for t, delta in zip(written, streamed.frame_deltas, strict=False) if delta]
    lags = [c.at - w for c, w in zip(client, content_frames, strict=False)]
    worst = max(lags)
    return Finding(
        worst <= tolerance,
        f"each event forwarded within {tolerance * 1000:.0f} ms",
        f"worst lag {worst * 1000:.0f} ms over {len(lags)} events",
    )


def event_write_times(attempt: Attempt) -> list[float]:
    """When each whole event of an attempt was written (the write that completed it)."""
    times, done, frames = [], 0, iter(attempt.frame_ends)
    end = next(frames, None)
    for at, size in attempt.writes:
        done += size
        while end is not None and end <= done:
            times.append(at)
            end = next(frames, None)
    return times


def ends_on_event_boundary(t: Transcript) -> Finding:
    """The body does not end inside an event that a client would never dispatch."""
    return Finding(
        not t.unterminated_tail,
        "ends on an event boundary",
        "unterminated final event" if t.unterminated_tail else "every event terminated",
    )


USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _figures(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if usage is None else {key: usage.get(key) for key in USAGE_FIELDS}


def usage_is(t: Transcript, want: dict[str, int], what: str = "usage as reported") -> Finding:
    """The last usage the client saw carries exactly these figures (wherever it sat)."""
    seen = t.usages()
    last = _figures(seen[-1][1]) if seen else None
    observed = f"last usage {last} (upstream {want})" if seen else "no usage reached the client"
    return Finding(last == _figures(want), what, observed)


def usage_in_openai_shape(t: Transcript) -> Finding:
    """One usage chunk with `choices: []`, right before [DONE]; no usage on other chunks."""
    seen = t.usages()
    datas = [timed.event.data for timed in t.events]
    finals = [
        i
        for i, (timed, p) in enumerate(t.payloads)
        if isinstance(p, dict) and p.get("choices") == [] and isinstance(p.get("usage"), dict)
    ]
    before_done = bool(finals) and len(datas) > finals[-1] + 1 and datas[finals[-1] + 1] == "[DONE]"
    ok = [where for where, _ in seen] == ["final"] and before_done
    observed = f"usage seen as {[where for where, _ in seen] or 'nothing'}" + (
        "" if before_done or not finals else ", not right before [DONE]"
    )
    return Finding(ok, "one final usage chunk (choices: []) before [DONE]", observed)


def same_usage(a: Transcript, b: Transcript) -> Finding:
    """Two exchanges ended with the same usage figures (or neither had any)."""
    ua, ub = a.usages(), b.usages()
    fa = _figures(ua[-1][1]) if ua else None
    fb = _figures(ub[-1][1]) if ub else None
    return Finding(fa == fb, "the same usage both ways", f"{fa} and {fb}")


def no_usage(t: Transcript) -> Finding:
    seen = t.usages()
    return Finding(
        not seen, "no usage (the client did not ask)", f"usage seen as {[w for w, _ in seen]}"
    )


def usage_estimate_close(x: Exchange) -> Finding:
    """An estimate: completion tokens exact on the joined text, prompt within tolerance."""
    seen = x.transcript.usages()
    if not seen:
        return Finding(False, "an estimated usage", "no usage reached the client")
    usage = seen[-1][1]
    want = x.expected
    completion = tokens.completion_tokens(
        [
            want.content[i] + "".join(a for _, _, a in want.tool_calls.get(i, ()))
            for i in want.content
        ]
    )
    prompt = tokens.prompt_tokens(x.transcript.request.get("messages", []))
    got_prompt, got_completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ok = (
        got_completion == completion
        and isinstance(got_prompt, int)
        and tokens.prompt_close_enough(got_prompt, prompt)
        and usage.get("total_tokens") == (got_prompt or 0) + (got_completion or 0)
    )
    observed = (
        f"completion {got_completion} (oracle {completion}), prompt {got_prompt} "
        f"(oracle {prompt}, tolerance max({tokens.PROMPT_TOLERANCE_TOKENS}, "
        f"{tokens.PROMPT_TOLERANCE_SHARE:.0%})), total {usage.get('total_tokens')}"
    )
    return Finding(ok, "usage estimate matches the oracle", observed)


def header_is(t: Transcript, name: str, expected: str) -> Finding:
    value = t.headers.get(name.lower())
    ok = value is not None and value.lower().replace(" ", "") == expected.lower()
    return Finding(ok, f"{name}: {expected}", f"{name}: {value if value is not None else '(none)'}")


def _difference(want: str, got: str) -> str:
    if got == want:
        return f"{len(got)} chars, identical"
    if want.startswith(got):
        return f"lost the last {len(want) - len(got)} of {len(want)} chars"
    if got.startswith(want):
        return f"{len(got) - len(want)} extra chars after the whole answer"
    prefix = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), 0)
    if prefix and got[prefix:].startswith(want[:8]):
        return f"the answer restarts at char {prefix}: content replayed from the beginning"
    return (
        f"differs at char {prefix}: expected {want[prefix : prefix + 12]!r}, "
        f"got {got[prefix : prefix + 12]!r}"
    )


def _statuses(statuses: set[int]) -> str:
    """{500, 502, 503} → "500, 502 or 503"; a whole hundred → "4xx"."""
    if len(statuses) == 100 and min(statuses) % 100 == 0 and max(statuses) == min(statuses) + 99:
        return f"{min(statuses) // 100}xx"
    names = [str(s) for s in sorted(statuses)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _first(items: list[str]) -> str:
    return f"; first: {items[0]!r}" if items else ""


def _ending(x: Transcript | Exchange) -> str:
    t = x.transcript if isinstance(x, Exchange) else x
    return f" (status {t.status}, outcome {t.outcome.value})"
