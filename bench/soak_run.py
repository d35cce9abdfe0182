"""The chaos soak's run (`bench/soak.py`): a fake provider and the target started, a warm-up,
the streams driven `concurrency` at a time while the target's processes are watched, then
the global checks on the target."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.relay_probes import cpu_seconds, group
from bench.soak_checks import (
    CANDIDATES,
    KEEPALIVE_BOUND,
    RSS_LIMIT_MIB,
    STALL_LIMIT,
    STORM,
    counter_check,
    judge,
    judge_upstream,
    premise,
    released,
    settle_severity,
)
from bench.soak_client import Stream, exchange
from bench.soak_probes import counters, fd_classes, health, memory_kib, settle
from bench.soak_report import describe, make_document
from bench.soak_schedules import Schedule, schedule
from streamproof.fake_providers import FakeProvider
from streamproof.fake_providers.scenario import Scenario
from streamproof.harness.profiles import REFERENCE, Profile, settled_timeouts
from streamproof.harness.sut import patience_for
from streamproof.harness.targets import BOUNDS, ProcessTarget, Timeouts
from streamproof.harness.upstream import Slow
from streamproof.harness.wire import redact

DEFAULT_SEED = 20250131
DEFAULT_STREAMS = 10_000
DEFAULT_CONCURRENCY = 100
DEFAULT_MAX_SECONDS = 300.0
SETTLE_BOUND = 20.0  # seconds for active == 0, every attempt over, fds back (each)
SAMPLE = 0.25  # seconds between two readings of the target's processes during the soak
AS_RAN = 3  # violations (and notes) of each check shown as they ran, both sides


@dataclass
class Options:
    seed: int = DEFAULT_SEED
    streams: int = DEFAULT_STREAMS
    concurrency: int = DEFAULT_CONCURRENCY
    max_seconds: float = DEFAULT_MAX_SECONDS
    indices: Sequence[int] | None = None  # these streams only (replay); else range(streams)
    profile: Profile = REFERENCE  # the target, its timers settled (`profiles.choose`)
    # Strict: what a careful proxy does is a violation too (the bundled proxy promises it).
    strict: bool = True
    target_args: str = ""  # the command line's target options, for the replays it prints
    command: str = "bench/soak.py"  # the command that runs this soak again
    warmup: int | None = None  # streams per warm-up wave; None: the concurrency
    quiet: bool = False

    @property
    def timeouts(self) -> Timeouts:
        """The target's timers: its profile's, settled as `profiles.choose` settles them."""
        return self.profile.timeouts or settled_timeouts(self.profile, self.profile.offers)


@dataclass
class Watch:
    """The target's processes, read every SAMPLE seconds while the streams run."""

    leader: int
    port: int
    fake_port: int
    samples: list[dict[str, Any]] = field(default_factory=list)

    def read(self, started: float, done: Sized) -> dict[str, Any]:
        pids = group(self.leader)
        return {
            "t": round(time.perf_counter() - started, 3),
            "done": len(done),
            "processes": len(pids),
            "fds": fd_classes(pids, self.port, self.fake_port),
            "rss_kib": memory_kib(pids)["VmRSS"],
            "cpu_s": round(cpu_seconds(pids), 2),
        }


@dataclass
class Run:
    streams: list[Stream]
    wall: float
    stopped_early: bool
    samples: list[dict[str, Any]]
    started: float  # time.perf_counter() when the first stream was launched: the plots' 0


@dataclass
class Setting:
    """What a load runs against, once the target is warm and its baseline read."""

    options: Options
    schedules: list[Schedule]
    provider: FakeProvider
    target: ProcessTarget
    watch: Watch
    headers: dict[str, str]
    workdir: Path
    say: Callable[[str], None]


# A load other than this process's asyncio clients (Locust's, bench/soak_locust.py): it
# runs the schedules and judges each stream (`judge`), and gives back the run, what it adds
# to the report, and violations of its own.
Load = Callable[[Setting], tuple["Run", dict[str, Any], list[dict[str, Any]]]]


async def drive(
    port: int,
    provider: FakeProvider,
    schedules: Iterable[Schedule],
    options: Options,
    max_seconds: float,
    *,
    headers: dict[str, str],
    watch: Watch | None = None,
    progress: Callable[[int], None] | None = None,
) -> Run:
    """Run the streams, `concurrency` at a time, launching none after `max_seconds`."""
    started = time.perf_counter()
    slots = asyncio.Semaphore(options.concurrency)
    done: list[Stream] = []
    samples: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    stopped = False

    async def one(s: Schedule) -> None:
        try:
            journal = provider.journal(s.scenario.nonce)
            until = patience_for(options.timeouts, journal).until
            transcript, left = await exchange(port, s, until, headers)
            stream = Stream(s, transcript, left, journal)
            judge(stream)
            done.append(stream)
            if progress is not None:
                progress(len(done))
        finally:
            slots.release()

    async def sample() -> None:
        while watch is not None:
            samples.append(watch.read(started, done))
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
    if watch is not None:
        samples.append(watch.read(started, done))
    return Run(done, time.perf_counter() - started, stopped, samples, started)


