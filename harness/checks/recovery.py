"""Checks of recovery: error statuses, attempts, timers, releasing the upstream."""

from __future__ import annotations

import json
import time
from typing import Any

from streamproof.fake_providers.plan import CHAT, MESSAGES
from streamproof.harness.checks._words import _ending, _statuses
from streamproof.harness.exchange import BaseExchange
from streamproof.harness.transcript import Outcome, Transcript
from streamproof.harness.verdict import Finding


def ended_within(t: Transcript, since: float, seconds: float) -> Finding:
    """The stream was over (by the proxy's doing) no later than `seconds` after `since`."""
    what = f"stream over within {seconds:.2f} s"
    if t.ended_at is None or t.outcome is Outcome.TIMED_OUT:
        return Finding(False, what, f"the client gave up waiting{_ending(t)}")
    took = t.ended_at - since
    return Finding(took <= seconds, what, f"over after {took:.3f} s{_ending(t)}")


def http_error(t: Transcript, statuses: set[int], api: str = CHAT) -> Finding:
    """A real error status with a JSON error body in the API's shape, not a 200.

    A status of the wrong class (a 200, a 500 for a bad request) misleads the client: it
    fails. The right class with another status or another body (nginx's HTML 502 page, a
    500 where a 502 is meant, an OpenAI-style body to an Anthropic client) is `should`: the
    client knows the request failed, and why less well. So is a 408 where a 5xx is meant
    (an upstream that timed out): the `openai` and `anthropic` SDKs retry a 408 as they
    retry a 5xx (their `_should_retry`), and raise it as an error all the same."""
    shaped = error_body_shaped(t.json_body, api)
    ok = t.status in statuses and shaped
    classes = {status // 100 for status in statuses}
    right_class = t.status is not None and t.status // 100 in classes
    retried_alike = t.status == 408 and 5 in classes
    wanted = _statuses(statuses)
    shape = "an Anthropic error object" if api == MESSAGES else "a JSON error object"
    observed = f"status {t.status}, body {'is' if shaped else 'is not'} {shape}"
    if retried_alike:
        observed += " (a 408, which the SDKs retry as a 5xx)"
    should = right_class or retried_alike
    return Finding(ok, f"status {wanted} with {shape}", observed, should=should)


def error_body_shaped(body: Any, api: str = CHAT) -> bool:
    """An error body in the API's own shape: OpenAI's `{"error": {"message": ...}}` (chat
    completions, Responses); for the Messages API, Anthropic's `{"type": "error", "error":
    {"type": ..., "message": ...}}`."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return False
    return api != MESSAGES or (body.get("type") == "error" and isinstance(error.get("type"), str))


GATEWAY_ERRORS = {502, 503, 504}  # the statuses of a gateway whose upstream failed


def failed_honestly(x: BaseExchange, *, retry_after: bool = False) -> tuple[Finding, ...]:
    """Without retries, a failure before the commit point still reaches the client as one:
    the upstream's own error status, or a gateway error (502, 503, 504), with a JSON error
    body in the API's shape; with `retry_after`, the upstream's Retry-After kept."""
    t = x.transcript
    said = [a.status for a in x.attempts if a.status is not None and a.status >= 400]
    statuses = GATEWAY_ERRORS | set(said[-1:])
    findings = [http_error(t, statuses, x.api)]
    if retry_after:
        kept = "retry-after" in t.headers
        findings.append(
            Finding(
                kept,
                "Retry-After kept",
                f"Retry-After {t.headers['retry-after']}" if kept else "no Retry-After",
                harm=True,
            )
        )
    return tuple(findings)


def upstream_error_kept(x: BaseExchange) -> Finding:
    """What the upstream said of its error reaches the client: its status class, and its
    message, type and code somewhere in the client's error body."""
    t = x.transcript
    said = next((a for a in reversed(x.attempts) if a.status and a.status >= 400), None)
    if said is None or said.status is None:
        return Finding(False, "the upstream's error passed on", "the upstream gave no error")
    upstream = _error_object(bytes(said.data))
    client = t.body.decode("utf-8", "replace")
    lost = [
        f"{name} {value!r}"
        for name, value in upstream.items()
        if name in ("message", "type", "code") and value is not None and str(value) not in client
    ]
    same_class = t.status is not None and t.status // 100 == said.status // 100
    if not same_class:
        lost.insert(0, f"status {said.status} became {t.status}")
    return Finding(
        not lost,
        "the upstream's error passed on (status class, message, type, code)",
        "lost: " + ", ".join(lost) if lost else f"status {t.status}, message, type and code kept",
    )


def _error_object(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def attempts_exactly(x: BaseExchange, count: int) -> Finding:
    made = len(x.attempts)
    return Finding(made == count, f"upstream asked {count} time(s)", f"{made} attempt(s)")


def attempts_at_least(x: BaseExchange, count: int) -> Finding:
    made = len(x.attempts)
    return Finding(made >= count, f"upstream asked {count}+ times", f"{made} attempt(s)")


def upstream_released(x: BaseExchange, left: float, within: float, watch: float) -> Finding:
    """After the client left, the proxy hung up on the upstream within `within` seconds and
    started no new attempt for the `watch` seconds after the client left."""
    what = f"upstream closed within {within:.2f} s, no new attempt"
    before = sum(1 for a in x.attempts if a.received_at <= left)
    # The proxy's hang-up, or the fake's own end of an answer; never the fake giving up a
    # stall it held (its `stall` ending), which says nothing of the proxy.
    closed = x.journal.wait_for(
        lambda j: all(
            a.peer_closed_at is not None or a.ending not in (None, "stall") for a in j.attempts
        ),
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


def retried_after(x: BaseExchange, seconds: float) -> Finding:
    """The second attempt came no sooner than `seconds` after the first (10 ms slack)."""
    attempts = x.attempts
    if len(attempts) < 2:
        return Finding(False, f"retried after {seconds:g} s", f"{len(attempts)} attempt(s)")
    gap = attempts[1].received_at - attempts[0].received_at
    return Finding(
        gap >= seconds - 0.01, f"retried after {seconds:g} s", f"retried after {gap:.3f} s"
    )


def attempts_at_most(x: BaseExchange, count: int) -> Finding:
    made = len(x.attempts)
    return Finding(made <= count, f"upstream asked at most {count} times", f"{made} attempt(s)")


def no_attempt_after_commit(x: BaseExchange) -> Finding:
    """No upstream attempt began after the client had the first byte of the body."""
    t = x.transcript
    what = "no upstream attempt after the first byte reached the client"
    if not t.chunks:
        return Finding(True, what, "the client got no body byte")
    committed = t.chunks[0].at
    # A request the proxy had hung up on before the fake read it was sent before: a loaded
    # fake may read it late (the journal says `abandoned`).
    late = [a for a in x.attempts if a.received_at > committed and not a.abandoned]
    if late:
        after = 1000 * (late[0].received_at - committed)
        return Finding(
            False, what, f"{len(late)} attempt(s) after it, the first {after:.0f} ms later"
        )
    return Finding(True, what, f"{len(x.attempts)} attempt(s), all before it")


def fallback_order(x: BaseExchange, routes: tuple[str, ...], answered_by: str) -> Finding:
    """The attempts went down the chain in order (never back to an earlier provider), and
    the answer came from `answered_by`. Routes are the fake's labels ("" is unlabelled)."""
    seen = [a.route for a in x.attempts]
    rank = {route: i for i, route in enumerate(routes)}
    ranks = [rank.get(route, -1) for route in seen]
    in_order = -1 not in ranks and ranks == sorted(ranks)
    streamed = x.streamed
    answered = streamed.route if streamed is not None else None
    names = [route or "primary" for route in seen]
    ok = in_order and answered == answered_by
    who = "nobody" if answered is None else repr(answered or "primary")
    return Finding(
        ok,
        f"chain followed in order, answered by {answered_by or 'primary'!r}",
        f"attempts on {names}, answered by {who}",
    )
