"""What the reference proxy costs a stream: the same scenarios direct and through it.

`make bench`, or `.venv/bin/python bench/relay_bench.py [--quick] [--target NAME ...]`.
In one run on 127.0.0.1 it starts the fake provider (`bench.fake_server`, a process of its
own) and the bundled reference proxy (`ProcessTarget` with the `BUNDLED` template, on an
inherited socket, as the harness starts it), then streams the same requests directly from
the fake and through the proxy:

- time to first byte: N sequential `streamproof.chunks-8` streams per path, in blocks of
  N/ROUNDS per path taken in turn, each block alone on the machine (see `sequential`).
  The time runs from the clock read just before the request is written to the first byte
  of the event stream (the response body; the fake sends its headers a write earlier, the
  proxy with its first event). Median and p99 (nearest rank). The same again, fewer, with
  IDLE seconds of quiet before each stream: what a first byte costs a machine that was
  idle (on this VM, waking an idle process is not free, and a proxy adds a process);
- a 200-chunk stream (`streamproof.chunks-200`: a role chunk, 200 content chunks, a finish
  chunk and `[DONE]`), in blocks the same way: its total time, and the added latency per
  chunk, the difference of the median times from first to last body byte divided by the
  202 gaps between the 203 events (beside it, the median gap between events as they
  arrive, and the whole-stream difference divided by 200);
- throughput: streams/s and chunks/s (events received) of `streamproof.chunks-200` at 1,
  20 and 100 concurrent streams, each stream on a keep-alive connection of its own, for a
  fixed time per level (each connection first streams once, untimed). A level ends when
  its last stream ends, so every stream started is counted whole. Each level also records
  the CPU of the client, the fake and the proxy over wall time: whichever sits at a full
  core sets the pace;
- the proxy's CPU seconds per 1,000 chunks over its throughput levels (utime + stime from
  /proc/<pid>/stat of its process group, before and after) and its peak RSS (VmHWM);
- the fake provider's own rate, two ways, the lower of which is held against the goal:
  one stream of 100,000 chunks read by a plain socket with 1 MiB reads, the fake pinned to
  one core and the reader to another, request to last byte (building the answer takes
  most of a second of it; the rate while serving is given too); and its chunks per CPU
  second while serving 200-chunk streams directly at each level.

The client is one asyncio event loop speaking HTTP/1.1 itself (a `Protocol` with a small
chunked-body decoder that counts events on blank lines), with none of an HTTP library's
per-chunk work, and the garbage collector off while it measures. It checks itself: the CPU
it used in each throughput level (process time over wall time) and per chunk received is in
the report, and a level where it was busy more than CLIENT_BUSY of the time is flagged as
possibly client-bound. The share of the machine the hypervisor stole is in `host`.

The proxy runs with the config the harness writes, but with benchmark timeouts (first byte,
idle and total far beyond any stream here) so that no timer of the test config cuts a
stream at 100 concurrent. `--target NAME` adds a profile of targets.toml (e.g. `litellm`,
after `make litellm`) measured the same way in the same run, with the issue's "10x better"
comparisons. The table is printed; the figures go to reports/bench.json (`--out`) and a
picture to reports/bench.svg (`--svg`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_providers.chat import DEFAULT_MESSAGES
from harness.profiles import DEFAULT_FILE, ProfileError, load_profiles
from harness.targets import BUNDLED, ProcessTarget, TargetError, Timeouts

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "bench.json"
PICTURE = ROOT / "reports" / "bench.svg"
DIRECT, REFERENCE = "direct", "reference"
TTFB_MODEL = "streamproof.chunks-8"
STREAM_CHUNKS = 200
STREAM_MODEL = f"streamproof.chunks-{STREAM_CHUNKS}"
FAKE_CHUNKS = 100_000  # the most a scenario allows
LEVELS = (1, 20, 100)  # concurrent streams
ROUNDS = 5  # blocks per route in the sequential measures, the routes taken in turn
SETTLE = 0.05  # seconds of quiet after each block and before each throughput level
IDLE = 0.002  # seconds of quiet before each stream of the "after idle" first-byte measure
CLIENT_BUSY = 0.8  # a level where the client's CPU was busier than this may be client-bound
# Timers for the proxy under load: beyond any stream of this benchmark, so none is cut.
BENCH_TIMEOUTS = Timeouts(connect=1.0, first_byte=30.0, idle=30.0, total=300.0)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GOALS = {  # the goals for the reference proxy against the direct connection
    "added_ttfb_median_ms": 1.0,
    "added_per_chunk_us": 30.0,
    "throughput_20_ratio": 0.5,
    "fake_chunks_per_s": 50_000.0,
}


@dataclass(frozen=True)
class Settings:
    ttfb_samples: int  # sequential short streams per path
    stream_samples: int  # sequential 200-chunk streams per path
    seconds: float  # per throughput level and path
    warmup: int  # untimed streams per path before anything is measured


FULL = Settings(ttfb_samples=1000, stream_samples=200, seconds=8.0, warmup=30)
QUICK = Settings(ttfb_samples=150, stream_samples=30, seconds=1.0, warmup=10)


# --- the client: HTTP/1.1 on asyncio, one response at a time per connection -------------


class HTTPFailure(Exception):
    """A response that was not a complete 200 event stream."""


HEAD, SIZE, DATA, DATA_END, TRAILER, SIZED, DONE = range(7)


class Response:
    """One response, decoded incrementally: status, then a chunked or sized body.

    It counts events (a blank line, `\\n\\n`, in the body: the fake and the proxy both
    write LF line endings here) and notes the times of the first response byte, the first
    and last body bytes and, if asked, each event's arrival.
    """

    def __init__(self, sent: float, keep_arrivals: bool) -> None:
        self.sent = sent
        self.head_at = 0.0  # first byte of the response
        self.first_at = 0.0  # first byte of the body
        self.end_at = 0.0  # last byte of the body
        self.events = 0
        self.arrivals: list[float] | None = [] if keep_arrivals else None
        self.done = False
        self.status = 0
        self._state = HEAD
        self._buffer = b""
        self._left = 0
        self._newline = False  # the body so far ends with "\n"

    def feed(self, data: bytes, now: float) -> bool:
        """Take bytes read at `now`; say whether the response is complete."""
        if not self.head_at:
            self.head_at = now
        buffer = self._buffer + data if self._buffer else data
        at, size = 0, len(buffer)
        state = self._state
        while at < size or state == DONE:
            if state == DATA or state == SIZED:
                take = min(self._left, size - at)
                self._body(buffer[at : at + take], now)
                at += take
                self._left -= take
                if not self._left:
                    state = DATA_END if state == DATA else DONE
            elif state == SIZE:
                end = buffer.find(b"\r\n", at)
                if end < 0:
                    break
                chunk = int(buffer[at:end].split(b";", 1)[0], 16)
                at = end + 2
                state, self._left = (DATA, chunk) if chunk else (TRAILER, 0)
            elif state == DATA_END:
                if size - at < 2:
                    break
                at += 2
                state = SIZE
            elif state == TRAILER:
                end = buffer.find(b"\r\n", at)
                if end < 0:
                    break
                state = TRAILER if end > at else DONE  # a blank line ends the trailers
                at = end + 2
            elif state == HEAD:
                end = buffer.find(b"\r\n\r\n", at)
                if end < 0:
                    break
                state = self._head(buffer[at:end])
                at = end + 4
            else:  # DONE
                if at < size:
                    raise HTTPFailure(f"{size - at} bytes after the end of the response")
                self.done = True
                self.end_at = self.end_at or now
                break
        self._state = state
        self._buffer = buffer[at:]
        return self.done

    def _head(self, head: bytes) -> int:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        if self.status != 200:
            raise HTTPFailure(f"status {self.status}")
        if fields.get(b"transfer-encoding") == b"chunked":
            return SIZE
        self._left = int(fields.get(b"content-length", b"-1"))
        if self._left < 0:
            raise HTTPFailure("a body with neither chunked encoding nor a length")
        return SIZED if self._left else DONE

    def _body(self, piece: bytes, now: float) -> None:
        if not piece:
            return
        if not self.first_at:
            self.first_at = now
        self.end_at = now
        events = piece.count(b"\n\n") + (self._newline and piece[0] == 10)
        self._newline = piece[-1] == 10
        if events:
            self.events += events
            if self.arrivals is not None:
                self.arrivals.extend([now] * events)


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one stream after another."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._response: Response | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        response, waiter = self._response, self._waiter
        if response is None or waiter is None:
            self._fail(HTTPFailure("bytes arrived with no request outstanding"))
            return
        try:
            done = response.feed(data, now)
        except (HTTPFailure, ValueError, IndexError) as exc:
            self._fail(exc if isinstance(exc, HTTPFailure) else HTTPFailure(repr(exc)))
            return
        if done:
            self._response = self._waiter = None
            waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HTTPFailure(f"connection closed: {exc or 'EOF'}"))

    def _fail(self, exc: Exception) -> None:
        self._lost = exc
        waiter, self._waiter, self._response = self._waiter, None, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return self._lost is None and self.transport is not None

    async def fetch(self, request: bytes, keep_arrivals: bool = False) -> Response:
        if self._lost is not None or self.transport is None:
            raise HTTPFailure(f"connection unusable: {self._lost}")
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        response = Response(0.0, keep_arrivals)
        self._waiter, self._response = waiter, response
        response.sent = time.perf_counter()  # allocations first: the clock right before the write
        self.transport.write(request)
        return await waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Route:
    """One way to the fake provider: directly, or through a proxy."""

    name: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)
    leader: int | None = None  # the proxy's process (group leader), None for direct

    def request(self, model: str) -> bytes:
        body = json.dumps(
            {"model": model, "stream": True, "messages": list(DEFAULT_MESSAGES)},
            separators=(",", ":"),
        ).encode()
        lines = [
            "POST /v1/chat/completions HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(Connection, "127.0.0.1", self.port)
        return protocol


class Lane:
    """A route's keep-alive connection, opened again when the server closed it while idle
    (uvicorn does after 5 s, which a slow proxy's connection can spend waiting for the
    others of its level); `reconnects` counts those."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.reconnects = 0
        self._conn: Connection | None = None

    async def open(self) -> Lane:
        self._conn = await self.route.connect()
        return self

    async def fetch(self, request: bytes, keep_arrivals: bool = False) -> Response:
        if self._conn is None or not self._conn.usable:
            self.reconnects += self._conn is not None
            self._conn = await self.route.connect()
        return await self._conn.fetch(request, keep_arrivals)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


