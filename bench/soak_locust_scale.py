"""What the Locust soak's workers generate: `bench/soak_locust.py` with 1, 2 and 3 workers on
this machine, the same seed and streams each time, and what each run's load cost every
process in CPU time.

`.venv/bin/python bench/soak_locust_scale.py [--workers 1,2,3] [--streams N] [--seed S]
[--concurrency C] [--out PATH]` (defaults: 1,2,3 workers, 2,000 streams, seed 20250131, 100
users, reports/soak-scale.json). It prints, per run: streams/s and chunks/s (the chat chunks
the clients received), the CPU seconds of the master's process (the fake provider and Locust's
master), of the proxy and of the workers, and how many of the machine's cores they kept busy
together. From a worker's CPU time per stream it also prints what one worker would generate
on a core of its own: on this machine every process shares the same cores (`os.cpu_count()`),
so the figure that grows with workers is the one the target and the fake leave over. No
figure here is asserted anywhere: a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "soak-scale.json"
DEFAULT_SEED = 20250131  # bench/soak_run.py's (not imported: this process stays Locust-free)


def measure(workers: int, streams: int, seed: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="soak-scale-") as folder:
        out = Path(folder) / "soak.json"
        command = [sys.executable, str(ROOT / "bench" / "soak_locust.py"), "--out", str(out)]
        command += ["--workers", str(workers), "--streams", str(streams), "--seed", str(seed)]
        command += ["--concurrency", str(concurrency)]
        subprocess.run(command, cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
        document = json.loads(out.read_text())
    d = document["distributed"]
    cpu = d["cpu_s"]
    spent = [v for k, v in cpu.items() if k.startswith("worker")]
    per_stream = sum(spent) / document["streams"]
    chunks_per_stream = document["chunks"] / document["streams"]
    return {
        "workers": workers,
        "streams": document["streams"],
        "wall_s": document["wall_s"],
        "streams_per_s": document["streams_per_s"],
        "chunks_per_s": document["chunks_per_s"],
        "violations": document["violation_count"],
        "cpu_s": cpu,
        "cores_busy": round(sum(cpu.values()) / document["wall_s"], 2),
        "worker_cpu_ms_per_stream": round(1000 * per_stream, 3),
        "one_worker_core_streams_per_s": round(1 / per_stream, 1),
        "one_worker_core_chunks_per_s": round(chunks_per_stream / per_stream, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", default="1,2,3", help="worker counts to run (1,2,3)")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    runs = []
    print(
        f"{os.cpu_count()} cores; seed {args.seed}, {args.streams} streams, "
        f"{args.concurrency} users in all"
    )
    for workers in (int(n) for n in args.workers.split(",")):
        r = measure(workers, args.streams, args.seed, args.concurrency)
        runs.append(r)
        shares = ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items())
        print(
            f"{workers} worker(s): {r['streams_per_s']} streams/s, {r['chunks_per_s']} chunks/s "
            f"in {r['wall_s']} s, {r['violations']} violations; {r['cores_busy']} cores busy "
            f"(CPU s: {shares}); a worker spends {r['worker_cpu_ms_per_stream']} ms of CPU a "
            f"stream: on a core of its own {r['one_worker_core_streams_per_s']} streams/s, "
            f"{r['one_worker_core_chunks_per_s']} chunks/s"
        )
    document = {"cores": os.cpu_count(), "seed": args.seed, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
