"""How checks say what they saw: differences, status sets, first items, endings."""

from __future__ import annotations

from streamproof.harness.sut import Exchange
from streamproof.harness.transcript import Transcript


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
