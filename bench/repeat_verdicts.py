"""Does the default suite give the same verdicts every run? Run it many times and compare.

    python bench/repeat_verdicts.py [--runs 20] [--parallel-runs 20] [--out reports/repeat.json]

Each run is `pytest suites/ --verdicts-json FILE` in a subprocess, as a user runs it:
`--runs` of them serially, then `--parallel-runs` under `-n 2`. Every case's verdict is
compared across all runs; a case whose verdict differs between any two is a bug in the
harness or the reference proxy to be fixed, never retried. It prints each run's wall time
and counts, then every case that differed with the verdicts it got, and writes it all to
`--out`; the exit status is 1 if any case differed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(parallel: bool, folder: Path, number: int) -> tuple[dict[str, str], float]:
    """One run of the default suite: its verdicts by case, and its wall time."""
    out = folder / f"run-{number}.json"
    command = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider"]
    command += ["--verdicts-json", str(out), "--report-dir", str(folder / f"reports-{number}")]
    if parallel:
        command += ["-n", "2"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if not out.exists():
        raise SystemExit(f"run {number} wrote no verdicts:\n{result.stdout[-2000:]}")
    verdicts = {v["case"]: v["level"] for v in json.loads(out.read_text())}
    return verdicts, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="serial runs (default 20)")
    parser.add_argument("--parallel-runs", type=int, default=20, help="runs under -n 2")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "repeat.json")
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    with tempfile.TemporaryDirectory(prefix="streamproof-repeat-") as tmp:
        plan = [False] * args.runs + [True] * args.parallel_runs
        for number, parallel in enumerate(plan, start=1):
            verdicts, wall = run_once(parallel, Path(tmp), number)
            for case, level in verdicts.items():
                seen[case][level] += 1
            counts = Counter(verdicts.values())
            mode = "-n 2  " if parallel else "serial"
            summary = ", ".join(f"{n} {level}" for level, n in sorted(counts.items()))
            print(f"run {number:2d} {mode} {wall:6.1f} s  {len(verdicts)} cases: {summary}")
            runs.append({"parallel": parallel, "wall_s": round(wall, 2), "counts": counts})
    total = len(plan)
    differed = {
        case: dict(levels)
        for case, levels in sorted(seen.items())
        if len(levels) > 1 or sum(levels.values()) != total
    }
    walls = {
        mode: [r["wall_s"] for r in runs if r["parallel"] is parallel]
        for mode, parallel in (("serial", False), ("parallel", True))
    }
    for mode, times in walls.items():
        if times:
            print(f"{mode}: {len(times)} runs, wall {min(times)}..{max(times)} s")  # type: ignore[type-var]
    if differed:
        print(f"{len(differed)} cases did not get the same verdict in all {total} runs:")
        for case, levels in differed.items():
            print(f"  {case}: {levels}")
    else:
        print(f"every one of {len(seen)} cases got the same verdict in all {total} runs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"runs": runs, "cases": len(seen), "differed": differed, "walls": walls}, indent=2
        )
    )
    return 1 if differed else 0


if __name__ == "__main__":
    sys.exit(main())
