"""The README's picture of a failing case, made from a real run: `make screenshot`.

    .venv/bin/python scripts/screenshots.py [--case 5.7] [--out docs/img/failing-case.png]

Runs the suites against the naive pass-through of `examples/relay.py` into a temporary
report directory, picks a case that FAILed (`--case` if it did, else the first FAIL in the
catalogue's order), and has headless chromium draw the top of that case's page: the claim,
the verdict and its reason, and the timeline of both sides of the wire. Needs `chromium`
on PATH (Debian: apt-get install chromium) and pytest-xdist (the `dev` extra).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from streamproof.harness.report import TARGETS, case_slug, target_slug

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "{python} examples/relay.py --upstream {upstream} --port {port}"
PREFERRED = "5.7"  # a clean close mid-answer passed on as a clean finish: the typical harm
OUT = ROOT / "docs" / "img" / "failing-case.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def run_suites(report_dir: Path, workers: str) -> dict[str, Any]:
    """The suites against the example relay; its results.json (a FAIL exits 1: expected)."""
    argv = [sys.executable, "-m", "pytest", "suites/", "-q", "--no-header"]
    argv += ["--target-cmd", COMMAND, "--report-dir", str(report_dir)]
    argv += ["-n", workers] if workers != "0" else []
    print("running:", " ".join(argv[1:]), flush=True)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    summary = [line for line in done.stdout.splitlines() if " cases: " in line]
    print(*summary or done.stdout.splitlines()[-5:], sep="\n")
    if done.returncode not in (0, 1):
        sys.exit(f"the suites did not run (exit status {done.returncode}):\n{done.stderr}")
    run: dict[str, Any] = json.loads((report_dir / "results.json").read_text())
    return run


def failing_case(run: dict[str, Any], preferred: str) -> str:
    """`preferred` if it FAILed, else the first case that did."""
    failed = [case["id"] for case in run["cases"] if case["verdict"] == "FAIL"]
    if not failed:
        sys.exit("the example relay failed no case: there is no failing case to show")
    return preferred if preferred in failed else failed[0]


def screenshot(
    page: Path | str, out: Path, width: int, height: int, scratch: Path, *flags: str
) -> None:
    """Headless chromium's picture of `page` (a file, or a URL on 127.0.0.1) into `out`;
    `flags` go to chromium too (`--virtual-time-budget=4000` for a page that draws late)."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        sys.exit("no chromium on PATH (Debian: apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    drawn = scratch / "screenshot.png"
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--no-proxy-server",  # nothing but 127.0.0.1, whatever the environment says
            f"--user-data-dir={scratch / 'chromium-profile'}",
            f"--window-size={width},{height}",
            *flags,
            f"--screenshot={drawn}",
            page.as_uri() if isinstance(page, Path) else page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 or not drawn.is_file() or drawn.stat().st_size == 0:
        sys.exit(f"chromium drew nothing (exit status {done.returncode}):\n{done.stderr}")
    shutil.copyfile(drawn, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", default=PREFERRED, help=f"the case to show if it FAILs ({PREFERRED})"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1100, help="the window's width in pixels")
    parser.add_argument("--height", type=int, default=1150, help="the window's height in pixels")
    parser.add_argument("-n", dest="workers", default="2", help="pytest-xdist workers (0: none)")
    parser.add_argument("--keep", type=Path, help="keep the run's reports in this folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="streamproof-screenshot-") as folder:
        scratch = Path(folder)
        report_dir = (args.keep or scratch / "reports").resolve()
        run = run_suites(report_dir, args.workers)
        case = failing_case(run, args.case)
        page = report_dir / TARGETS / target_slug(run) / "cases" / f"{case_slug(case)}.html"
        if not page.is_file():
            sys.exit(f"no page for case {case} at {page}")
        screenshot(page, args.out, args.width, args.height, scratch)
    print(f"case {case} (FAIL): {args.out}")


if __name__ == "__main__":
    main()
