"""The proxy from outside, for the chaos soak (`bench/soak.py`): its processes, file
descriptors and memory from /proc, and its counters from /health."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

POLL = 0.01  # seconds between reads of another process's /proc files (see `settle`)


def _tcp_sockets(pid: int) -> dict[int, tuple[int, int]]:
    """inode -> (local port, remote port) of the TCP sockets in the process's namespace."""
    found: dict[int, tuple[int, int]] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            found[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16))
    return found


def fd_classes(pids: Iterable[int], proxy_port: int, fake_port: int) -> dict[str, int]:
    """The processes' open descriptors: `client` (connections accepted on the target's
    port), `upstream` (connections to the fake), `other` (the listener, files, pipes, ...)."""
    links = []
    sockets: dict[int, tuple[int, int]] = {}
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        with contextlib.suppress(FileNotFoundError):  # the process ended while we looked
            for name in os.listdir(folder):
                with contextlib.suppress(FileNotFoundError):  # closed while we looked
                    links.append(os.readlink(f"{folder}/{name}"))
            sockets = sockets or _tcp_sockets(pid)
    counts = {"client": 0, "upstream": 0, "other": 0}
    for link in links:
        ports = sockets.get(int(link[8:-1])) if link.startswith("socket:[") else None
        if ports is not None and ports[1] == fake_port:
            counts["upstream"] += 1
        elif ports is not None and ports[0] == proxy_port and ports[1] != 0:
            counts["client"] += 1
        else:
            counts["other"] += 1
    counts["total"] = len(links)
    return counts


def memory_kib(pids: Iterable[int]) -> dict[str, int]:
    """VmRSS and VmHWM summed over the processes, in KiB."""
    found = {"VmRSS": 0, "VmHWM": 0}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(("VmRSS:", "VmHWM:")):
                    found[line.split(":")[0]] += int(line.split()[1])
    return found


def settle(ready: Callable[[], bool], bound: float) -> bool:
    """Ask `ready` until it says yes, for at most `bound` seconds; say whether it did.

    This polls with a deadline on purpose: it waits on another process (the proxy's file
    descriptors, its health report), which offers nothing to wait on. Each question is a
    read of /proc or one HTTP request; POLL seconds pass between them.
    """
    deadline = time.monotonic() + bound
    while True:
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)


def health(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/health", headers={"connection": "close"}, timeout=10.0)
    document = response.json()
    assert isinstance(document, dict)
    return document


def counters(report: dict[str, Any]) -> dict[str, int]:
    requests = report.get("requests", {})
    return {k: int(requests.get(k, 0)) for k in ("total", "succeeded", "failed", "cancelled")}
