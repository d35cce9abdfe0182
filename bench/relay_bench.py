"""What the reference proxy costs a stream, beside its peers: the same scenarios direct and
through each proxy.

`make bench` (the reference proxy alone), `make bench-peers` (with nginx, Portkey and
LiteLLM), or `.venv/bin/python bench/relay_bench.py [--quick] [--target NAME ...]`. In one
run on 127.0.0.1 it starts the fake provider (`bench.fake_server`, a process of its own),
then holds one session per proxy: the bundled reference proxy first (`ProcessTarget` with
the `BUNDLED` template, on an inherited socket, as the harness starts it), then each
`--target` in turn. A session starts its proxy, streams the same requests directly from the
fake and through the proxy, and stops the proxy before the next session begins, so that no
proxy's background work (LiteLLM's above all) weighs on another's figures; every figure of
a proxy is set against the direct path measured in its own session. In each session:

- time to first byte: N sequential `streamproof.chunks-8` streams per path, in blocks of
  N/ROUNDS per path taken in turn, each block alone on the machine (see `sequential`).
  The time runs from the clock read just before the request is written to the first byte
  of the event stream (the response body; the fake sends its headers a write earlier, the
  proxy with its first event). Median and p99 (nearest rank). The same again, fewer, with
  IDLE seconds of quiet before each stream: what a first byte costs a machine that was
  idle (on this VM, waking an idle process is not free, and a proxy adds a process);
- a 200-chunk stream (`streamproof.chunks-200`: a role chunk, 200 content chunks, a finish
  chunk and `[DONE]`), in blocks the same way: its total time, and the added latency per
  chunk, the difference of the median times from first to last body byte divided by the
  202 gaps between the 203 events (beside it, the median gap between events as they
  arrive, and the whole-stream difference divided by 200);
- throughput: streams/s and chunks/s (events received) of `streamproof.chunks-200` at 1,
  20 and 100 concurrent streams, each stream on a keep-alive connection of its own, for a
  fixed time per level (each connection first streams once, untimed). A level ends when
  its last stream ends, so every stream started is counted whole. Each level also records
  the CPU of the client, the fake and the proxy over wall time: whichever sits at a full
  core sets the pace;
- the proxy's CPU seconds per 1,000 chunks over its throughput levels (utime + stime from
  /proc/<pid>/stat of its process group, before and after) and its peak RSS (VmHWM of the
  group's processes, summed, at the end of the session);

and once, before the sessions:

- the fake provider's own rate, two ways, the lower of which is held against the goal:
  one stream of 100,000 chunks read by a plain socket with 1 MiB reads, the fake pinned to
  one core and the reader to another, request to last byte (building the answer takes
  most of a second of it; the rate while serving is given too); and its chunks per CPU
  second while serving 200-chunk streams directly at each level.

The client is one asyncio event loop speaking HTTP/1.1 itself (a `Protocol` with a small
chunked-body decoder that counts events on blank lines), with none of an HTTP library's
per-chunk work, and the garbage collector off while it measures. It checks itself: the CPU
it used in each throughput level (process time over wall time) and per chunk received is in
the report, and a level where it was busy more than CLIENT_BUSY of the time is flagged as
possibly client-bound. The share of the machine the hypervisor stole is in `host`. A
keep-alive connection that the server closed between two responses (nginx does after the
1,000th request on one) is opened again, as a real client does; a close in the middle of a
response is a failed stream, counted and shown.

The proxy runs with the config the harness writes, but with benchmark timeouts (first byte,
idle and total far beyond any stream here) so that no timer of the test config cuts a
stream at 100 concurrent. `--target NAME` adds a profile of targets.toml (`nginx`,
`portkey`, `litellm`, after `make nginx portkey litellm`), measured the same way in a
session of its own; the goals against nginx and LiteLLM are checked when they were measured
(`relay_goals`). The table is printed, one column per proxy; the figures go to
reports/bench.json (`--out`) and a picture to reports/bench.svg (`--svg`).

This file is the command line; the bench itself is in `relay_client` (the HTTP/1.1 client
and the routes), `relay_probes` (CPU and memory from /proc), `relay_measures` (the measures
and their figures), `relay_run` (the processes started, every measure on every path),
`relay_goals` (the comparisons with the direct path, the goals), `relay_report` (the JSON
document and the table) and `relay_svg` (the picture), all in bench/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.relay_measures import FULL, QUICK
from bench.relay_probes import steal_ticks
from bench.relay_report import make_document, table
from bench.relay_run import ROOT, run
from bench.relay_svg import picture
from streamproof.harness.profiles import DEFAULT_FILE

REPORT = ROOT / "reports" / "bench.json"
PICTURE = ROOT / "reports" / "bench.svg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a short run (about 15 s): fewer samples, 1 s a level"
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help=f"also measure a profile of {DEFAULT_FILE} (nginx, portkey, litellm), in a "
        "session of its own; repeatable",
    )
    parser.add_argument("--out", type=Path, default=REPORT, help="where to write the JSON")
    parser.add_argument("--svg", type=Path, default=PICTURE, help="where to write the picture")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    steal_before = steal_ticks()
    sessions, fake_figures, commands = run(args.target, settings, say)
    wall = time.perf_counter() - started
    steal_after = steal_ticks()
    document = make_document(
        args.quick, settings, wall, (steal_before, steal_after), commands, fake_figures, sessions
    )
    print(table(document))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(picture(document))
    print(f"wall time {wall:.1f} s; written: {args.out}, {args.svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
