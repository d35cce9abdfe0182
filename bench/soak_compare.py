"""The same seed through both soaks: per-stream verdicts of `bench/soak.py` (one process, one
asyncio loop) and of `bench/soak_locust.py` (Locust, N workers), index by index.

`.venv/bin/python bench/soak_compare.py [--seed S] [--streams N] [--workers W] [--out PATH]`
(defaults: seed 20250131, 2,000 streams, 2 workers, reports/soak-compare.json). It runs the
single-process soak here, then the distributed one as its own command, and compares each
index's verdict: its result class (success, http_error, error, left, broken) and the checks it
failed. A difference is printed with what decides it: the client's behaviour, the faults, and
how long the proxy took to send its headers in each run (a client that gives up after T s
without headers is judged on whether they came within T: a matter of timing, not of the
proxy's logic). The exit status is 1 when a verdict differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import soak_run
from bench.soak_client import Stream
from bench.soak_locust import verdict
from bench.soak_run import DEFAULT_SEED, Options
from bench.soak_schedules import schedule

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "soak-compare.json"
Verdicts = dict[int, dict[str, Any]]


def single(seed: int, streams: int, say: Callable[[str], None]) -> tuple[dict[str, Any], Verdicts]:
    kept: list[Stream] = []
    document = soak_run.run(Options(seed=seed, streams=streams), say, kept)
    return document, {s.schedule.index: verdict(s) for s in kept}


def distributed(seed: int, streams: int, workers: int) -> tuple[dict[str, Any], Verdicts]:
    with tempfile.TemporaryDirectory(prefix="soak-compare-") as folder:
        out = Path(folder) / "distributed.json"
        command = [sys.executable, str(ROOT / "bench" / "soak_locust.py"), "--out", str(out)]
        command += ["--seed", str(seed), "--streams", str(streams), "--workers", str(workers)]
        subprocess.run(command, cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
        document = json.loads(out.read_text())
    return document, {v["index"]: v for v in document["per_stream"]}


def differences(seed: int, streams: int, a: Verdicts, b: Verdicts) -> list[dict[str, Any]]:
    """The indices whose result or failed checks differ, with what decided each."""
    found = []
    for index in range(streams):
        one, other = a.get(index), b.get(index)
        if one and other and (one["result"], one["checks"]) == (other["result"], other["checks"]):
            continue
        s = schedule(seed, index)
        found.append(
            {
                "index": index,
                "client": s.client,
                "faults": [f.token for f in s.scenario.faults],
                "runs": [one, other],
                "decided_by": decided_by(s.leave_before_response, one, other),
            }
        )
    return found


def decided_by(give_up: float | None, *runs: dict[str, Any] | None) -> str:
    """What made the verdicts differ, from the runs' data: `headers` (a client that gives up
    without headers after `give_up` s got them in time in one run only), `timer` (in one run
    the proxy ended the stream with one of its timeouts, by the error's code), `attempts` (the
    upstream attempts ended differently: the proxy hung up on one in one run only), or
    `unexplained` (and any check that fails in one run only)."""
    if any(run is None for run in runs) or len({tuple(run["checks"]) for run in runs if run}) > 1:
        return "unexplained"  # a check that fails in one run only is a violation to replay
    left = [run["result"] == "left" and run["headers_s"] is None for run in runs if run]
    if give_up is not None and any(left) and not all(left):
        return "headers"
    if any("timeout" in str(run["error"]) for run in runs if run):
        return "timer"
    if len({tuple(run["attempts"]) for run in runs if run}) > 1:
        return "attempts"
    return "unexplained"


def quantiles(verdicts: Verdicts) -> dict[str, float]:
    times = sorted(v["headers_s"] for v in verdicts.values() if v["headers_s"] is not None)
    if not times:
        return {}
    return {f"p{q}": times[min(len(times) - 1, len(times) * q // 100)] for q in (50, 90, 99)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    seed, streams = args.seed, args.streams
    first_doc, first = single(seed, streams, say)
    say(f"{args.workers} Locust workers")
    spread_doc, spread = distributed(seed, streams, args.workers)
    second_doc, second = single(seed, streams, say)
    documents = {"single": first_doc, "distributed": spread_doc, "single again": second_doc}
    verdicts = {"single": first, "distributed": spread, "single again": second}
    pairs = {
        "single vs distributed": differences(seed, streams, first, spread),
        "single vs single again": differences(seed, streams, first, second),
    }
    document = {
        "seed": seed,
        "streams": streams,
        "workers": args.workers,
        "runs": {
            name: {
                "streams_per_s": d["streams_per_s"],
                "ok": d["ok"],
                "violations_by_check": d["violations_by_check"],
                "outcomes": d["outcomes"],
                "headers_s": quantiles(verdicts[name]),
            }
            for name, d in documents.items()
        },
        "differences": pairs,
    }
    unexplained = 0
    for name, found in pairs.items():
        kinds = Counter(d["decided_by"] for d in found)
        print(f"{name}: {streams - len(found)} of {streams} verdicts the same; {dict(kinds)}")
        for d in found:
            if d["decided_by"] == "unexplained":
                unexplained += 1
            print(f"  index {d['index']} ({d['client']}; faults {d['faults']}): {d['decided_by']}")
            for side in d["runs"]:
                print(f"    {side}")
    for name, side in document["runs"].items():
        print(f"{name}: {side['streams_per_s']} streams/s, headers after {side['headers_s']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written: {args.out}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
