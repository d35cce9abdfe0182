"""A chaos soak of any proxy: thousands of streams, each with its own faults.

`make soak`, or `.venv/bin/python bench/soak.py [--streams N] [--concurrency C] [--seed S]
[--max-seconds T] [--report-dir DIR | --out PATH] [TARGET]` (defaults 10,000 streams, 100
at a time, seed 20250131, at most 300 s of launching, reports/). TARGET is the bundled
proxy by default, or as in the suites `--target NAME` (a profile of targets.toml), or
`--target-cmd TEMPLATE` with `--target-offers` and `--target-timeouts`; `--proxy-cmd
TEMPLATE` is a build of the reference proxy (e.g. `tests/broken_reference.py`), run on the
config the harness writes and judged as strictly as the bundled one. `--replay SEED:INDEX`
(repeatable, one seed) runs those streams' schedules again on a fresh fake and target,
after a short warm-up, with every check, and prints both sides of each; `--warmup N` sizes
the warm-up.

On 127.0.0.1 it starts a fake provider (in this process, so that its journals can be read)
and the target (as the harness starts it: a child process in a process group of its own,
on an inherited socket or its own port), then sends every stream through the target from
one asyncio loop speaking HTTP/1.1 with h11, one connection per stream, with the profile's
headers. A client waits as the suites' clients do (`soak_client`): the target's own timers
with tolerance, then a short grace, plus 1 s for the load.

Each stream's schedule is drawn from `random.Random(f"{seed}:{index}")`: a scenario in the
fake's vocabulary (its content, its SSE dialect, and faults before the commit point,
after it, or both, combined with write shapes, often with `first-K`) and a client
behaviour (read to the end, leave after N events, or give up after T s without headers).
The same seed and index always give the same model name, request id included.

Per stream, as the openai SDK's caller lives it (`soak_checks.sdk_view`: the content up to
`[DONE]` or the first payload the SDK raises on), and from what the fake journaled: a whole
answer exactly once, or a failure the client is shown (an HTTP error, an error it raises
on, an aborted transfer) with content that is a prefix of what its attempt wrote; never a
half answer that looks whole, never a stream held past the target's timers. The checks are
harms (a violation for any target) and what a careful proxy does (one in-band error event
and no `[DONE]` after it, a JSON error body, bounded attempts, every upstream attempt
closed): a note, or a violation in a strict run (the bundled proxy, `--proxy-cmd`), whose
rules are those the reference proxy promises — at most 3 attempts, none after the one whose
chunks the client got, and every attempt over.

Globally, after the last stream: the target's file descriptors are back to the baseline
measured after the warm-up, by class: no connection from a client left, no more of
everything else than then, and no more upstream connections than an idle keep-alive pool
may hold (the bundled proxy's 20, another target's concurrency); its peak RSS (VmHWM, reset
after the warm-up, for one process; else the largest sum of VmRSS samples) at most 20 MiB
above the baseline (a note outside a strict run); at least half of the streams whose
upstream answered at once reached their client whole (the premise). When the target offers
`health`, its `requests.active` reaches 0 and its counters match what the clients saw (the
rule is in `counter_check`). While the streams run, the target's process group is read four
times a second (descriptors by class, RSS, CPU): the report's plots over time.

It prints a summary and writes the report (`soak_report`), its page (`soak_page`) and the
target's log; every violation names the seed, the index, the model and the client
behaviour, and the `--replay` that runs it again. The exit status is 1 when there is a
violation, 2 when the target cannot start.

This file is the command line; the soak itself is in `soak_schedules` (the seeded
schedules), `soak_client` (one stream over h11), `soak_checks` (the per-stream verdicts,
the health counters' rule and the limits), `soak_probes` (the target from /proc and
/health), `soak_run` (the warm-up, the streams, the global checks), `soak_report` (the
JSON document and the summary) and `soak_page` (the HTML page), all in bench/.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import soak_page
from bench.soak_checks import (
    HARMS,
    RSS_LIMIT_MIB,
    counter_check,
    judge,
    judge_upstream,
    released,
    sdk_view,
)
from bench.soak_client import Stream, exchange
from bench.soak_probes import counters, health, settle
from bench.soak_report import describe, summary
from bench.soak_run import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_SECONDS,
    DEFAULT_SEED,
    DEFAULT_STREAMS,
    SETTLE_BOUND,
    Options,
    run,
)
from bench.soak_schedules import Schedule, fault_kind, schedule
from streamproof.harness.profiles import DEFAULT_FILE, Profile, ProfileError, choose
from streamproof.harness.report import (
    REFERENCE_LABEL,
    TARGETS,
    copy_docs,
    label,
    runs,
    slug,
    soak_stem,
    write_index,
)
from streamproof.harness.targets import BUNDLED, REFERENCE_TIMEOUTS, Offers, TargetError

# What tests/ uses as `soak.<name>` (`from bench import soak`), besides `main`.
__all__ = [
    "HARMS",
    "RSS_LIMIT_MIB",
    "SETTLE_BOUND",
    "Schedule",
    "Stream",
    "counter_check",
    "counters",
    "exchange",
    "fault_kind",
    "health",
    "judge",
    "judge_upstream",
    "main",
    "released",
    "schedule",
    "sdk_view",
    "settle",
]

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "soak.json"
REPLAY_CONCURRENCY = 4  # for --replay: its warm-up waves, and the replayed streams together


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the target, as the suites' (bench/soak_locust.py too)."""
    parser.add_argument(
        "--target",
        metavar="NAME",
        help="soak a profile of targets.toml (./targets.toml, else the repository's)",
    )
    parser.add_argument(
        "--target-cmd",
        metavar="TEMPLATE",
        help="soak a proxy started from this command template, as the suites' --target-cmd",
    )
    parser.add_argument("--target-offers", metavar="NAMES", help="as the suites' option")
    parser.add_argument("--target-timeouts", metavar="TIMERS", help="as the suites' option")
    parser.add_argument("--targets-file", type=Path, help="the profiles' file")
    parser.add_argument(
        "--proxy-cmd",
        metavar="TEMPLATE",
        help="a build of the reference proxy from this command template, on the config the "
        "harness writes, judged strictly as the bundled one (e.g. tests/broken_reference.py)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--streams", type=int, default=DEFAULT_STREAMS, help="(10000)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="(100)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"({DEFAULT_SEED})")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="launch no stream after this long; report what ran (300)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        metavar="N",
        help="streams in each of the two warm-up waves (default: the concurrency)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=REPORT.parent,
        help="where the report goes, beside the matrix: soak.json and soak.html for the "
        "bundled proxy, soak-<target>.* for another (reports)",
    )
    parser.add_argument("--out", type=Path, help="the JSON's path instead; the page beside it")
    parser.add_argument(
        "--replay",
        action="append",
        default=[],
        metavar="SEED:INDEX",
        help="run this stream's schedule again, alone, and show both sides (repeatable)",
    )
    add_target_arguments(parser)
    args = parser.parse_args(argv)
    try:
        options = target_options(args)
    except ProfileError as exc:
        parser.error(str(exc))
    out = args.out or args.report_dir / _default_name(options)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    if args.replay:
        pairs = [item.split(":", 1) for item in args.replay]
        seeds = {int(seed) for seed, _ in pairs}
        if len(seeds) != 1:
            parser.error("--replay: one seed at a time")
        options = replace(
            options,
            seed=seeds.pop(),
            concurrency=REPLAY_CONCURRENCY,
            indices=[int(index) for _, index in pairs],
            warmup=REPLAY_CONCURRENCY if args.warmup is None else args.warmup,
            quiet=True,
        )
        shown: list[Stream] = []
        try:
            document = run(options, say, shown)
        except TargetError as exc:
            print(exc, file=sys.stderr)
            return 2
        for stream in shown:
            print(f"--- {stream.schedule.seed}:{stream.schedule.index} {stream.schedule.model}")
            print(describe(stream))
            for check, detail in stream.problems:
                print(f"VIOLATION {check}: {detail}")
            for check, detail in stream.notes:
                print(f"NOTE {check}: {detail}")
        print(summary(document))
        return 0 if document["ok"] else 1
    try:
        document = run(run_options(options, args), say)
    except TargetError as exc:  # it never started: one clear error, and no report replaced
        print(exc, file=sys.stderr)
        return 2
    print(summary(document))
    write_report(document, out)
    return 0 if document["ok"] else 1


