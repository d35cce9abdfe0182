"""What a new user sees, as pictures: `make tour` writes them to reports/tour/.

    .venv/bin/python scripts/tour.py [--out reports/tour] [-n 2]

1. `terminal.txt`: the terminal of `streamproof` against the naive pass-through of
   `examples/relay.py`, as the quickstart runs it (its first screen is what failed, and why);
2. `matrix.png`: the report's matrix with the reference proxy and that relay side by side;
3. `case.png`: the page of a case the relay FAILs (5.7);
4. `dashboard.png`: the reference proxy's dashboard in the playground (`make playground`),
   after traffic with failures in it, so its alert and chart show.

Everything is made from real runs on 127.0.0.1 and drawn by headless chromium; nothing is
committed. Needs `chromium` on PATH (Debian: apt-get install chromium).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for its sibling, run as a script
from scripts.screenshots import COMMAND, screenshot  # noqa: E402

STREAMPROOF = Path(sys.executable).parent / "streamproof"


def suites(report_dir: Path, workers: str, *target: str) -> str:
    """`streamproof` against a target into `report_dir`; what the terminal showed."""
    argv = [str(STREAMPROOF), "--report-dir", str(report_dir), "-n", workers, *target]
    print("running:", " ".join(argv[1:]), flush=True)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        sys.exit(f"streamproof did not run (exit status {done.returncode}):\n{done.stderr}")
    return done.stdout


def dashboard(out: Path, scratch: Path) -> None:
    """The playground, some traffic through it (a fifth of it failing), then its page."""
    env = {**os.environ, "PLAYGROUND_KEY": "playground-not-a-secret", "PYTHONUNBUFFERED": "1"}
    playground = subprocess.Popen(
        [sys.executable, "examples/playground.py", "--port", "0", "--fake-port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        proxy = _banner(playground)
        with httpx.Client(base_url=proxy, trust_env=False, timeout=30) as client:
            for n in range(24):
                # Every fifth request fails three times upstream: the proxy answers 502.
                failing = n % 5 == 4
                model = f"streamproof.id-tour{n}." + (
                    "status-500.first-3" if failing else "chunks-6"
                )
                body = {
                    "model": model,
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                }
                client.post("/v1/chat/completions", json=body)
        # The page's WebSocket and its first draw take a moment of the page's own time.
        screenshot(f"{proxy}/", out, 1200, 1300, scratch, "--virtual-time-budget=4000")
    finally:
        playground.terminate()
        playground.wait(timeout=30)


def _banner(process: subprocess.Popen[str]) -> str:
    """The proxy's URL, from the banner the playground prints once its proxy answers; its
    later output is drained on a thread, so that it never blocks on a full pipe."""
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"dashboard\s+(http://127\.0\.0\.1:\d+)/", line)
        if found:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return found.group(1)
    sys.exit(f"the playground stopped (exit status {process.wait()})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "tour")
    parser.add_argument("-n", dest="workers", default="2", help="pytest-xdist workers")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report_dir = out / "reports"
    shutil.rmtree(report_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="streamproof-tour-") as folder:
        scratch = Path(folder)
        suites(report_dir, args.workers)
        terminal = suites(
            report_dir, args.workers, "--target-name", "naive relay", "--target-cmd", COMMAND
        )
        (out / "terminal.txt").write_text(terminal)
        screenshot(report_dir / "index.html", out / "matrix.png", 1400, 1700, scratch)
        case = report_dir / "targets" / "naive-relay" / "cases" / "5.7.html"
        screenshot(case, out / "case.png", 1200, 1400, scratch)
        dashboard(out / "dashboard.png", scratch)
    for name in ("terminal.txt", "matrix.png", "case.png", "dashboard.png"):
        print(f"{out / name}")


if __name__ == "__main__":
    main()
