"""The chaos soak on Locust (`bench/soak_locust.py`): a short distributed soak of the bundled
proxy with two workers judges every index once and passes; a proxy with a bug is caught
through the workers too, each violation naming the seed's schedule; and the workers' blocking
client records what the asyncio client of `bench/soak.py` records.

The soak runs as a command, in a process of its own: Locust's workers are processes anyway,
and its master's process is one with gevent (unpatched) in it, which this one is not."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import soak
from bench.soak_client import exchange
from bench.soak_wire import exchange_blocking, from_wire, to_wire
from streamproof.fake_providers import FakeProvider
from streamproof.harness.sut import patience_for
from streamproof.harness.targets import REFERENCE_TIMEOUTS as TIMERS

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "{python} tests/broken_reference.py --bug %s --config {config} --fd {fd}"
SMALL = ["--workers", "2", "--concurrency", "20", "--warmup", "10", "--seed", "7"]


def distributed(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "soak.json"
    command = [sys.executable, "bench/soak_locust.py", *SMALL, *args, "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return done.returncode, json.loads(out.read_text()), done.stdout + done.stderr


def test_a_short_distributed_soak_of_the_bundled_proxy_passes(tmp_path: Path) -> None:
    status, document, printed = distributed(tmp_path, "--streams", "60")
    assert document["violations"] == [], printed
    assert status == 0
    assert document["ok"]
    judged = sorted(v["index"] for v in document["per_stream"])
    assert judged == list(range(60))  # every index, each once
    spread = document["distributed"]
    assert spread["workers"] == 2
    assert spread["handed_out"] == spread["gathered"] == 60
    assert sum(spread["streams_by_worker"].values()) == 60
    assert document["streams"] == 60
    assert sum(document["health"]["delta"][k] for k in ("succeeded", "failed", "cancelled")) == 60
    results = {v["result"] for v in document["per_stream"]}
    assert {"success", "error", "http_error"} <= results


def test_an_error_sent_as_200_is_caught_through_the_workers(tmp_path: Path) -> None:
    command = BROKEN % "errors-as-200"
    status, document, printed = distributed(tmp_path, "--streams", "60", "--proxy-cmd", command)
    assert status == 1, printed
    found = [v for v in document["violations"] if v["check"] == "not-an-event-stream"]
    assert found
    for v in found:
        s = soak.schedule(7, v["index"])
        assert (v["seed"], v["model"], v["client"]) == (7, s.model, s.client)
        again = f"python bench/soak.py --replay 7:{v['index']} --proxy-cmd '{command}'"
        assert v["replay"] == again
    flagged = {v["index"] for v in document["per_stream"] if "not-an-event-stream" in v["checks"]}
    assert flagged == {v["index"] for v in found}


def stalls(s: soak.Schedule) -> bool:
    """A stall: with no proxy to cut it, the client would wait out its bound."""
    return any(soak.fault_kind(f.token).startswith("stall") for f in s.scenario.faults)


def test_the_blocking_client_records_what_the_asyncio_one_does() -> None:
    """Straight to the fake (no proxy), each client on a fake of its own: the same schedules
    (those that never stall) give the same bytes and endings; sent as a worker sends them,
    they are judged alike."""
    drawn = [soak.schedule(7, i) for i in range(80)]
    chosen = [s for s in drawn if s.client == "read to the end" and not stalls(s)]
    assert len(chosen) > 30
    with FakeProvider() as first, FakeProvider() as second:

        async def all_of_them() -> list[tuple[Any, bool]]:
            return [
                await exchange(
                    first.port, s, patience_for(TIMERS, first.journal(s.scenario.nonce)).until
                )
                for s in chosen
            ]

        by_asyncio = asyncio.run(all_of_them())
        by_blocking = [exchange_blocking("127.0.0.1", second.port, s) for s in chosen]
        for s, (a, a_left), (b, b_left) in zip(chosen, by_asyncio, by_blocking, strict=True):
            seen = [(t.status, t.body, t.transport, left) for t, left in ((a, a_left), (b, b_left))]
            assert seen[0] == seen[1]
            carried, carried_left = from_wire(s, to_wire(s, b, b_left))
            judged = [
                soak.Stream(s, t, left, fake.journal(s.scenario.nonce))
                for t, left, fake in ((a, a_left, first), (carried, carried_left, second))
            ]
            for stream in judged:
                soak.judge(stream)
            one, other = ((j.result, j.problems) for j in judged)
            assert one == other
