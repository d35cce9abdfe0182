"""Checks of what an answer carries: content, choices, tool calls, honest endings."""

from __future__ import annotations

from streamproof.fake_providers.faults import ERROR_MESSAGE
from streamproof.harness.checks._words import _difference, _ending
from streamproof.harness.exchange import BaseExchange
from streamproof.harness.sut import Exchange
from streamproof.harness.transcript import DONE, Outcome, Transcript
from streamproof.harness.verdict import Finding


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


def reasoning_intact(x: Exchange) -> Finding:
    """Every choice's `reasoning_content` is exactly the upstream's, apart from its content
    (never merged into it), and streamed before it, as the upstream sent it."""
    t, want = x.transcript, x.expected
    problems = [
        f"choice {index}: {_difference(reasoning, t.reasoning(index))}"
        for index, reasoning in sorted(want.reasoning.items())
        if t.reasoning(index) != reasoning
    ]
    late = [index for index in sorted(want.reasoning) if t.streamed and _reasoned_late(t, index)]
    problems += [f"choice {index}: reasoning after its content began" for index in late]
    chars = sum(len(r) for r in want.reasoning.values())
    observed = "; ".join(problems[:3]) or f"{chars} chars of reasoning, identical, before the text"
    return Finding(not problems, "reasoning equals the upstream's, apart and first", observed)


def _reasoned_late(t: Transcript, index: int) -> bool:
    """A reasoning delta of one choice came after a content delta of it."""
    fields = [
        field
        for _, chunk in t.chat_chunks
        for choice in chunk["choices"]
        if isinstance(choice, dict) and choice.get("index", 0) == index
        if isinstance(delta := choice.get("delta"), dict)
        for field in ("reasoning_content", "content")
        if delta.get(field)
    ]
    return "content" in fields and "reasoning_content" in fields[fields.index("content") :]


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


def not_dressed_up(x: BaseExchange) -> Finding:
    """A failed stream must not look finished to its client, as the API's SDK reads it
    (`Exchange.failure_shown`, `TypedExchange.failure_shown`): a harm, whatever the case."""
    return x.failure_shown()


def upstream_message_kept(x: Exchange) -> Finding:
    """The message of the upstream's own in-band error reaches the client in its error
    event (a shape without one, `finish_reason: "error"`, has nothing to keep)."""
    t = x.transcript
    if ERROR_MESSAGE.encode() not in bytes(x.streamed.data if x.streamed else b""):
        return Finding(True, "the upstream's error message kept", "the upstream gave none")
    kept = any(ERROR_MESSAGE in timed.event.data for timed in t.error_events)
    return Finding(
        kept,
        "the upstream's error message kept",
        f"{ERROR_MESSAGE!r} in the client's error event" if kept else "not in any error event",
    )


def no_done_after_error(t: Transcript) -> Finding:
    """`[DONE]` only after a clean finish: never after an error the stream carried."""
    ok = t.done_count == 0
    return Finding(ok, "no [DONE] after a failure", f"{t.done_count} [DONE]{_ending(t)}")


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


def finish_reasons_are(t: Transcript, expected: list[str]) -> Finding:
    reasons = t.finish_reasons
    return Finding(reasons == expected, f"finish reasons {expected}", f"finish reasons {reasons}")


def message_content_intact(x: Exchange) -> Finding:
    """A non-streaming answer's message content is exactly the upstream's."""
    got = x.transcript.content()
    return Finding(
        got == x.expected_content,
        "message content equals the upstream's",
        _difference(x.expected_content, got),
    )


def has_content(t: Transcript) -> Finding:
    """Some text came back: streamed deltas, or a whole answer's message."""
    text = t.content()
    return Finding(bool(text.strip()), "some content", f"{len(text)} chars: {text[:40]!r}")
