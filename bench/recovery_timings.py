"""How fast the bundled reference proxy notices a stall, and lets go of a client that left.

`.venv/bin/python bench/recovery_timings.py [--trials N] [--out PATH]`. On 127.0.0.1 it
starts a fake provider (in this process) and the reference proxy (a child process, started
as the harness's `sut` fixture does), then times N trials (default 30) of each:

- stall: the upstream stalls after 3 events; from the fake's last write to the end of the
  client's stream, against the declared idle timeout (median, p90, worst, excess);
- mid-stream leave: the client hangs up after 3 events of a slow stream; from the client
  leaving (`transcript.ended_at`) to the fake seeing the proxy hang up (`peer_closed_at`);
- pre-byte leave: the client gives up 0.1 s into a request the upstream never answers;
  the same measure.

The fake and the client share `time.perf_counter()`. A trial with nothing to measure (the
proxy never hung up within BOUND seconds, the client timed out) is counted as missed. The
table is printed and the figures written to reports/recovery_timings.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamproof.fake_providers import FakeProvider, Journal
from streamproof.harness.client import StreamClient
from streamproof.harness.sut import Exchange, SystemUnderTest
from streamproof.harness.targets import BUNDLED, REFERENCE_TIMEOUTS, ProcessTarget
from streamproof.harness.transcript import Outcome
from streamproof.harness.upstream import Scenario, Slow, StallAfter, StallBeforeHeaders

REPORT = Path(__file__).resolve().parent.parent / "reports" / "recovery_timings.json"
FIGURES = (("median_ms", 10), ("p90_ms", 8), ("worst_ms", 9))  # table columns, widths
BOUND = 5.0  # seconds to wait for the proxy to hang up on the fake before calling it missed
Trial = tuple[Exchange, float | None]  # the exchange, and the time measured (None: missed)


def released(journal: Journal) -> bool:
    """Every attempt is over: the proxy hung up, or the fake ended it."""
    attempts = journal.attempts
    return bool(attempts) and all(a.peer_closed_at is not None or a.ending for a in attempts)


def stall(sut: SystemUnderTest) -> Trial:
    x = sut.chat(Scenario(chunks=8, faults=(StallAfter(3),)))
    x.journal.wait_for(released, BOUND)  # so that no trial overlaps the next
    last_write = x.streamed.last_write_at if x.streamed else None
    ended = x.transcript.ended_at
    if last_write is None or ended is None or x.transcript.outcome is Outcome.TIMED_OUT:
        return x, None  # nothing written, or the proxy never ended the stream
    return x, ended - last_write


def hang_up(x: Exchange) -> float | None:
    """Seconds from the client leaving to the proxy's last upstream hang-up, or None."""
    left = x.transcript.ended_at
    if left is None or not x.journal.wait_for(released, BOUND):
        return None
    closes = [a.peer_closed_at for a in x.attempts]
    return None if None in closes else max(c for c in closes if c is not None) - left


def leave_mid_stream(sut: SystemUnderTest) -> Trial:
    x = sut.chat(Scenario(chunks=40, faults=(Slow(50),)), leave_after_events=3)
    return x, hang_up(x)


def leave_before_byte(sut: SystemUnderTest) -> Trial:
    x = sut.chat(Scenario(chunks=4, faults=(StallBeforeHeaders(),)), leave_before_response=0.1)
    return x, hang_up(x)


MEASURES: dict[str, Callable[[SystemUnderTest], Trial]] = {
    "stall detection": stall,
    "client leaves mid-stream": leave_mid_stream,
    "client leaves before byte 1": leave_before_byte,
}


def ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def summarise(trials: list[Trial], over: float | None) -> dict[str, Any]:
    """Median, p90 (nearest rank) and worst, and their excess over `over` seconds if given."""
    got = sorted(s for _, s in trials if s is not None)
    row: dict[str, Any] = {"trials": len(trials), "missed": len(trials) - len(got)}
    if got:
        figures = {"median": statistics.median(got), "p90": got[math.ceil(0.9 * len(got)) - 1]}
        for key, value in (figures | {"worst": got[-1]}).items():
            row[f"{key}_ms"] = ms(value)
            if over is not None:
                row[f"excess_{key}_ms"] = ms(value - over)
    row["outcomes"] = dict(Counter(x.transcript.outcome.value for x, _ in trials))
    row["samples_ms"] = [None if s is None else ms(s) for _, s in trials]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="trials per measure (30)")
    parser.add_argument("--out", type=Path, default=REPORT, help="where to write the JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    timeouts = REFERENCE_TIMEOUTS
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="recovery-timings-") as workdir:
        provider = FakeProvider()
        secondary = {"secondary": provider.url_for("secondary")}  # as `sut` has (not the dead)
        target = ProcessTarget(
            BUNDLED, provider.base_url, Path(workdir), timeouts=timeouts, upstreams=secondary
        )
        try:
            provider.start()
            target.start()
            client = StreamClient(target.base_url, read_timeout=timeouts.bound("total") + 1.0)
            try:
                sut = SystemUnderTest("bundled", client, provider, timeouts)
                for name, measure in MEASURES.items():
                    over = timeouts.bound("idle") if measure is stall else None
                    rows[name] = summarise([measure(sut) for _ in range(args.trials)], over)
            finally:
                client.close()
        finally:
            target.stop()
            provider.stop()
    wall = time.perf_counter() - started
    print(f"{'measure':<28} {'n':>3} {'missed':>6} {'median ms':>10} {'p90 ms':>8} {'worst ms':>9}")
    for name, row in rows.items():
        cells = [f"{row[k]:>{w}.1f}" if k in row else f"{'-':>{w}}" for k, w in FIGURES]
        print(f"{name:<28} {row['trials']:>3} {row['missed']:>6} " + " ".join(cells))
    if "excess_worst_ms" in (idle := rows["stall detection"]):
        print(
            f"idle timeout {ms(timeouts.bound('idle')):.0f} ms; stall detection over it by "
            f"{idle['excess_median_ms']:+.1f} ms median, {idle['excess_p90_ms']:+.1f} ms p90, "
            f"{idle['excess_worst_ms']:+.1f} ms worst"
        )
    document = {"idle_timeout_ms": ms(timeouts.bound("idle")), "wall_s": round(wall, 2), **rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wall time {wall:.1f} s; written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
