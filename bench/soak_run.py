"""The chaos soak's run (`bench/soak.py`): a fake provider and the proxy started, a warm-up,
the streams driven `concurrency` at a time, then the global checks on the proxy."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.soak_checks import (
    CANDIDATES,
    KEEPALIVE_BOUND,
    RSS_LIMIT_MIB,
    STALL_LIMIT,
    counter_check,
    judge,
    judge_upstream,
    released,
)
from bench.soak_client import TIMEOUTS, Stream, exchange
from bench.soak_probes import children, counters, fd_classes, health, memory_kib, settle
from bench.soak_report import make_document
from bench.soak_schedules import Schedule, schedule
from streamproof.fake_providers import FakeProvider
from streamproof.fake_providers.scenario import Scenario
from streamproof.harness.targets import BUNDLED, ProcessTarget
from streamproof.harness.upstream import Slow

DEFAULT_SEED = 20250131
DEFAULT_STREAMS = 10_000
DEFAULT_CONCURRENCY = 100
DEFAULT_MAX_SECONDS = 300.0
SETTLE_BOUND = 20.0  # seconds for active == 0, every attempt over, fds back (each)
SAMPLE = 0.25  # seconds between VmRSS samples during the soak


@dataclass
class Options:
    seed: int = DEFAULT_SEED
    streams: int = DEFAULT_STREAMS
    concurrency: int = DEFAULT_CONCURRENCY
    max_seconds: float = DEFAULT_MAX_SECONDS
    indices: Sequence[int] | None = None  # these streams only (replay); else range(streams)
    proxy_cmd: str = BUNDLED
    warmup: int | None = None  # streams per warm-up wave; None: the concurrency
    quiet: bool = False


@dataclass
class Run:
    streams: list[Stream]
    wall: float
    stopped_early: bool
    rss_samples_kib: list[int]


async def drive(
    port: int,
    provider: FakeProvider,
    schedules: Iterable[Schedule],
    concurrency: int,
    max_seconds: float,
    *,
    pid: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Run:
    """Run the streams, `concurrency` at a time, launching none after `max_seconds`."""
    started = time.perf_counter()
    slots = asyncio.Semaphore(concurrency)
    done: list[Stream] = []
    samples: list[int] = []
    tasks: set[asyncio.Task[None]] = set()
    stopped = False

    async def one(s: Schedule) -> None:
        try:
            transcript, left = await exchange(port, s)
            stream = Stream(s, transcript, left, provider.journal(s.scenario.nonce))
            judge(stream)
            done.append(stream)
            if progress is not None:
                progress(len(done))
        finally:
            slots.release()

    async def sample() -> None:
        while pid is not None:
            samples.append(memory_kib(pid)["VmRSS"])
            await asyncio.sleep(SAMPLE)  # a sampling interval, not a synchronisation

    sampler = asyncio.create_task(sample())
    try:
        for s in schedules:
            await slots.acquire()
            if time.perf_counter() - started > max_seconds:
                slots.release()
                stopped = True
                break
            task = asyncio.create_task(one(s))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.wait(set(tasks))
    finally:
        sampler.cancel()
        await asyncio.wait({sampler})
    return Run(done, time.perf_counter() - started, stopped, samples)


def _warm_schedules(seed: int, count: int) -> list[Schedule]:
    """The warm-up: a wave of slow clean streams (all open at once), then a wave of mixed
    schedules (every code path taken before the baseline is read)."""
    clean = [
        Schedule(seed, i, Scenario(nonce=f"w{seed}x{i}", faults=(Slow(25),))) for i in range(count)
    ]
    return clean + [schedule(seed, i, tag="m") for i in range(count)]


def run(
    options: Options, say: Callable[[str], None], keep: list[Stream] | None = None
) -> dict[str, Any]:
    """The whole soak; the report as a document. `keep` receives the streams that ran."""
    indices = list(options.indices if options.indices is not None else range(options.streams))
    schedules = [schedule(options.seed, i) for i in indices]
    warm = options.warmup if options.warmup is not None else options.concurrency
    violations: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as workdir,
        FakeProvider(stall_limit=STALL_LIMIT) as provider,
    ):
        target = ProcessTarget(
            options.proxy_cmd, provider.base_url, Path(workdir), timeouts=TIMEOUTS
        )
        before = children()
        target.start()
        try:
            started = children() - before
            if len(started) != 1:
                raise RuntimeError(f"expected one proxy process, found {sorted(started)}")
            pid = started.pop()
            say(f"proxy pid {pid} on port {target.port}; fake provider on port {provider.port}")
            document = _soak(options, schedules, warm, provider, target, pid, violations, say)
            ran: list[Stream] = document.pop("_streams")
            if keep is not None:
                keep.extend(ran)
            document["proxy_log_tail"] = target.log_tail(5)
        finally:
            target.stop()
    return document


def _soak(
    options: Options,
    schedules: list[Schedule],
    warm: int,
    provider: FakeProvider,
    target: ProcessTarget,
    pid: int,
    violations: list[dict[str, Any]],
    say: Callable[[str], None],
) -> dict[str, Any]:
    port, base = target.port, target.base_url
    # A global violation is replayed by the whole run: the schedules are the seed's.
    rerun = {
        "seed": options.seed,
        "rerun": f"python bench/soak.py --seed {options.seed} --streams {options.streams} "
        f"--concurrency {options.concurrency}",
    }

    def classes() -> dict[str, int]:
        return fd_classes(pid, port, provider.port)

    # Warm-up: not judged; the baseline is what the proxy holds once it has seen every path.
    warming = asyncio.run(
        drive(port, provider, _warm_schedules(options.seed, warm), options.concurrency, 1e9)
    )
    say(f"warm-up: {len(warming.streams)} streams in {warming.wall:.1f} s")
    idle_before = settle(lambda: health(base)["requests"]["active"] == 0, SETTLE_BOUND)
    readings: list[dict[str, int]] = []

    def steady() -> bool:  # no client connection left, and the same count twice running
        readings.append(classes())
        return readings[-1]["client"] == 0 and readings[-2:] == [readings[-1]] * 2

    settle(steady, SETTLE_BOUND)
    fds_before = readings[-1]
    counters_before = counters(health(base))
    memory_before = memory_kib(pid)
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS, from here on
        peak_how = "VmHWM (reset after the warm-up)"
    except OSError:
        peak_how = "the largest VmRSS sample"
    say(
        f"baseline: fds {fds_before}, RSS {memory_before['VmRSS'] / 1024:.1f} MiB, "
        f"counters {counters_before}"
    )
    step = max(1, len(schedules) // 10)

    def progress(count: int) -> None:
        if count % step == 0:
            say(f"{count} of {len(schedules)} streams done")

    soak = asyncio.run(
        drive(
            port,
            provider,
            schedules,
            options.concurrency,
            options.max_seconds,
            pid=pid,
            progress=None if options.quiet else progress,
        )
    )
    streams = sorted(soak.streams, key=lambda s: s.schedule.index)
    say(f"{len(streams)} streams in {soak.wall:.1f} s; settling")
    # Global checks, each a bounded wait on the proxy.
    idle = settle(lambda: health(base)["requests"]["active"] == 0, SETTLE_BOUND)
    after_report = health(base)
    counters_after = counters(after_report)
    if not idle or not idle_before:
        violations.append(
            {
                "check": "active-not-zero",
                **rerun,
                "detail": f"requests.active still {after_report['requests']['active']} after "
                f"{SETTLE_BOUND:g} s",
                "streams": [s.schedule.names() for s in streams[:CANDIDATES]],
            }
        )
    deadline = time.monotonic() + SETTLE_BOUND
    for stream in streams:
        stream.journal.wait_for(
            lambda j: all(released(a) for a in j.attempts), max(0.0, deadline - time.monotonic())
        )
        judge_upstream(stream)
    readings.clear()

    def back() -> bool:
        readings.append(classes())
        now = readings[-1]
        pooled = max(fds_before["upstream"], KEEPALIVE_BOUND)
        return (
            now["client"] == 0 and now["upstream"] <= pooled and now["other"] <= fds_before["other"]
        )

    fds_back = settle(back, SETTLE_BOUND)
    fds_after = readings[-1]
    if not fds_back:
        violations.append(
            {
                "check": "fds-not-back",
                **rerun,
                "detail": f"after {SETTLE_BOUND:g} s: {fds_after}; baseline {fds_before} "
                f"(client sockets must be 0, upstream at most {KEEPALIVE_BOUND} idle in the "
                "keep-alive pool or the baseline's, the others at most the baseline's)",
                "streams": [s.schedule.names() for s in streams if s.result == "left"][:CANDIDATES],
            }
        )
    memory_after = memory_kib(pid)
    peak = max([memory_after["VmHWM"]] if peak_how.startswith("VmHWM") else soak.rss_samples_kib)
    growth = (peak - memory_before["VmRSS"]) / 1024
    if growth > RSS_LIMIT_MIB:
        violations.append(
            {
                "check": "rss-growth",
                **rerun,
                "detail": f"peak RSS {peak / 1024:.1f} MiB, {growth:.1f} MiB over the "
                f"baseline {memory_before['VmRSS'] / 1024:.1f} MiB (limit {RSS_LIMIT_MIB:g})",
                "streams": [],
            }
        )
    delta = {k: counters_after[k] - counters_before[k] for k in counters_after}
    violations.extend({**rerun, **v} for v in counter_check(streams, delta))
    per_stream = [
        {**s.schedule.names(), "check": check, "detail": detail, "result": s.result}
        for s in streams
        for check, detail in s.problems
    ]
    violations.extend(per_stream)  # after the global ones, by stream
    document = make_document(
        options,
        schedules,
        soak,
        streams,
        violations,
        warming=warming,
        fds=(fds_before, fds_after),
        memory=(memory_before, memory_after, peak, peak_how),
        health=(counters_before, counters_after, delta),
    )
    document["_streams"] = streams
    return document
