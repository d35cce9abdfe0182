"""Checks of recovery: error statuses, attempts, timers, releasing the upstream."""

from __future__ import annotations

import time

from harness.checks._words import _ending, _statuses
from harness.sut import Exchange
from harness.transcript import Outcome, Transcript
from harness.verdict import Finding


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


def retried_after(x: Exchange, seconds: float) -> Finding:
    """The second attempt came no sooner than `seconds` after the first (10 ms slack)."""
    attempts = x.attempts
    if len(attempts) < 2:
        return Finding(False, f"retried after {seconds:g} s", f"{len(attempts)} attempt(s)")
    gap = attempts[1].received_at - attempts[0].received_at
    return Finding(
        gap >= seconds - 0.01, f"retried after {seconds:g} s", f"retried after {gap:.3f} s"
    )
