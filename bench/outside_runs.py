"""The suites against proxies we did not write, side by side: verdict counts and wall times.

    .venv/bin/python bench/outside_runs.py                      # every target below
    .venv/bin/python bench/outside_runs.py --only nginx relay    # some of them

Each run is `pytest suites/ -n 2` in a subprocess, as a user runs it. The profiles
(`litellm`, `nginx`, `portkey`; `litellm-anthropic`, `portkey-anthropic`) need their `make`
target first and are left out, saying so, when they are not installed; the small proxies
of `tests/outside/` need nothing. Prints a table and writes `reports/outside-runs.json`
(every verdict of every run, with the counts and the wall time).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ROOT / "tests" / "outside"
TIMERS = ["--target-timeouts", "connect=0.25,first_byte=0.5,idle=0.3,total=5"]
RELAY_TIMERS = ["--target-timeouts", "connect=0.25,first_byte=1,idle=1,total=none"]
LEVELS = ("PASS", "NON-STRICT", "FAIL", "INFO", "NOT-OFFERED", "SKIP", "ERROR")
# name → (what must be installed, the target options)
PROFILES = {
    "reference": (None, []),
    "litellm": (".litellm/bin/litellm", ["--target", "litellm"]),
    "nginx": (".nginx/usr/sbin/nginx", ["--target", "nginx"]),
    "portkey": (".portkey/.installed", ["--target", "portkey"]),
    "litellm-anthropic": (".litellm/bin/litellm", ["--target", "litellm-anthropic"]),
    "portkey-anthropic": (".portkey/.installed", ["--target", "portkey-anthropic"]),
}
CORPUS = [
    "relay",
    "dead",
    "mute",
    "hang_after_failure",
    "clean_end",
    "key_in_errors",
    "total_deadline",
    "rewrite_errors",
]


def options(name: str) -> list[str] | None:
    if name in PROFILES:
        needs, chosen = PROFILES[name]
        return None if needs and not (ROOT / needs).exists() else chosen
    command = f"{{python}} {OUTSIDE / name}.py --upstream {{upstream}} --fd {{fd}}"
    if name == "relay":  # as tests/test_outside_proxies.py runs it, with its own timers
        return ["--target-cmd", f"{command} --idle 1", *RELAY_TIMERS]
    # total_deadline declares nothing: its total deadline must show against the bounds.
    return ["--target-cmd", command, *([] if name == "total_deadline" else TIMERS)]


def run(name: str, chosen: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "verdicts.json"
        began = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "suites/",
                "-n",
                "2",
                "-q",
                "-p",
                "no:randomly",
                "--report-dir",
                folder,
                "--verdicts-json",
                str(out),
                *chosen,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        wall = time.perf_counter() - began
        verdicts = json.loads(out.read_text()) if out.exists() else []
    counts = Counter(v["level"] for v in verdicts)
    return {
        "name": name,
        "wall_s": round(wall, 1),
        "counts": {level: counts.get(level, 0) for level in LEVELS},
        "verdicts": {v["case"]: [v["level"], v["reason"]] for v in verdicts},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only these targets")
    parser.add_argument("--out", default=str(ROOT / "reports" / "outside-runs.json"))
    args = parser.parse_args(argv)
    names = args.only or [*PROFILES, *CORPUS]
    unknown = set(names) - {*PROFILES, *CORPUS}
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; known: {[*PROFILES, *CORPUS]}")
    runs = []
    print(f"| target | {' | '.join(LEVELS)} | wall s |")
    print(f"|---|{'---:|' * len(LEVELS)}---:|")
    for name in names:
        chosen = options(name)
        if chosen is None:
            print(f"| {name} | not installed (make {name.split('-')[0]}) |")
            continue
        result = run(name, chosen)
        runs.append(result)
        counts = result["counts"]
        assert isinstance(counts, dict)
        cells = " | ".join(str(counts[level]) for level in LEVELS)
        print(f"| {name} | {cells} | {result['wall_s']} |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(runs, indent=1) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
