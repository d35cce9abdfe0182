"""The relay bench's measures (`bench/relay_bench.py`): sequential streams for time to first
byte and per-chunk latency, throughput at each concurrency, the fake provider's own rate; and
the figures made of them."""

from __future__ import annotations

import asyncio
import gc
import math
import os
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.relay_client import DIRECT, HTTPFailure, Lane, Response, Route
from bench.relay_probes import Meters, cpu_seconds

TTFB_MODEL = "streamproof.chunks-8"
STREAM_CHUNKS = 200
STREAM_MODEL = f"streamproof.chunks-{STREAM_CHUNKS}"
FAKE_CHUNKS = 100_000  # the most a scenario allows
LEVELS = (1, 20, 100)  # concurrent streams
ROUNDS = 5  # blocks per route in the sequential measures, the routes taken in turn
SETTLE = 0.05  # seconds of quiet after each block and before each throughput level
IDLE = 0.002  # seconds of quiet before each stream of the "after idle" first-byte measure
CLIENT_BUSY = 0.8  # a level where the client's CPU was busier than this may be client-bound


@dataclass(frozen=True)
class Settings:
    ttfb_samples: int  # sequential short streams per path
    stream_samples: int  # sequential 200-chunk streams per path
    seconds: float  # per throughput level and path
    warmup: int  # untimed streams per path before anything is measured


FULL = Settings(ttfb_samples=1000, stream_samples=200, seconds=8.0, warmup=30)
QUICK = Settings(ttfb_samples=150, stream_samples=30, seconds=1.0, warmup=10)


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
    """Streams of STREAM_MODEL on `concurrency` connections for `seconds` (see the docstring
    of bench/relay_bench.py)."""
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