def _warm_schedules(seed: int, count: int) -> list[Schedule]:
    """The warm-up: a wave of slow clean streams (all open at once), then a wave of mixed
    schedules (every code path taken before the baseline is read)."""
    clean = [
        Schedule(seed, i, Scenario(nonce=f"w{seed}x{i}", faults=(Slow(25),))) for i in range(count)
    ]
    return clean + [schedule(seed, i, tag="m") for i in range(count)]


def stall_limit(options: Options) -> float:
    """How long the fake holds a stall nobody cuts. In a strict run, STALL_LIMIT: the
    bundled proxy's timers are well under a second. Otherwise longer than the client waits
    on a stall (the target's longest timer, or bound, with tolerance), as in the suites:
    a target is judged by what it does, never by the fake giving up first."""
    if options.strict:
        return STALL_LIMIT
    t = options.timeouts
    longest = max(t.bound(name) for name in BOUNDS)
    return max(STALL_LIMIT, 2 * longest + 10.0)


def run(
    options: Options,
    say: Callable[[str], None],
    keep: list[Stream] | None = None,
    load: Load | None = None,
) -> dict[str, Any]:
    """The whole soak; the report as a document. `keep` receives the streams that ran;
    `load` runs them instead of this process's asyncio clients."""
    indices = list(options.indices if options.indices is not None else range(options.streams))
    schedules = [schedule(options.seed, i) for i in indices]
    warm = options.warmup if options.warmup is not None else options.concurrency
    profile = options.profile
    assert profile.command is not None  # `profiles.choose` takes only started targets
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as workdir,
        FakeProvider(stall_limit=stall_limit(options)) as provider,
    ):
        target = ProcessTarget(
            profile.command,
            provider.base_url,
            Path(workdir),
            timeouts=options.timeouts,
            name=profile.name,
            environment=profile.environment,
            readiness=profile.readiness,
            files=profile.files,
            cwd=Path.cwd(),
        )
        target.start()
        try:
            assert target.pid is not None
            say(
                f"{profile.name}: pid {target.pid} on port {target.port}; fake provider on port "
                f"{provider.port}; {'strict' if options.strict else 'harms only'}; timers "
                f"{options.timeouts.describe()}"
            )
            headers = {name: target.fill(value) for name, value in profile.headers.items()}
            watch = Watch(target.pid, target.port, provider.port)
            setting = Setting(
                options, schedules, provider, target, watch, headers, Path(workdir), say
            )
            document = _soak(setting, warm, load)
            ran: list[Stream] = document.pop("_streams")
            if keep is not None:
                keep.extend(ran)
            document["proxy_log_tail"] = target.log_tail(5)
        finally:
            target.stop()
        kept = target.keep_log(Path(workdir) / "kept")  # its whole output, keys redacted
        document["_log"] = kept.read_text() if kept is not None else ""
    return document


