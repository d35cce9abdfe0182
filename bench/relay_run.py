"""The relay bench's run (`bench/relay_bench.py`): the fake provider started, then one
session per proxy, each in a process of its own, and every measure taken on its path and on
the direct one.

A session starts one proxy, measures it with the direct path taken in turn with it (in
blocks, see `relay_measures.sequential`), and stops it before the next session starts: no
proxy's background work (LiteLLM's above all) weighs on another's figures, and each proxy
is compared with the direct path as it was measured in its own session, on the machine as
it was then. The fake provider serves every session; it keeps nothing from one request to
the next (`bench.fake_server`)."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.relay_client import DIRECT, REFERENCE, Route
from bench.relay_measures import (
    FAKE_CHUNKS,
    IDLE,
    LEVELS,
    STREAM_MODEL,
    TTFB_MODEL,
    Settings,
    fake_rate,
    load,
    sequential,
    stream_figures,
    ttfb_figures,
)
from bench.relay_probes import Meters, children, group, peak_rss_mib
from streamproof.harness.profiles import DEFAULT_FILE, ProfileError, load_profiles
from streamproof.harness.targets import BUNDLED, ProcessTarget, TargetError, Timeouts

ROOT = Path(__file__).resolve().parent.parent
# Timers for the proxy under load: beyond any stream of this benchmark, so none is cut.
BENCH_TIMEOUTS = Timeouts(connect=1.0, first_byte=30.0, idle=30.0, total=300.0)


class Fake:
    """`bench.fake_server` in a process of its own; it ends when its stdin closes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_server"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the fake provider did not start (it printed {line!r})")
        self.port = int(line)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_target(name: str, fake: Fake, workdir: Path, extra: list[str], stack: ExitStack) -> Route:
    """Start the reference proxy (name REFERENCE) or a profile of targets.toml."""
    if name == REFERENCE:
        command, headers = BUNDLED, {}
        target = ProcessTarget(BUNDLED, fake.base_url, workdir, timeouts=BENCH_TIMEOUTS)
    else:
        profile = load_profiles(ROOT / DEFAULT_FILE).get(name)
        if profile is None or profile.command is None:
            known = ", ".join(sorted(load_profiles(ROOT / DEFAULT_FILE)))
            raise ProfileError(f"--target {name}: no started profile of that name ({known})")
        command, headers = profile.command, dict(profile.headers)
        target = ProcessTarget(
            command,
            fake.base_url,
            workdir,
            timeouts=profile.timeouts or BENCH_TIMEOUTS,
            name=name,
            environment=profile.environment,
            readiness=profile.readiness,
            files=profile.files,
        )
    before = children()
    target.start()
    stack.callback(target.stop)
    started = children() - before
    if len(started) != 1:
        raise TargetError(f"{name}: expected one new process, found {sorted(started)}")
    extra.append(command)
    # The headers' placeholders ({api_key}, {upstream}, ...) have values once it is started.
    headers = {header: target.fill(value) for header, value in headers.items()}
    return Route(name, target.port, headers, leader=started.pop())


async def measure(
    routes: list[Route], meters: Meters, settings: Settings, say: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {route.name: {} for route in routes}
    gc.collect()
    gc.disable()  # a collection in the middle of a timing would be the client's, not theirs
    try:
        await _measure(routes, meters, settings, say, results)
    finally:
        gc.enable()
    return results


async def _measure(
    routes: list[Route],
    meters: Meters,
    settings: Settings,
    say: Callable[[str], None],
    results: dict[str, dict[str, Any]],
) -> None:
    say(f"warming up ({settings.warmup} streams per path)")
    await sequential(routes, STREAM_MODEL, settings.warmup)
    say(f"time to first byte: {settings.ttfb_samples} x {TTFB_MODEL} per path, in blocks")
    for name, responses in (await sequential(routes, TTFB_MODEL, settings.ttfb_samples)).items():
        results[name]["ttfb"] = ttfb_figures(responses)
    gc.collect()
    idle = settings.ttfb_samples // 3
    say(f"time to first byte after {1000 * IDLE:g} ms idle: {idle} per path")
    after_idle = await sequential(routes, TTFB_MODEL, idle, pause=IDLE)
    for name, responses in after_idle.items():
        results[name]["ttfb_after_idle"] = ttfb_figures(responses)
    gc.collect()
    say(f"200-chunk streams: {settings.stream_samples} per path, in turn")
    streams = await sequential(routes, STREAM_MODEL, settings.stream_samples, keep_arrivals=True)
    for name, responses in streams.items():
        results[name]["stream"] = stream_figures(responses)
    del streams
    gc.collect()
    for level in LEVELS:
        for route in routes:
            say(f"throughput: {level} concurrent on {route.name} for {settings.seconds:g} s")
            row = await load(route, meters, level, settings.seconds)
            results[route.name].setdefault("throughput", {})[str(level)] = row
    for route in routes:
        if route.leader is not None:
            rows = results[route.name]["throughput"].values()
            cpu = sum(row["proxy_cpu_s"] for row in rows)
            chunks = sum(row["chunks"] for row in rows)
            results[route.name]["proxy"] = {
                "cpu_s_per_1k_chunks": round(1000 * cpu / max(1, chunks), 5),
                "peak_rss_mib": round(peak_rss_mib(group(route.leader)), 1),
            }


def run(
    targets: Sequence[str], settings: Settings, say: Callable[[str], None]
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, Any], list[str]]:
    """The fake alone, then one session per proxy (the reference proxy first, then
    `targets` in their order): each session's figures for the direct path and its proxy,
    by proxy; the fake's own figures; and the commands of the proxies started."""
    commands: list[str] = []
    sessions: dict[str, dict[str, dict[str, Any]]] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="relay-bench-") as workdir:
        fake = Fake()
        stack.callback(fake.stop)
        say(f"fake provider on port {fake.port} (pid {fake.process.pid})")
        say(f"the fake alone: one stream of {FAKE_CHUNKS:,} chunks")
        fake_figures = fake_rate(fake.port, fake.process.pid, FAKE_CHUNKS)
        for name in [REFERENCE, *targets]:
            folder = Path(workdir) / name
            folder.mkdir()
            with ExitStack() as session:  # the proxy is stopped before the next one starts
                route = start_target(name, fake, folder, commands, session)
                say(f"session {name}: on port {route.port} (pid {route.leader})")
                routes = [Route(DIRECT, fake.port), route]
                meters = Meters(fake.process.pid, routes)
                sessions[name] = asyncio.run(measure(routes, meters, settings, say))
        fake_figures["peak_rss_mib"] = round(peak_rss_mib([fake.process.pid]), 1)
    return sessions, fake_figures, commands