def write_report(document: dict[str, Any], out: Path) -> None:
    """The JSON, the page and the target's log beside it; the matrix links them."""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    log.write_text(document.pop("_log"))
    document["log"] = log.name
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    page = out.with_suffix(".html")
    page.write_text(soak_page.render(document))
    _publish(out)
    print(f"written: {out}, {page}, {log}")


def run_options(options: Options, args: argparse.Namespace) -> Options:
    """`options` with the run's own: seed, streams, concurrency, time, warm-up."""
    return replace(
        options,
        seed=args.seed,
        streams=args.streams,
        concurrency=args.concurrency,
        max_seconds=args.max_seconds,
        warmup=args.warmup,
    )


def target_options(args: argparse.Namespace) -> Options:
    """The target the options name, and how strictly it is judged; ProfileError if none."""
    if args.proxy_cmd is not None:
        if args.target is not None or args.target_cmd is not None:
            raise ProfileError("--proxy-cmd is a build of the reference proxy: not with --target")
        profile = Profile(
            args.proxy_cmd,
            command=args.proxy_cmd,
            offers=Offers.everything(),
            timeouts=REFERENCE_TIMEOUTS,
        )
        return Options(profile=profile, target_args=f" --proxy-cmd {shlex.quote(args.proxy_cmd)}")
    profile = choose(
        args.target,
        args.target_cmd,
        offers=args.target_offers,
        timeouts=args.target_timeouts,
        path=args.targets_file or _targets_file(),
    )
    words = []
    for flag, value in (
        ("--target", args.target),
        ("--target-cmd", args.target_cmd),
        ("--target-offers", args.target_offers),
        ("--target-timeouts", args.target_timeouts),
        ("--targets-file", args.targets_file),
    ):
        if value is not None:
            words += [flag, shlex.quote(str(value))]
    strict = profile.command == BUNDLED
    return Options(profile=profile, strict=strict, target_args="".join(f" {w}" for w in words))


def _targets_file() -> Path:
    """./targets.toml, else the repository's."""
    here = Path(DEFAULT_FILE)
    return here if here.exists() else ROOT / DEFAULT_FILE


def _default_name(options: Options) -> str:
    """Beside the matrix: soak.json for the bundled proxy, soak-<target>.json for another,
    named as the matrix names the target's folder (so its card links the page)."""
    name = options.profile.name
    if options.profile.command == BUNDLED:
        key = slug(REFERENCE_LABEL)
    else:
        key = slug(name, label({"name": name, "command": options.profile.command}))
    return f"{soak_stem(key)}.json"


def _publish(out: Path) -> None:
    """The docs the page links to beside it, and the matrix again, with the soak's link."""
    report_dir = out.parent
    copy_docs(report_dir)
    if (report_dir / TARGETS).is_dir():
        write_index(report_dir, *runs(report_dir))


if __name__ == "__main__":
    sys.exit(main())