# --- processes: CPU and memory from /proc ----------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onward), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def children() -> set[int]:
    """The processes this one started (direct children)."""
    me = str(os.getpid())
    return {pid for pid in _pids() if (fields := _stat(pid)) is not None and fields[1] == me}


def group(leader: int) -> list[int]:
    """The processes of `leader`'s process group (a proxy may run workers of its own)."""
    return [
        pid for pid in _pids() if (fields := _stat(pid)) is not None and fields[2] == str(leader)
    ]


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes, in seconds (clock-tick resolution)."""
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def peak_rss_mib(pids: Sequence[int]) -> float:
    """The sum of the processes' peak resident set sizes (VmHWM), in MiB."""
    kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                kib += int(line.split()[1])
    return kib / 1024


def steal_ticks() -> tuple[int, int]:
    """(steal, all) clock ticks of every CPU so far, from /proc/stat: how much of the
    machine a hypervisor gave to someone else."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


@dataclass
class Meters:
    """CPU seconds of the client (this process), the fake and each proxy, read together."""

    fake: int
    routes: list[Route]

    def read(self) -> dict[str, float]:
        reading = {"client": time.process_time(), "fake": cpu_seconds([self.fake])}
        for route in self.routes:
            if route.leader is not None:
                reading[route.name] = cpu_seconds(group(route.leader))
        return reading


# --- figures -----------------------------------------------------------------------------


def quantile(samples: Sequence[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 4)


def us(seconds: float) -> float:
    return round(seconds * 1e6, 2)


# --- the measures --------------------------------------------------------------------------


async def sequential(
    routes: list[Route],
    model: str,
    samples: int,
    *,
    keep_arrivals: bool = False,
    pause: float = 0.0,
) -> dict[str, list[Response]]:
    """`samples` streams per route, one at a time: ROUNDS blocks per route, taken in turn.

    Blocks, not single streams in turn: what a proxy does once its client has the last byte
    (its log line, its health record, its usage count) would otherwise land on the next
    direct stream, which is meant to be what a client sees with no proxy at all. Within a
    block it lands on the proxy's own next stream, as it does for any client of a proxy in
    use. SETTLE seconds of quiet end each block; `pause` seconds follow each stream.
    """
    connections = [await Lane(route).open() for route in routes]
    requests = [route.request(model) for route in routes]
    got: dict[str, list[Response]] = {route.name: [] for route in routes}
    try:
        for block in range(ROUNDS):
            size = samples // ROUNDS + (block < samples % ROUNDS)
            for route, conn, request in zip(routes, connections, requests, strict=True):
                for _ in range(size):
                    got[route.name].append(await conn.fetch(request, keep_arrivals))
                    if pause:
                        await asyncio.sleep(pause)
                await asyncio.sleep(SETTLE)
    finally:
        for conn in connections:
            conn.close()
    return got


def ttfb_figures(responses: list[Response]) -> dict[str, Any]:
    ttfb = [r.first_at - r.sent for r in responses]
    head = [r.head_at - r.sent for r in responses]
    return {
        "streams": len(responses),
        "median_ms": ms(statistics.median(ttfb)),
        "p99_ms": ms(quantile(ttfb, 0.99)),
        "head_median_ms": ms(statistics.median(head)),
        "samples_ms": [ms(t) for t in ttfb],
    }


def stream_figures(responses: list[Response]) -> dict[str, Any]:
    total = [r.end_at - r.sent for r in responses]
    body = [r.end_at - r.first_at for r in responses]
    gaps = [
        later - earlier
        for r in responses
        if r.arrivals
        for earlier, later in zip(r.arrivals, r.arrivals[1:], strict=False)
    ]
    events = statistics.median(r.events for r in responses)
    return {
        "streams": len(responses),
        "events": events,
        "median_ms": ms(statistics.median(total)),
        "p99_ms": ms(quantile(total, 0.99)),
        "body_median_ms": ms(statistics.median(body)),
        "per_event_us": us(statistics.median(body) / max(1, events - 1)),
        "gap_median_us": us(statistics.median(gaps)) if gaps else None,
        "gap_p99_us": us(quantile(gaps, 0.99)) if gaps else None,
        "samples_ms": [ms(t) for t in total],
    }


async def load(route: Route, meters: Meters, concurrency: int, seconds: float) -> dict[str, Any]:
    """Streams of STREAM_MODEL on `concurrency` connections for `seconds` (see the docstring)."""
    connections = [await Lane(route).open() for _ in range(concurrency)]
    request = route.request(STREAM_MODEL)
    try:
        await asyncio.gather(*(conn.fetch(request) for conn in connections))  # warm, untimed
        reconnects = sum(conn.reconnects for conn in connections)
        await asyncio.sleep(SETTLE)
        gc.collect()
        before = meters.read()
        started = time.perf_counter()
        deadline = started + seconds

        failures: list[str] = []

        async def worker(conn: Lane) -> tuple[int, int]:
            streams = events = 0
            while time.perf_counter() < deadline:
                try:
                    response = await conn.fetch(request)
                except HTTPFailure as exc:  # counted and shown; the lane connects again
                    failures.append(str(exc))
                    continue
                streams += 1
                events += response.events
            return streams, events

        counts = await asyncio.gather(*(worker(conn) for conn in connections))
        wall = time.perf_counter() - started
        after = meters.read()
    finally:
        for conn in connections:
            conn.close()
    streams = sum(s for s, _ in counts)
    events = sum(e for _, e in counts)
    reconnects = sum(conn.reconnects for conn in connections) - reconnects
    used = {name: after[name] - before[name] for name in after}
    row: dict[str, Any] = {
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "streams": streams,
        "chunks": events,
        "streams_per_s": round(streams / wall, 1),
        "chunks_per_s": round(events / wall),
        "client_cpu": round(used["client"] / wall, 3),  # share of one core
        "client_cpu_us_per_chunk": us(used["client"] / max(1, events)),
        "fake_cpu": round(used["fake"] / wall, 3),
        "fake_chunks_per_cpu_s": round(events / used["fake"]) if used["fake"] > 0 else None,
    }
    if route.leader is not None:
        row["proxy_cpu"] = round(used[route.name] / wall, 3)
        row["proxy_cpu_s"] = round(used[route.name], 3)
        row["proxy_cpu_s_per_1k_chunks"] = round(1000 * used[route.name] / max(1, events), 5)
    row["client_bound"] = row["client_cpu"] > CLIENT_BUSY
    row["failed_streams"] = len(failures)
    row["failures"] = sorted(set(failures))[:5]
    row["reconnects"] = reconnects
    return row


def fake_rate(port: int, fake_pid: int, chunks: int) -> dict[str, Any]:
    """One stream of `chunks` chunks from the fake, read as fast as a socket can be read."""
    cpus = sorted(os.sched_getaffinity(0))
    mine = os.sched_getaffinity(0)
    theirs = os.sched_getaffinity(fake_pid)
    pinned = len(cpus) >= 2
    if pinned:
        os.sched_setaffinity(fake_pid, {cpus[0]})
        os.sched_setaffinity(0, {cpus[1]})
    route = Route(DIRECT, port)
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(route.request(f"streamproof.chunks-{chunks}"))
            response = Response(time.perf_counter(), keep_arrivals=False)
            client_before = time.process_time()
            cpu_at_first: float | None = None
            while not response.done:
                data = sock.recv(1 << 20)
                if not data:
                    raise HTTPFailure("the fake closed the connection mid-stream")
                response.feed(data, time.perf_counter())
                if cpu_at_first is None and response.first_at:
                    cpu_at_first = cpu_seconds([fake_pid])
            cpu_at_end = cpu_seconds([fake_pid])
            client = time.process_time() - client_before
    finally:
        if pinned:
            os.sched_setaffinity(fake_pid, theirs)
            os.sched_setaffinity(0, mine)
    serving = response.end_at - response.first_at
    whole = response.end_at - response.sent
    cpu = cpu_at_end - (cpu_at_first or 0.0)
    return {
        "chunks": chunks,
        "events": response.events,
        "pinned_to_one_core": pinned,
        "first_byte_ms": ms(response.first_at - response.sent),  # building its answer
        "serving_s": round(serving, 3),
        "serving_chunks_per_s": round(response.events / serving),
        "serving_cpu_s": round(cpu, 3),
        "serving_chunks_per_cpu_s": round(response.events / cpu) if cpu > 0 else None,
        "whole_s": round(whole, 3),
        "whole_chunks_per_s": round(response.events / whole),
        "reader_cpu_share": round(client / whole, 3),
    }


# --- the run -------------------------------------------------------------------------------


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


def compare(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """A proxied path's figures against the direct connection's."""
    mine, direct = results[name], results[DIRECT]
    body = mine["stream"]["body_median_ms"] - direct["stream"]["body_median_ms"]
    total = mine["stream"]["median_ms"] - direct["stream"]["median_ms"]
    gaps = max(1, direct["stream"]["events"] - 1)
    ratios = {
        level: round(row["chunks_per_s"] / direct["throughput"][level]["chunks_per_s"], 4)
        for level, row in mine["throughput"].items()
    }
    return {
        "added_ttfb_median_ms": round(mine["ttfb"]["median_ms"] - direct["ttfb"]["median_ms"], 4),
        "added_ttfb_p99_ms": round(mine["ttfb"]["p99_ms"] - direct["ttfb"]["p99_ms"], 4),
        "ttfb_median_ratio": round(mine["ttfb"]["median_ms"] / direct["ttfb"]["median_ms"], 2),
        "added_ttfb_after_idle_median_ms": round(
            mine["ttfb_after_idle"]["median_ms"] - direct["ttfb_after_idle"]["median_ms"], 4
        ),
        "added_stream_ms": round(total, 3),
        "stream_ratio": round(mine["stream"]["median_ms"] / direct["stream"]["median_ms"], 2),
        "added_per_chunk_us": round(1000 * body / gaps, 2),
        "added_per_chunk_total_us": round(1000 * total / STREAM_CHUNKS, 2),
        "throughput_ratio": ratios,
    }


def _goal(
    label: str, key: str, value: float, unit: str, target: float, at_most: bool, note: str
) -> dict[str, Any]:
    met = value <= target if at_most else value >= target
    return {
        "goal": label,
        "key": key,
        "measured": value,
        "unit": unit,
        "target": target,
        "at_most": at_most,
        "met": met,
        "note": note,
    }


def goals(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals against the figures; with another target, the 10x comparisons."""
    paths, versus = document["paths"], document["vs_direct"][REFERENCE]
    direct, ours = paths[DIRECT], paths[REFERENCE]
    fake = document["fake_provider"]
    out = [
        _goal(
            "added TTFB, median",
            "added_ttfb_median_ms",
            versus["added_ttfb_median_ms"],
            "ms",
            GOALS["added_ttfb_median_ms"],
            True,
            f"direct {direct['ttfb']['median_ms']:.2f} ms, proxied {ours['ttfb']['median_ms']:.2f}",
        ),
        _goal(
            "added latency per chunk",
            "added_per_chunk_us",
            versus["added_per_chunk_us"],
            "µs",
            GOALS["added_per_chunk_us"],
            True,
            f"direct {direct['stream']['per_event_us']:.1f} µs a chunk, "
            f"proxied {ours['stream']['per_event_us']:.1f}",
        ),
        _goal(
            "throughput at 20 vs direct",
            "throughput_20_ratio",
            versus["throughput_ratio"]["20"],
            "",
            GOALS["throughput_20_ratio"],
            False,
            f"{ours['throughput']['20']['chunks_per_s']:,} vs "
            f"{direct['throughput']['20']['chunks_per_s']:,} chunks/s",
        ),
        _goal(
            "fake provider, one core",
            "fake_chunks_per_s",
            fake["chunks_per_s"],
            "chunks/s",
            GOALS["fake_chunks_per_s"],
            False,
            f"lower of {fake['chunks_per_s_from']}",
        ),
    ]
    for name, other in document["vs_direct"].items():
        if name == REFERENCE:
            continue
        for label, key in (
            ("added TTFB", "added_ttfb_median_ms"),
            ("per chunk", "added_per_chunk_us"),
        ):
            mine, theirs = versus[key], other[key]
            times = round(theirs / mine, 1) if mine > 0 else 0.0
            note = f"{name} adds {theirs:g}, reference {mine:g}"
            out.append(
                _goal(
                    f"{label}: 10x better than {name}",
                    f"{key}_vs_{name}",
                    times,
                    "x",
                    10.0,
                    False,
                    note,
                )
            )
        mine, theirs = versus["throughput_ratio"]["20"], other["throughput_ratio"]["20"]
        times = round(mine / theirs, 1) if theirs > 0 else 0.0
        note = f"{name} {theirs:.1%} of direct, reference {mine:.1%}"
        out.append(
            _goal(
                f"throughput at 20: 10x {name}'s",
                f"throughput_20_vs_{name}",
                times,
                "x",
                10.0,
                False,
                note,
            )
        )
    return out


