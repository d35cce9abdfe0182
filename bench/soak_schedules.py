"""The chaos soak's schedules (`bench/soak.py`): each stream's scenario and client behaviour,
drawn from `random.Random(f"{seed}:{index}")`, the same on every run and machine."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamproof.fake_providers.faults import ERROR_SHAPES, NONOBJECTS, Fault, NonObject
from streamproof.fake_providers.scenario import Scenario
from streamproof.fake_providers.text import TEXT_KINDS
from streamproof.harness.upstream import (
    Chop,
    CloseAfter,
    Coalesce,
    CutInside,
    Malformed,
    NoDone,
    ResetAfter,
    ResetBeforeHeaders,
    ResetInside,
    Slow,
    SplitUtf8,
    StallAfter,
    StallBeforeHeaders,
    Status,
    UpstreamError,
)


@dataclass(frozen=True)
class Schedule:
    """One stream: the scenario the fake plays and what the client does."""

    seed: int
    index: int
    scenario: Scenario
    leave_after_events: int | None = None
    leave_before_response: float | None = None  # seconds without response headers

    @property
    def model(self) -> str:
        return self.scenario.model

    @property
    def client(self) -> str:
        if self.leave_after_events is not None:
            return f"leave after {self.leave_after_events} events"
        if self.leave_before_response is not None:
            return f"give up after {self.leave_before_response:g} s without headers"
        return "read to the end"

    def replay(self, target_args: str = "") -> str:
        """The command that runs this stream again; `target_args` names the target."""
        return f"python bench/soak.py --replay {self.seed}:{self.index}{target_args}"

    def names(self, target_args: str = "") -> dict[str, Any]:
        return {
            "seed": self.seed,
            "index": self.index,
            "model": self.model,
            "client": self.client,
            "replay": self.replay(target_args),
        }


def _pre_commit(rng: random.Random, chunks: int) -> Fault:
    """A fault that fires before anything reaches the client: retried by the proxy."""
    draw: list[Callable[[], Fault]] = [
        ResetBeforeHeaders,
        StallBeforeHeaders,
        lambda: Status(rng.choice((500, 502, 503, 529))),
        lambda: Status(429),
        lambda: Status(429, 0),  # Retry-After 0: no cooldown that would refuse other streams
        lambda: ResetAfter(0),
        lambda: Malformed(1),
        lambda: UpstreamError(1, rng.choice(ERROR_SHAPES)),
    ]
    if rng.random() < 0.1:
        return Status(rng.choice((400, 404, 422)))  # the client's problem: passed through
    return rng.choice(draw)()


def _post_commit(rng: random.Random, chunks: int) -> Fault:
    """A fault that fires after the role chunk was relayed: the client must be told."""
    # Events: 1 the role chunk, 2..chunks+1 content, chunks+2 the finish, chunks+3 [DONE].
    after = rng.randint(1, chunks + 1)
    inside = rng.randint(2, chunks + 2)
    draw: list[Callable[[], Fault]] = [
        lambda: ResetAfter(after),
        lambda: StallAfter(after),
        lambda: CloseAfter(rng.randint(1, chunks + 2)),  # chunks+2: finished, no [DONE]
        lambda: CutInside(after),
        lambda: ResetInside(after),
        lambda: Malformed(inside),
        lambda: NonObject(inside, rng.choice(tuple(NONOBJECTS))),
        lambda: UpstreamError(inside, rng.choice(ERROR_SHAPES)),
        NoDone,
    ]
    return rng.choice(draw)()


def _shape(rng: random.Random) -> Fault:
    """How the body is cut into writes, or paced: a correct relay is unaffected."""
    draw: list[Callable[[], Fault]] = [
        lambda: Chop(rng.choice((1, 2, 3, 7, 64))),
        SplitUtf8,
        Coalesce,
        lambda: Slow(rng.choice((1, 5, 20))),
    ]
    return rng.choice(draw)()


def schedule(seed: int, index: int, tag: str = "n") -> Schedule:
    """The schedule of stream `index` under `seed`: the same on every run and machine."""
    rng = random.Random(f"{seed}:{index}")
    chunks = rng.randint(1, 16)
    text = rng.choice(TEXT_KINDS) if rng.random() < 0.35 else None
    eol = rng.choice(("crlf", "cr", "mixed")) if rng.random() < 0.25 else "lf"
    formats = {rng.choice(("bom", "comments", "nospace", "fields", "multiline", "empty_data"))}
    formats = formats if rng.random() < 0.2 else set()
    faults: list[Fault] = []
    first: int | None = None
    kind = rng.choices(("clean", "shaped", "pre", "post", "both"), weights=(10, 15, 30, 30, 15))[0]
    if kind == "shaped":
        faults.append(_shape(rng))
    if kind in ("pre", "both"):
        faults.append(_pre_commit(rng, chunks))
        if rng.random() < 0.25:
            faults.append(_pre_commit(rng, chunks))  # two at once: the earlier stage wins
        # Mostly "fail K times, then succeed"; 1 or 2 recover within 3 attempts, 3 does not.
        first = rng.choices((1, 2, 3, None), weights=(40, 30, 15, 15))[0]
    if kind in ("post", "both"):
        faults.append(_post_commit(rng, chunks))
        if rng.random() < 0.3 and not any(isinstance(f, Slow) for f in faults):
            faults.append(_shape(rng))
        if kind == "post" and rng.random() < 0.3:
            first = 1
    if any(isinstance(f, Slow) for f in faults):
        faults = [f for f in faults if not isinstance(f, Chop)]  # 1-byte writes, each paced
    behaviour = rng.random()
    leave_after = rng.randint(1, 6) if behaviour < 0.12 else None
    give_up = rng.choice((0.02, 0.05, 0.1, 0.2, 0.4)) if 0.12 <= behaviour < 0.2 else None
    scenario = Scenario(
        nonce=f"{tag}{seed}x{index}",
        chunks=chunks,
        eol=eol,
        text=text,
        seed=rng.randint(0, 999) if text == "random" else None,
        faults=tuple(faults),
        first=first,
        formats=frozenset(formats),
    )
    return Schedule(seed, index, scenario, leave_after, give_up)


def fault_kind(token: str) -> str:
    """`reset_after-3` -> `reset_after`."""
    return token.split("-", 1)[0]
