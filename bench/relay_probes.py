"""Processes for the relay bench (`bench/relay_bench.py`): CPU and memory from /proc, of
the client, the fake and each proxy, and the share of the machine a hypervisor stole."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.relay_client import Route

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