# --- the table -----------------------------------------------------------------------------


def table(document: dict[str, Any]) -> str:
    results, names = document["paths"], list(document["paths"])
    proxies = [name for name in names if name != DIRECT]
    vs = document["vs_direct"]
    label_w, width, versus_w = 34, 12, 30
    lines = [
        "".ljust(label_w)
        + "".join(name.rjust(width) for name in names)
        + "".join(f"{name} vs direct".rjust(versus_w) for name in proxies)
    ]

    def row(
        label: str, values: list[str], versus: Callable[[str], str | None] | None = None
    ) -> None:
        compared = [(versus(p) or "") if versus else "" for p in proxies]
        lines.append(
            label.ljust(label_w)
            + "".join(value.rjust(width) for value in values)
            + "".join(text.rjust(versus_w) for text in compared)
        )

    def each(figure: Callable[[dict[str, Any]], float], spec: str) -> list[str]:
        return [format(figure(results[name]), spec) for name in names]

    def cpu(name: str, level: str) -> str:
        parts = ("client_cpu", "fake_cpu", "proxy_cpu")
        got = results[name]["throughput"][level]
        return "/".join(f"{100 * got[part]:.0f}" if part in got else "-" for part in parts)

    row(
        "TTFB median, ms",
        each(lambda r: r["ttfb"]["median_ms"], ".3f"),
        lambda p: f"+{vs[p]['added_ttfb_median_ms']:.3f} ms ({vs[p]['ttfb_median_ratio']:.2f}x)",
    )
    row(
        "TTFB p99, ms",
        each(lambda r: r["ttfb"]["p99_ms"], ".3f"),
        lambda p: f"+{vs[p]['added_ttfb_p99_ms']:.3f} ms",
    )
    row(
        f"TTFB median after {1000 * IDLE:g} ms idle, ms",
        each(lambda r: r["ttfb_after_idle"]["median_ms"], ".3f"),
        lambda p: f"+{vs[p]['added_ttfb_after_idle_median_ms']:.3f} ms",
    )
    row(
        f"{STREAM_CHUNKS}-chunk stream median, ms",
        each(lambda r: r["stream"]["median_ms"], ".2f"),
        lambda p: f"+{vs[p]['added_stream_ms']:.2f} ms ({vs[p]['stream_ratio']:.2f}x)",
    )
    row(f"{STREAM_CHUNKS}-chunk stream p99, ms", each(lambda r: r["stream"]["p99_ms"], ".2f"))
    row(
        "per chunk, first to last byte, µs",
        each(lambda r: r["stream"]["per_event_us"], ".1f"),
        lambda p: f"+{vs[p]['added_per_chunk_us']:.1f} µs per chunk",
    )
    row(
        "gap between chunks, median µs",
        each(lambda r: r["stream"]["gap_median_us"] or 0.0, ".1f"),
        lambda p: f"(whole stream: +{vs[p]['added_per_chunk_total_us']:.1f} µs)",
    )
    for level in map(str, LEVELS):
        loads = [results[name]["throughput"][level] for name in names]
        share = {p: f"{vs[p]['throughput_ratio'][level]:.1%} of direct" for p in proxies}
        row(f"streams/s at {level}", [f"{got['streams_per_s']:,.1f}" for got in loads])
        row(f"chunks/s at {level}", [f"{got['chunks_per_s']:,.0f}" for got in loads], share.get)
    for level in map(str, LEVELS):
        row(f"CPU % at {level}: client/fake/proxy", [cpu(name, level) for name in names])
    row(
        "proxy CPU s per 1,000 chunks",
        ["-"] + [f"{results[p]['proxy']['cpu_s_per_1k_chunks']:.4f}" for p in proxies],
        lambda p: (
            "by level: "
            + "/".join(
                f"{results[p]['throughput'][str(level)]['proxy_cpu_s_per_1k_chunks']:.3f}"
                for level in LEVELS
            )
        ),
    )
    row(
        "proxy peak RSS, MiB",
        ["-"] + [f"{results[p]['proxy']['peak_rss_mib']:.1f}" for p in proxies],
    )
    fake, client = document["fake_provider"], document["client_check"]
    lines += [
        "",
        f"fake provider alone ({'pinned to one core, ' if fake['pinned_to_one_core'] else ''}"
        f"one stream of {fake['events']:,} chunks): {fake['whole_chunks_per_s']:,} chunks/s "
        f"whole ({fake['first_byte_ms']:.0f} ms building the answer, then "
        f"{fake['serving_chunks_per_s']:,}/s serving it; reader busy "
        f"{100 * fake['reader_cpu_share']:.0f}%)",
        "fake provider serving 200-chunk streams directly: "
        + ", ".join(
            f"{row['fake_chunks_per_cpu_s']:,} chunks per CPU second at {level}"
            for level, row in results[DIRECT]["throughput"].items()
        ),
        f"client check: at most {100 * client['max_cpu']:.0f}% of a core ({client['where']}), "
        f"at most {client['max_us_per_chunk']:.1f} µs CPU per chunk: "
        + ("POSSIBLY CLIENT-BOUND" if client["bound"] else "not the bottleneck"),
        *(
            f"FAILED streams: {row['failed_streams']} on {name} at {level}: {row['failures']}"
            for name in names
            for level, row in results[name]["throughput"].items()
            if row["failed_streams"]
        ),
        "",
        f"{'goal':<44} {'measured':>14} {'target':>14}  met",
    ]
    for goal in document["goals"]:
        sign = "≤" if goal["at_most"] else "≥"
        value, target = goal["measured"], goal["target"]
        if goal["unit"] == "":
            shown, wanted = f"{100 * value:.1f}%", f"{sign} {100 * target:.0f}%"
        elif goal["unit"] == "chunks/s":
            shown, wanted = f"{value:,.0f}/s", f"{sign} {target:,.0f}/s"
        else:
            shown, wanted = f"{value:.2f} {goal['unit']}", f"{sign} {target:g} {goal['unit']}"
        met = "yes" if goal["met"] else "NO"
        lines.append(f"{goal['goal']:<44} {shown:>14} {wanted:>14}  {met}")
    return "\n".join(lines)


