"""Fault schedules that shrink: Hypothesis looks for a sequence of streams that breaks a rule.

A rule-based state machine sends streams through a proxy one after another, each with a
scenario drawn from the fake's fault vocabulary (faults before and after the commit point,
write shapes, "fail K times then succeed") and a client behaviour (read to the end, leave
after N events, give up before the headers). After each stream it applies the chaos
soak's per-stream verdicts (`bench/soak.py`: content once, an honest ending, nothing cut
silently, attempts bounded and over) and checks the proxy's health counters against what
the clients saw. When a rule breaks, Hypothesis shrinks the sequence to a minimal one, and
the run writes it to `reports/schedules/<rule>.json`: copied into `tests/schedules/`, it
replays as an ordinary test (`test_saved_schedule_replays`), on a fresh proxy.

Budgets: `STREAMPROOF_SCHEDULES` examples of up to 6 streams each (8 by default, so the
ordinary run stays quick; raise it to search harder).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from bench import soak
from streamproof.fake_providers import FakeProvider
from streamproof.fake_providers.faults import ERROR_SHAPES, Fault
from streamproof.fake_providers.scenario import Scenario
from streamproof.harness.sut import patience_for
from streamproof.harness.targets import BUNDLED, REFERENCE_TIMEOUTS, ProcessTarget
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

ROOT = Path(__file__).resolve().parent.parent
SAVED = ROOT / "tests" / "schedules"
FOUND = ROOT / "reports" / "schedules"
EXAMPLES = int(os.environ.get("STREAMPROOF_SCHEDULES", "8"))


# --- what Hypothesis draws ------------------------------------------------------------------


def _pre_commit() -> st.SearchStrategy[Fault]:
    """Faults before anything reaches the client (the proxy may retry them)."""
    return st.one_of(
        st.just(ResetBeforeHeaders()),
        st.sampled_from([500, 502, 503, 529, 400]).map(Status),
        st.just(Status(429, 0)),
        st.just(ResetAfter(0)),
        st.just(Malformed(1)),
        st.sampled_from(ERROR_SHAPES).map(lambda shape: UpstreamError(1, shape)),
        st.just(StallBeforeHeaders()),  # last: Hypothesis shrinks towards the first
    )


def _post_commit(chunks: int) -> st.SearchStrategy[Fault]:
    """Faults after the role chunk reached the client (event 1 is the role chunk)."""
    after = st.integers(1, chunks + 1)
    inside = st.integers(2, chunks + 2)
    return st.one_of(
        after.map(ResetAfter),
        st.integers(1, chunks + 2).map(CloseAfter),
        after.map(CutInside),
        after.map(ResetInside),
        inside.map(Malformed),
        st.tuples(inside, st.sampled_from(ERROR_SHAPES)).map(lambda a: UpstreamError(*a)),
        st.just(NoDone()),
        after.map(StallAfter),
    )


SHAPES = st.one_of(
    st.sampled_from([1, 2, 7, 64]).map(Chop),
    st.just(SplitUtf8()),
    st.just(Coalesce()),
    st.sampled_from([1, 5]).map(Slow),
)


@dataclass(frozen=True)
class Step:
    """One stream of a schedule: the scenario (its nonce is fresh each run) and the client."""

    scenario: Scenario
    leave_after_events: int | None = None
    leave_before_response: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.scenario.model,
            "leave_after_events": self.leave_after_events,
            "leave_before_response": self.leave_before_response,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Step:
        return cls(
            Scenario.parse(item["model"]), item["leave_after_events"], item["leave_before_response"]
        )


@st.composite
def steps(draw: st.DrawFn, clients: tuple[str, ...] = ("read", "read", "leave", "give up")) -> Step:
    chunks = draw(st.integers(1, 12))
    faults: list[Fault] = []
    faults += draw(st.lists(_pre_commit(), max_size=1))
    faults += draw(st.lists(_post_commit(chunks), max_size=1))
    shape = draw(st.none() | SHAPES)
    if shape is not None:
        faults.append(shape)
    first = draw(st.none() | st.integers(1, 3)) if faults else None
    client = draw(st.sampled_from(clients))
    scenario = Scenario(chunks=chunks, faults=tuple(faults), first=first)
    if client == "leave":
        return Step(scenario, leave_after_events=draw(st.integers(1, chunks + 2)))
    if client == "give up":
        return Step(scenario, leave_before_response=draw(st.sampled_from([0.02, 0.1, 0.3])))
    return Step(scenario)


# --- running them ---------------------------------------------------------------------------


class Proxy:
    """A proxy (the reference one, or a command) before a fake provider of its own."""

    def __init__(self, command: str, workdir: Path) -> None:
        self.fake = FakeProvider().start()
        self.target = ProcessTarget(command, self.fake.base_url, workdir)
        try:
            self.target.start()
        except BaseException:
            self.fake.stop()
            raise

    def close(self) -> None:
        self.target.stop()
        self.fake.stop()

    def counters(self) -> dict[str, int]:
        return soak.counters(soak.health(self.target.base_url))

    def run(self, step: Step, index: int) -> soak.Stream:
        """One stream, judged once the proxy is idle and its upstream attempts are over."""
        scenario = replace(step.scenario, nonce=secrets.token_hex(6))
        schedule = soak.Schedule(
            0, index, scenario, step.leave_after_events, step.leave_before_response
        )
        journal = self.fake.journal(scenario.nonce)
        until = patience_for(REFERENCE_TIMEOUTS, journal).until
        transcript, left = asyncio.run(soak.exchange(self.target.port, schedule, until))
        stream = soak.Stream(schedule, transcript, left, journal)
        base = self.target.base_url
        soak.settle(lambda: soak.health(base)["requests"]["active"] == 0, soak.SETTLE_BOUND)
        journal.wait_for(lambda j: all(soak.released(a) for a in j.attempts), soak.SETTLE_BOUND)
        soak.judge(stream)
        soak.judge_upstream(stream)
        return stream


def save(steps_run: list[Step], rule: str, detail: str, command: str) -> Path:
    """Write the schedule that broke `rule` (the last write is Hypothesis's minimal one)."""
    FOUND.mkdir(parents=True, exist_ok=True)
    path = FOUND / f"{rule}.json"
    document = {
        "rule": rule,
        "detail": detail,
        "proxy": command,
        "streams": [step.as_json() for step in steps_run],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


class Violation(AssertionError):
    pass


def machine(
    proxy: Proxy, command: str, drawn: st.SearchStrategy[Step] | None = None
) -> type[RuleBasedStateMachine]:
    each = steps() if drawn is None else drawn

    class Schedules(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.steps: list[Step] = []
            self.streams: list[soak.Stream] = []
            self.before = proxy.counters()

        def _broken(self, rule: str, detail: str) -> None:
            path = save(self.steps, rule, detail, command)
            raise Violation(f"{rule}: {detail} ({len(self.steps)} streams, saved to {path})")

        @rule(step=each)
        def stream(self, step: Step) -> None:
            self.steps.append(step)
            stream = proxy.run(step, len(self.streams))
            self.streams.append(stream)
            if stream.problems:
                check, detail = stream.problems[0]
                self._broken(check, f"{detail}; {stream.schedule.client}")

        @invariant()
        def counters_agree(self) -> None:
            now = proxy.counters()
            delta = {name: now[name] - self.before[name] for name in now}
            for problem in soak.counter_check(self.streams, delta):
                self._broken(problem["check"], problem["detail"])

    return Schedules


SEARCH = settings(
    max_examples=EXAMPLES,
    stateful_step_count=6,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[Proxy]:
    proxy = Proxy(BUNDLED, tmp_path)
    try:
        yield proxy
    finally:
        proxy.close()


def test_reference_proxy_keeps_every_rule_under_drawn_schedules(reference: Proxy) -> None:
    run_state_machine_as_test(machine(reference, BUNDLED), settings=SEARCH)


def test_a_broken_proxy_is_shrunk_to_a_minimal_schedule(tmp_path: Path) -> None:
    """The reference proxy that counts every failure as a success: any one failing stream
    shows it, and Hypothesis must find that, and shrink what it found to that one stream."""
    command = (
        "{python} tests/broken_reference.py --bug count-as-success --config {config} --fd {fd}"
    )
    proxy = Proxy(command, tmp_path)
    try:
        # Clients that read to the end: what the proxy should count is then exactly known,
        # and a run replays the same way, as shrinking needs.
        with pytest.raises(Violation, match="health-failed"):
            run_state_machine_as_test(
                machine(proxy, command, steps(clients=("read",))),
                settings=settings(SEARCH, max_examples=30),
            )
    finally:
        proxy.close()
    document = json.loads((FOUND / "health-failed.json").read_text())
    (only,) = document["streams"]  # one stream is enough, and the shrunk schedule has one
    scenario = Scenario.parse(only["model"])
    assert scenario.faults, f"a stream with no fault cannot fail: {only}"


@pytest.mark.parametrize("saved", sorted(SAVED.glob("*.json")), ids=lambda path: path.stem)
def test_saved_schedule_replays(saved: Path) -> None:
    """A schedule Hypothesis once shrank, kept as a regression: it must now pass."""
    document = json.loads(saved.read_text())
    with tempfile.TemporaryDirectory() as workdir:
        proxy = Proxy(BUNDLED, Path(workdir))
        try:
            before = proxy.counters()
            streams = [
                proxy.run(Step.from_json(item), index)
                for index, item in enumerate(document["streams"])
            ]
            now = proxy.counters()
        finally:
            proxy.close()
    problems = [f"{s.schedule.model}: {s.problems}" for s in streams if s.problems]
    delta = {name: now[name] - before[name] for name in now}
    problems += [p["detail"] for p in soak.counter_check(streams, delta)]
    assert not problems, f"{saved.name} ({document['rule']}): {problems}"