def _soak(setting: Setting, warm: int, load: Load | None) -> dict[str, Any]:
    options, schedules, provider = setting.options, setting.schedules, setting.provider
    watch, headers, say = setting.watch, setting.headers, setting.say
    port, base = setting.target.port, setting.target.base_url
    offers_health = "health" in options.profile.offers
    violations: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    # A global violation is replayed by the whole run: the schedules are the seed's.
    rerun = {
        "seed": options.seed,
        "rerun": f"python {options.command} --seed {options.seed} --streams {options.streams} "
        f"--concurrency {options.concurrency}{options.target_args}",
    }

    def classes() -> dict[str, int]:
        return fd_classes(group(watch.leader), port, provider.port)

    def idle() -> bool:
        return not offers_health or health(base)["requests"]["active"] == 0

    # Warm-up: not judged; the baseline is what the target holds once it has seen every path.
    warming = asyncio.run(
        drive(
            port,
            provider,
            _warm_schedules(options.seed, warm),
            options,
            1e9,
            headers=headers,
        )
    )
    say(f"warm-up: {len(warming.streams)} streams in {warming.wall:.1f} s")
    idle_before = settle(idle, SETTLE_BOUND)
    readings: list[dict[str, int]] = []

    def steady() -> bool:  # no client connection left, and the same count twice running
        readings.append(classes())
        return readings[-1]["client"] == 0 and readings[-2:] == [readings[-1]] * 2

    settle(steady, SETTLE_BOUND)
    fds_before = readings[-1]
    counters_before = counters(health(base)) if offers_health else None
    pids = group(watch.leader)
    memory_before = memory_kib(pids)
    one = len(pids) == 1 and _reset_peak(pids[0])
    peak_how = "VmHWM (reset after the warm-up)" if one else "the largest sum of VmRSS samples"
    say(
        f"baseline: {len(pids)} process(es), fds {fds_before}, RSS "
        f"{memory_before['VmRSS'] / 1024:.1f} MiB"
        + (f", counters {counters_before}" if counters_before is not None else "")
    )
    step = max(1, len(schedules) // 10)

    def progress(count: int) -> None:
        if count % step == 0:
            say(f"{count} of {len(schedules)} streams done")

    extra: dict[str, Any] = {}
    if load is None:
        soak = asyncio.run(
            drive(
                port,
                provider,
                schedules,
                options,
                options.max_seconds,
                headers=headers,
                watch=watch,
                progress=None if options.quiet else progress,
            )
        )
    else:
        soak, extra, found = load(setting)
        violations.extend({**rerun, **v} if "index" not in v else v for v in found)
    streams = sorted(soak.streams, key=lambda s: s.schedule.index)
    say(f"{len(streams)} streams in {soak.wall:.1f} s; settling")
    # Global checks, each a bounded wait on the target.
    idle_after = settle(idle, SETTLE_BOUND)
    if offers_health and (not idle_after or not idle_before):
        active = health(base)["requests"]["active"]
        violations.append(
            {
                "check": "active-not-zero",
                **rerun,
                "detail": f"requests.active still {active} after {SETTLE_BOUND:g} s",
                "streams": [s.schedule.names(options.target_args) for s in streams[:CANDIDATES]],
            }
        )
    max_attempts = options.profile.offers.max_attempts or STORM
    deadline = time.monotonic() + SETTLE_BOUND
    for stream in streams:
        stream.journal.wait_for(
            lambda j: all(released(a) for a in j.attempts), max(0.0, deadline - time.monotonic())
        )
        judge_upstream(stream, max_attempts)
        settle_severity(stream, options.strict)
    readings.clear()
    # Idle upstream connections a target may keep for reuse: the bundled proxy's pool, or
    # for another target one per stream that was ever in flight at once, never one per
    # stream sent (that is a client per stream, never closed: a leak).
    pool = KEEPALIVE_BOUND if options.strict else options.concurrency
    pooled = max(fds_before["upstream"], pool)

    def back() -> bool:
        readings.append(classes())
        now = readings[-1]
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
                f"(client sockets must be 0, upstream at most {pooled} idle in a keep-alive "
                "pool or the baseline's, the others at most the baseline's)",
                "streams": [
                    s.schedule.names(options.target_args) for s in streams if s.result == "left"
                ][:CANDIDATES],
            }
        )
    pids = group(watch.leader)
    memory_after = memory_kib(pids)
    sampled = [sample["rss_kib"] for sample in soak.samples]
    peak = memory_after["VmHWM"] if peak_how.startswith("VmHWM") else max(sampled, default=0)
    growth = (peak - memory_before["VmRSS"]) / 1024
    if growth > RSS_LIMIT_MIB:
        finding = {
            "check": "rss-growth",
            **rerun,
            "detail": f"peak RSS {peak / 1024:.1f} MiB, {growth:.1f} MiB over the "
            f"baseline {memory_before['VmRSS'] / 1024:.1f} MiB (limit {RSS_LIMIT_MIB:g})",
            "streams": [],
        }
        (violations if options.strict else notes).append(finding)
    delta: dict[str, int] | None = None
    counters_after: dict[str, int] | None = None
    if counters_before is not None:
        counters_after = counters(health(base))
        delta = {k: counters_after[k] - counters_before[k] for k in counters_after}
        violations.extend(
            {**rerun, **v} for v in counter_check(streams, delta, options.target_args)
        )
    violations.extend({**rerun, **v} for v in premise(streams, options.target_args))
    violations.extend(_per_stream(streams, options, "problems"))  # after the global ones
    notes.extend(_per_stream(streams, options, "notes"))
    document = make_document(
        options,
        schedules,
        soak,
        streams,
        violations,
        notes,
        warming=warming,
        fds=(fds_before, fds_after),
        memory=(memory_before, memory_after, peak, peak_how),
        health=(counters_before, counters_after, delta),
    )
    document.update(extra)
    document["_streams"] = streams
    return document


def _reset_peak(pid: int) -> bool:
    """VmHWM := VmRSS, from here on; False where that is refused (the samples tell then)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _per_stream(streams: list[Stream], options: Options, which: str) -> list[dict[str, Any]]:
    """Each stream's problems (or notes) for the report; the first AS_RAN of each check
    carry the stream as it ran, both sides, redacted."""
    shown: Counter[str] = Counter()
    found = []
    for s in streams:
        for check, detail in getattr(s, which):
            entry = {**s.schedule.names(options.target_args), "check": check, "detail": detail}
            entry["result"] = s.result
            shown[check] += 1
            if shown[check] <= AS_RAN:
                entry["as_ran"] = redact(describe(s))
            found.append(entry)
    return found