# --- the picture ---------------------------------------------------------------------------

COLOURS = ["#5a6270", "#1f6fd1", "#e07b18", "#2f9e5b", "#b03a9e"]  # direct first
GOOD, BAD, INK, GREY, RULE = "#1d8a4a", "#c43c2a", "#1b1f24", "#5b636e", "#e3e7ec"


def _text(x: float, y: float, text: str, size: int = 13, **attrs: str) -> str:
    """A <text>; keyword attributes with `_` for `-` (text_anchor, font_weight)."""
    extra = "".join(f" {key.replace('_', '-')}='{value}'" for key, value in attrs.items())
    return f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}'{extra}>{escape(text)}</text>"


def _line(x1: float, y1: float, x2: float, y2: float, colour: str = RULE, **attrs: str) -> str:
    extra = "".join(f" {key.replace('_', '-')}='{value}'" for key, value in attrs.items())
    return (
        f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='{colour}'{extra}/>"
    )


def _frame(left: float, top: float, right: float, bottom: float) -> str:
    return (
        f"<rect x='{left:.1f}' y='{top:.1f}' width='{right - left:.1f}' "
        f"height='{bottom - top:.1f}' fill='#fafbfc' stroke='#cfd5dc'/>"
    )


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for step in (1, 2, 5):
            if low <= (value := step * 10.0**exponent) <= high:
                ticks.append(value)
    return ticks


def _short(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


def ecdf_panel(
    box: tuple[float, float, float, float], title: str, series: list[tuple[str, str, list[float]]]
) -> list[str]:
    """Each path's samples as a cumulative distribution on a log axis of milliseconds, with
    its median and p99 marked, and written out above the plot."""
    x0, y0, w, h = box
    left, right, top, bottom = x0 + 44, x0 + w, y0 + 12 + 20 * len(series), y0 + h - 36
    values = [v for _, _, samples in series for v in samples if v > 0]
    low, high = min(values) / 1.15, max(values) * 1.15
    span = math.log10(high / low)

    def sx(v: float) -> float:
        return left + math.log10(max(v, low) / low) / span * (right - left)

    def sy(share: float) -> float:
        return bottom - share * (bottom - top)

    out = [
        _text(x0, y0 - 10, title, 15, font_weight="bold", fill=INK),
        _frame(left, top, right, bottom),
    ]
    for tick in _log_ticks(low, high):
        out.append(_line(sx(tick), top, sx(tick), bottom))
        out.append(_text(sx(tick), bottom + 15, _short(tick), 11, text_anchor="middle", fill=GREY))
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(_line(left, sy(share), right, sy(share)))
        out.append(_text(left - 5, sy(share) + 4, f"{share:.0%}", 10, text_anchor="end", fill=GREY))
    out.append(
        _text(
            (left + right) / 2,
            bottom + 31,
            "milliseconds (log scale); y: share of streams at or under",
            11,
            text_anchor="middle",
            fill=GREY,
        )
    )
    for index, (name, colour, samples) in enumerate(series):
        ordered, n = sorted(samples), len(samples)
        points = [f"{sx(ordered[0]):.1f},{sy(0):.1f}"]
        for i, v in enumerate(ordered):
            points += [f"{sx(v):.1f},{sy(i / n):.1f}", f"{sx(v):.1f},{sy((i + 1) / n):.1f}"]
        out.append(
            f"<polyline points='{' '.join(points)}' fill='none' stroke='{colour}' "
            "stroke-width='2.2'/>"
        )
        median, p99 = statistics.median(ordered), quantile(ordered, 0.99)
        for value, share in ((median, 0.5), (p99, 0.99)):
            out.append(
                f"<circle cx='{sx(value):.1f}' cy='{sy(share):.1f}' r='4' "
                f"fill='{colour}' stroke='white'/>"
            )
        y = y0 + 8 + 20 * index
        out.append(
            f"<rect x='{left:.1f}' y='{y - 11:.1f}' width='12' height='12' fill='{colour}'/>"
        )
        out.append(
            _text(left + 18, y, f"{name}: median {median:.3g} ms, p99 {p99:.3g} ms", 13, fill=INK)
        )
    return out


def throughput_panel(box: tuple[float, float, float, float], document: dict[str, Any]) -> list[str]:
    """Chunks/s at each concurrency, a bar per path, each proxy's share of direct above it."""
    x0, y0, w, h = box
    results, names = document["paths"], list(document["paths"])
    left, right, top, bottom = x0 + 52, x0 + w, y0 + 22, y0 + h - 36
    peak = float(
        max(results[n]["throughput"][str(level)]["chunks_per_s"] for n in names for level in LEVELS)
    )
    unit = 10.0 ** math.floor(math.log10(peak))
    step = next(s * unit for s in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0) if peak * 1.2 / (s * unit) <= 6)
    ceiling = math.ceil(peak * 1.2 / step) * step

    def sy(v: float) -> float:
        return bottom - v / ceiling * (bottom - top)

    title = f"Throughput against concurrency ({STREAM_CHUNKS}-chunk streams)"
    out = [
        _text(x0, y0 - 10, title, 15, font_weight="bold", fill=INK),
        _frame(left, top, right, bottom),
    ]
    legend_x = left
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        out.append(
            f"<rect x='{legend_x:.1f}' y='{y0 - 3}' width='12' height='12' fill='{colour}'/>"
        )
        out.append(_text(legend_x + 18, y0 + 8, name, 13, fill=INK))
        legend_x += 18 + 8 * len(name) + 22
    value = 0.0
    while value <= ceiling + 1e-9:
        out.append(_line(left, sy(value), right, sy(value)))
        out.append(
            _text(left - 6, sy(value) + 4, _short(round(value)), 11, text_anchor="end", fill=GREY)
        )
        value += step
    middle = (top + bottom) / 2
    out.append(
        _text(
            x0 + 10,
            middle,
            "chunks/s",
            11,
            fill=GREY,
            text_anchor="middle",
            transform=f"rotate(-90 {x0 + 10} {middle:.1f})",
        )
    )
    group_w = (right - left) / len(LEVELS)
    bar_w = min(76.0, group_w * 0.78 / len(names))
    for g, level in enumerate(LEVELS):
        centre = left + group_w * (g + 0.5)
        out.append(
            _text(centre, bottom + 17, f"{level} concurrent", 13, text_anchor="middle", fill=INK)
        )
        direct = results[DIRECT]["throughput"][str(level)]["chunks_per_s"]
        for i, name in enumerate(names):
            row = results[name]["throughput"][str(level)]
            x = centre - bar_w * len(names) / 2 + i * bar_w
            y = sy(row["chunks_per_s"])
            out.append(
                f"<rect x='{x + 3:.1f}' y='{y:.1f}' width='{bar_w - 6:.1f}' "
                f"height='{bottom - y:.1f}' fill='{COLOURS[i % len(COLOURS)]}'/>"
            )
            out.append(
                _text(
                    x + bar_w / 2,
                    y - 6,
                    f"{row['chunks_per_s'] / 1000:.1f}k",
                    12,
                    text_anchor="middle",
                    fill=INK,
                )
            )
            if name != DIRECT:
                share = row["chunks_per_s"] / direct
                colour = GOOD if share >= GOALS["throughput_20_ratio"] else BAD
                out.append(
                    _text(
                        x + bar_w / 2,
                        y - 22,
                        f"{share:.0%}",
                        13,
                        text_anchor="middle",
                        fill=colour,
                        font_weight="bold",
                    )
                )
    out.append(
        _text(
            right - 8,
            top + 16,
            "% above a bar: its share of direct",
            11,
            text_anchor="end",
            fill=GREY,
        )
    )
    return out


def goal_tiles(x0: float, y0: float, w: float, document: dict[str, Any]) -> list[str]:
    """One tile per goal of the issue: the figure, green when met, red when not."""
    tiles = [goal for goal in document["goals"] if goal["key"] in GOALS]
    out, gap, height = [], 14.0, 112
    tile_w = (w - gap * (len(tiles) - 1)) / len(tiles)
    for i, goal in enumerate(tiles):
        x = x0 + i * (tile_w + gap)
        colour = GOOD if goal["met"] else BAD
        value, target, unit = goal["measured"], goal["target"], goal["unit"]
        sign = "≤" if goal["at_most"] else "≥"
        if unit == "":
            shown, wanted = f"{value:.0%} of direct", f"goal {sign} {target:.0%}"
        elif unit == "chunks/s":
            shown, wanted = f"{value / 1000:.1f}k chunks/s", f"goal {sign} {target / 1000:.0f}k"
        elif unit == "ms":
            shown, wanted = f"+{value:.2f} ms", f"goal {sign} {target:g} ms"
        elif unit == "µs":
            shown, wanted = f"+{value:.1f} µs", f"goal {sign} {target:g} µs"
        else:
            shown, wanted = f"{value:g}{unit}", f"goal {sign} {target:g}{unit}"
        out += [
            f"<rect x='{x:.1f}' y='{y0}' width='{tile_w:.1f}' height='{height}' rx='8' "
            f"fill='white' stroke='{colour}' stroke-width='2'/>",
            f"<rect x='{x:.1f}' y='{y0}' width='{tile_w:.1f}' height='26' rx='8' fill='{colour}'/>",
            f"<rect x='{x:.1f}' y='{y0 + 16}' width='{tile_w:.1f}' height='10' fill='{colour}'/>",
            _text(x + 12, y0 + 18, goal["goal"], 13, fill="white", font_weight="bold"),
            _text(x + 12, y0 + 62, shown, 26, font_weight="bold", fill=colour),
            _text(
                x + 12, y0 + 84, f"{wanted} · {'met' if goal['met'] else 'not met'}", 12, fill=GREY
            ),
            _text(x + 12, y0 + 102, goal.get("note", ""), 11, fill=GREY),
        ]
    return out


def facts_panel(x0: float, y0: float, w: float, document: dict[str, Any]) -> list[str]:
    """Who is busy at 20 concurrent (CPU as a share of one core), then the other costs."""
    results, fake, client = document["paths"], document["fake_provider"], document["client_check"]
    out = [_text(x0, y0 - 10, "Who is busy at 20 concurrent", 15, font_weight="bold", fill=INK)]
    columns = (("client", "client_cpu"), ("fake", "fake_cpu"), ("proxy", "proxy_cpu"))
    col_x = [x0 + w - 150, x0 + w - 75, x0 + w]
    y = y0 + 14
    out.append(_text(x0, y, "CPU, share of one core", 12, fill=GREY))
    for (label, _), x in zip(columns, col_x, strict=True):
        out.append(_text(x, y, label, 12, fill=GREY, text_anchor="end"))
    for name in results:
        y += 24
        at20 = results[name]["throughput"]["20"]
        out.append(_line(x0, y - 17, x0 + w, y - 17))
        out.append(_text(x0, y, name, 13, fill=INK, font_weight="bold"))
        for (_, key), x in zip(columns, col_x, strict=True):
            value = at20.get(key)
            shown = "-" if value is None else f"{value:.0%}"
            busy = value is not None and value >= 0.95
            out.append(
                _text(
                    x,
                    y,
                    shown,
                    13,
                    text_anchor="end",
                    fill=BAD if busy else INK,
                    font_weight="bold" if busy else "normal",
                )
            )
    out.append(_text(x0, y + 20, "red: at a full core, the one that sets the pace", 11, fill=GREY))
    rows: list[tuple[str, str]] = []
    for name in document["vs_direct"]:
        proxy = results[name]["proxy"]
        rows += [
            (f"{name}: CPU per 1,000 chunks", f"{proxy['cpu_s_per_1k_chunks']:.3f} s"),
            (f"{name}: peak RSS", f"{proxy['peak_rss_mib']:.0f} MiB"),
        ]
    rows += [
        (
            f"fake alone, one {fake['events'] // 1000}k-chunk stream",
            f"{fake['whole_chunks_per_s'] / 1000:.0f}k chunks/s",
        ),
        ("the same, serving time only", f"{fake['serving_chunks_per_s'] / 1000:.0f}k chunks/s"),
        ("client at its busiest", f"{client['max_cpu']:.0%} of a core"),
    ]
    y += 40
    for label, value in rows:
        y += 25
        out.append(_line(x0, y - 17, x0 + w, y - 17))
        out.append(_text(x0, y, label, 13, fill=GREY))
        out.append(_text(x0 + w, y, value, 13, text_anchor="end", font_weight="bold", fill=INK))
    return out


def picture(document: dict[str, Any]) -> str:
    """The whole picture, 1200 x 900: goals on top, latency distributions, throughput."""
    width, height = 1200, 900
    names = list(document["paths"])
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
    host, paths = document["host"], document["paths"]
    subtitle = (
        f"127.0.0.1 · {host['cpus']} cores · Python {host['python']} · {document['generated']} · "
        f"wall {document['wall_s']:.0f} s{' · --quick' if document['settings']['quick'] else ''}"
        " · the fake provider, the proxy and the client each a process of their own"
    )
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='DejaVu Sans, Helvetica, Arial, sans-serif'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
        _text(
            24,
            36,
            "streamproof relay bench: the reference proxy against a direct connection",
            21,
            font_weight="bold",
            fill=INK,
        ),
        _text(24, 58, subtitle, 12, fill=GREY),
        *goal_tiles(24, 76, width - 48, document),
    ]
    ttfb = [(n, colours[n], paths[n]["ttfb"]["samples_ms"]) for n in names]
    stream = [(n, colours[n], paths[n]["stream"]["samples_ms"]) for n in names]
    parts += ecdf_panel((24, 236, 560, 300), f"Time to first byte ({TTFB_MODEL})", ttfb)
    parts += ecdf_panel((616, 236, 560, 300), f"Whole {STREAM_CHUNKS}-chunk stream", stream)
    parts += throughput_panel((24, 592, 720, 290), document)
    parts += facts_panel(780, 592, 396, document)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a short run (about 15 s): fewer samples, 1 s a level"
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help=f"also measure a profile of {DEFAULT_FILE} (e.g. litellm); repeatable",
    )
    parser.add_argument("--out", type=Path, default=REPORT, help="where to write the JSON")
    parser.add_argument("--svg", type=Path, default=PICTURE, help="where to write the picture")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    commands: list[str] = []
    steal_before = steal_ticks()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="relay-bench-") as workdir:
        fake = Fake()
        stack.callback(fake.stop)
        say(f"fake provider on port {fake.port} (pid {fake.process.pid})")
        say(f"the fake alone: one stream of {FAKE_CHUNKS:,} chunks")
        fake_figures = fake_rate(fake.port, fake.process.pid, FAKE_CHUNKS)
        routes = [Route(DIRECT, fake.port)]
        for name in [REFERENCE, *args.target]:
            folder = Path(workdir) / name
            folder.mkdir()
            routes.append(start_target(name, fake, folder, commands, stack))
            say(f"{name} on port {routes[-1].port} (pid {routes[-1].leader})")
        meters = Meters(fake.process.pid, routes)
        results = asyncio.run(measure(routes, meters, settings, say))
        fake_figures["peak_rss_mib"] = round(peak_rss_mib([fake.process.pid]), 1)
    wall = time.perf_counter() - started
    steal_after = steal_ticks()
    ticks = max(1, steal_after[1] - steal_before[1])
    levels = [
        (name, level, row)
        for name, figures in results.items()
        for level, row in figures["throughput"].items()
    ]
    busiest = max(levels, key=lambda item: item[2]["client_cpu"])
    # The fake's rate for the goal: the lower of the big stream, whole (building its answer
    # included), and its chunks per CPU second serving 200-chunk streams directly.
    loaded = min(
        (row["fake_chunks_per_cpu_s"], level)
        for level, row in results[DIRECT]["throughput"].items()
        if row["fake_chunks_per_cpu_s"]
    )
    fake_figures["loaded_chunks_per_cpu_s"] = {"chunks": loaded[0], "at": int(loaded[1])}
    fake_figures["chunks_per_s"] = min(fake_figures["whole_chunks_per_s"], loaded[0])
    fake_figures["chunks_per_s_from"] = (
        f"{fake_figures['whole_chunks_per_s'] / 1000:.0f}k ({FAKE_CHUNKS // 1000}k stream) "
        f"and {loaded[0] / 1000:.0f}k (load)"
    )
    document: dict[str, Any] = {
        "generated": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        "wall_s": round(wall, 1),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "steal_share": round((steal_after[0] - steal_before[0]) / ticks, 4),
        },
        "settings": {
            "quick": args.quick,
            "ttfb_samples": settings.ttfb_samples,
            "ttfb_model": TTFB_MODEL,
            "stream_samples": settings.stream_samples,
            "stream_model": STREAM_MODEL,
            "seconds_per_level": settings.seconds,
            "levels": list(LEVELS),
            "proxy_timeouts": dataclasses.asdict(BENCH_TIMEOUTS),
            "commands": commands,
            "client": "one asyncio event loop, raw HTTP/1.1 keep-alive connections",
        },
        "fake_provider": fake_figures,
        "client_check": {
            "max_cpu": busiest[2]["client_cpu"],
            "where": f"{busiest[0]} at {busiest[1]}",
            "max_us_per_chunk": max(row["client_cpu_us_per_chunk"] for _, _, row in levels),
            "busy_limit": CLIENT_BUSY,
            "bound": any(row["client_bound"] for _, _, row in levels),
        },
        "paths": results,
        "vs_direct": {name: compare(results, name) for name in results if name != DIRECT},
    }
    document["goals"] = goals(document)
    print(table(document))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(picture(document))
    print(f"wall time {wall:.1f} s; written: {args.out}, {args.svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
