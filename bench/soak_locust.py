"""The chaos soak past one machine: its load on Locust in distributed mode, a master and workers.

`make soak-distributed`, or `.venv/bin/python bench/soak_locust.py [--workers N] [--streams N]
[--concurrency C] [--seed S] [--max-seconds T] [TARGET] [--out PATH]` (defaults: 2 workers,
10,000 streams, 100 Locust users in all, seed 20250131, at most 300 s of launching,
reports/soak-distributed.json; TARGET as `bench/soak.py`'s: the bundled proxy, `--target
NAME`, `--target-cmd TEMPLATE`, `--proxy-cmd TEMPLATE`). `--workers 0 --expect-workers N
--master-bind-host ADDR --master-port P` starts no worker here and waits for N started
elsewhere, each as `locust -f bench/locustfile.py --worker --master-host MASTER
--master-port P`.

This process is `bench/soak.py` with another load (`soak_run.run(load=...)`): on 127.0.0.1
it starts the same fake provider (here, so that its journals can be read) and the same
target, runs the same warm-up and takes the same baseline, then runs Locust's master in this process
(on a free port) and starts the workers (`bench/locustfile.py`), each in a process of its
own. The master hands out the indices in batches, each exactly once; a worker's users run
the seed's schedules (`soak_schedules.schedule`) with the same client behaviours and send
back what each client received; here every stream is judged with the fake's journal by
`soak_checks.judge` and `judge_upstream`, and the global checks of `bench/soak.py` follow.
A worker cannot see the journal, so its clients wait a fixed bound from the request (the
target's total timer, or bound, plus 3 s) instead of the patience of `soak_client`: a
stream held past the target's timers is cut later than by `bench/soak.py`, never missed.
An index handed out but never sent back (a worker that died) is a violation too.

The report is `bench/soak.py`'s, plus each stream's verdict (`per_stream`: index, result,
the checks it failed, the seconds to the response's headers, how each upstream attempt
ended, the error's code) and `distributed` (the workers, how many streams each ran, the CPU
seconds of every process: what limits the run). Every violation names the seed, the index
and the `python bench/soak.py --replay SEED:INDEX` that runs it again; the exit status is 1
when there is a violation.

Locust's users run on gevent, which Locust patches into the standard library when it is
imported. Not here: the fake provider runs an asyncio loop in a thread of this process, and
the warm-up another; `LOCUST_SKIP_MONKEY_PATCH` keeps the master's process unpatched (its
Locust parts speak through zmq.green, which needs no patching). The workers are patched, as
Locust starts them.
"""

# ruff: noqa: E402  (Locust is imported once LOCUST_SKIP_MONKEY_PATCH is set: see above)
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SKIP_PATCH = "LOCUST_SKIP_MONKEY_PATCH"
os.environ[SKIP_PATCH] = "1"  # before the first `import locust`: see the docstring

import gevent
import gevent.event
from locust import __version__ as locust_version
from locust.env import Environment
from locust.rpc.protocol import Message

from bench.locustfile import BATCH, STREAM, WANT, SoakUser
from bench.relay_probes import cpu_seconds, group
from bench.soak import add_target_arguments, run_options, target_options, write_report
from bench.soak_checks import judge
from bench.soak_client import Stream
from bench.soak_report import summary
from bench.soak_run import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_SECONDS,
    DEFAULT_SEED,
    DEFAULT_STREAMS,
    SAMPLE,
    SETTLE_BOUND,
    Load,
    Run,
    Setting,
    run,
)
from bench.soak_wire import from_wire
from streamproof.harness.profiles import ProfileError
from streamproof.harness.targets import TargetError, Timeouts
from streamproof.harness.transcript import Transcript

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "soak-distributed.json"
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
DEFAULT_WORKERS = 2
CONNECT_BOUND = 60.0  # seconds for the workers to connect (each imports Locust first)
WATCH = 1.0  # seconds between looks at the workers while the streams run
QUIT_BOUND = 30.0  # seconds for a worker to exit once the master said quit
HELD = 3.0  # seconds a worker's client waits past the target's total timer (or bound)


@dataclass
class Distribution:
    """Where the load runs: the workers started here, those to wait for, the master's
    address for them."""

    workers: int = DEFAULT_WORKERS  # started here
    expect_workers: int | None = None  # to wait for; None: `workers`
    master_bind_host: str = "127.0.0.1"
    master_port: int = 0  # 0: a free one

    @property
    def expected(self) -> int:
        return self.workers if self.expect_workers is None else self.expect_workers


def stream_bound(timeouts: Timeouts) -> float:
    """How long a worker's client waits on a stream from its request (see the docstring)."""
    return timeouts.bound("total") + HELD


@dataclass
class Ledger:
    """The master's book of the indices: those still to hand out, what came back from whom."""

    seed: int
    pending: list[int]  # in the order they are handed out
    max_seconds: float
    started: float = 0.0  # time.perf_counter() when the users were started
    handed_out: int = 0
    stopped_early: bool = False
    gathered: dict[int, dict[str, Any]] = field(default_factory=dict)
    twice: list[int] = field(default_factory=list)  # indices sent back more than once
    by_worker: Counter[str] = field(default_factory=Counter)
    workers: list[str] = field(default_factory=list)  # in the order they connected
    connected: gevent.event.Event = field(default_factory=gevent.event.Event)
    finished: gevent.event.Event = field(default_factory=gevent.event.Event)
    expected_workers: int = 1
    runner: Any = None  # the MasterRunner, to answer through
    headers: dict[str, str] = field(default_factory=dict)  # the target's, for every request
    bound: float = 0.0  # how long a worker's client waits on a stream (`stream_bound`)

    def on_connect(self, client_id: str, **kwargs: Any) -> None:
        if client_id not in self.workers:
            self.workers.append(client_id)
        if len(self.workers) >= self.expected_workers:
            self.connected.set()

    def on_want(self, environment: Environment, msg: Message, **kwargs: Any) -> None:
        if self.pending and time.perf_counter() - self.started > self.max_seconds:
            self.stopped_early = True
            self.pending.clear()  # launch no stream after --max-seconds, as bench/soak.py
        count = max(0, int(msg.data))
        batch, self.pending = self.pending[:count], self.pending[count:]
        self.handed_out += len(batch)
        message = {"seed": self.seed, "indices": batch, "headers": self.headers}
        self.runner.send_message(BATCH, {**message, "bound": self.bound}, client_id=msg.node_id)
        self._check_finished()

    def on_stream(self, environment: Environment, msg: Message, **kwargs: Any) -> None:
        index = msg.data["index"]
        if index in self.gathered:
            self.twice.append(index)
        self.gathered[index] = msg.data
        self.by_worker[msg.node_id] += 1
        self._check_finished()

    def _check_finished(self) -> None:
        if not self.pending and len(self.gathered) >= self.handed_out:
            self.finished.set()


@dataclass
class Gathered:
    ledger: Ledger
    wall: float
    samples: list[dict[str, Any]]  # the target's processes, as `soak_run.Watch` reads them
    cpu_s: dict[str, float]
    worker_logs: list[str]
    master: str


def verdict(stream: Stream) -> dict[str, Any]:
    """A stream's entry in `per_stream`: its verdict, and the timings that can decide it."""
    t = stream.transcript
    return {
        "index": stream.schedule.index,
        "result": stream.result,
        "checks": sorted(check for check, _ in stream.problems),
        "headers_s": None if t.headers_at is None else round(t.headers_at - t.sent_at, 4),
        "attempts": [str(a.ending) for a in stream.journal.attempts],
        "error": error_code(t),
    }


def error_code(t: Transcript) -> str | None:
    """The `code` (else `type`) of the error the client got: the HTTP error's body's, or the
    in-band error event's (the proxy's names its timers: `upstream_idle_timeout`, ...)."""
    if t.status is not None and t.status >= 400:
        document = t.json_body
    elif t.error_events:
        try:
            document = json.loads(t.error_events[-1].event.data)
        except ValueError:
            return None
    else:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") or error.get("type") if isinstance(error, dict) else None
    return None if code is None else str(code)


def _worker_command(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"),
        *("--master-host", "127.0.0.1", "--master-port", str(port), "--loglevel", "WARNING"),
    ]


def gather(where: Distribution, setting: Setting) -> Gathered:
    """Locust's master here, the workers started, every index handed out and sent back."""
    options, say, workdir = setting.options, setting.say, setting.workdir
    indices = [s.index for s in setting.schedules]
    env = Environment(user_classes=[SoakUser], host=setting.target.base_url)
    runner = env.create_master_runner(where.master_bind_host, where.master_port)
    port = runner.server.port
    ledger = Ledger(options.seed, list(indices), options.max_seconds, runner=runner)
    ledger.expected_workers = where.expected
    ledger.headers, ledger.bound = setting.headers, stream_bound(options.timeouts)
    runner.register_message(WANT, ledger.on_want)
    runner.register_message(STREAM, ledger.on_stream)
    env.events.worker_connect.add_listener(ledger.on_connect)  # type: ignore[no-untyped-call]
    say(f"Locust {locust_version} master on {where.master_bind_host}:{port}")
    environment = {k: v for k, v in os.environ.items() if k != SKIP_PATCH}  # workers patch
    logs = [workdir / f"worker-{n}.log" for n in range(where.workers)]
    workers = []
    for log in logs:
        with log.open("wb") as sink:
            workers.append(
                subprocess.Popen(
                    _worker_command(port),
                    cwd=ROOT,
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
    samples: list[dict[str, Any]] = []
    leader = setting.watch.leader

    def sample() -> None:
        while True:
            samples.append(setting.watch.read(ledger.started, ledger.gathered))
            gevent.sleep(SAMPLE)  # a sampling interval, not a synchronisation

    sampler = None
    try:
        if where.workers == 0:
            say(f"waiting for {where.expected} workers: {_worker_command(port)[2:]}")
        if not ledger.connected.wait(timeout=CONNECT_BOUND):
            raise RuntimeError(
                f"{len(ledger.workers)} of {where.expected} workers connected in "
                f"{CONNECT_BOUND:g} s; their logs: {[str(p) for p in logs]}"
            )
        say(f"{len(ledger.workers)} workers connected; {options.concurrency} users")
        processes = [[os.getpid()], group(leader), *([w.pid] for w in workers)]
        cpu_before = [cpu_seconds(p) for p in processes]
        ledger.started = time.perf_counter()
        sampler = gevent.spawn(sample)
        gevent.spawn(runner.start, options.concurrency, spawn_rate=options.concurrency)
        step = max(1, len(indices) // 10)
        shown = 0
        deadline = ledger.started + options.max_seconds + ledger.bound + SETTLE_BOUND
        while not ledger.finished.wait(timeout=WATCH):
            if len(ledger.gathered) // step > shown:
                shown = len(ledger.gathered) // step
                say(f"{len(ledger.gathered)} of {len(indices)} streams gathered")
            gone = [n for n, w in enumerate(workers) if w.poll() is not None]
            if gone or runner.clients.missing or time.perf_counter() > deadline:
                say(f"stopping: workers exited {gone}, missing {len(runner.clients.missing)}")
                break
        wall = time.perf_counter() - ledger.started
        cpu_after = [cpu_seconds(p) for p in processes[:1]] + [
            cpu_seconds(group(leader)),
            *(cpu_seconds(p) for p in processes[2:]),
        ]
        names = ["master (fake provider, Locust master)", "target"]
        names += [f"worker {n}" for n in range(len(workers))]
        cpu = {
            name: round(after - before, 2)
            for name, before, after in zip(names, cpu_before, cpu_after, strict=True)
        }
    finally:
        if sampler is not None:
            sampler.kill()
        runner.quit()
        for w in workers:
            try:
                w.wait(timeout=QUIT_BOUND)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    tails = [f"{p.name}: " + " | ".join(p.read_text().splitlines()[-3:]) for p in logs]
    master = f"{where.master_bind_host}:{port}"
    samples.append(setting.watch.read(ledger.started, ledger.gathered))
    return Gathered(ledger, wall, samples, cpu, tails, master)


def locust_load(where: Distribution) -> Load:
    """The soak's load on Locust (`soak_run.Load`): the streams run by the workers, each
    judged here with the fake's journal."""

    def load(setting: Setting) -> tuple[Run, dict[str, Any], list[dict[str, Any]]]:
        options, provider = setting.options, setting.provider
        got = gather(where, setting)
        ledger = got.ledger
        streams = []
        for s in setting.schedules:
            item = ledger.gathered.get(s.index)
            if item is not None:
                transcript, left = from_wire(s, item)
                stream = Stream(s, transcript, left, provider.journal(s.scenario.nonce))
                judge(stream)
                streams.append(stream)
        found: list[dict[str, Any]] = []
        handed = setting.schedules[: ledger.handed_out]
        for s in [s for s in handed if s.index not in ledger.gathered]:  # never sent back
            found.append(
                {
                    **s.names(options.target_args),
                    "check": "not-gathered",
                    "detail": "handed out to a worker that never sent it back; workers: "
                    + "; ".join(got.worker_logs),
                    "result": "",
                }
            )
        if ledger.twice:
            detail = f"indices sent back more than once: {sorted(set(ledger.twice))}"
            found.append({"check": "gathered-twice", "detail": detail, "streams": []})
        chunks = sum(len(s.transcript.chat_chunks) for s in streams)
        workers = {f"worker {n}": ledger.by_worker[w] for n, w in enumerate(ledger.workers)}
        extra = {
            "chunks": chunks,
            "chunks_per_s": round(chunks / got.wall, 1) if got.wall else None,
            "distributed": {
                "locust": locust_version,
                "master": got.master,
                "workers": len(ledger.workers),
                "users": options.concurrency,
                "client_bound_s": ledger.bound,
                "streams_by_worker": workers,
                "handed_out": ledger.handed_out,
                "gathered": len(ledger.gathered),
                "cpu_s": got.cpu_s,
                "cores": os.cpu_count(),
            },
            "per_stream": [verdict(s) for s in streams],
        }
        soak = Run(streams, got.wall, ledger.stopped_early, got.samples, ledger.started)
        return soak, extra, found

    return load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="started here (2)")
    parser.add_argument("--streams", type=int, default=DEFAULT_STREAMS, help="(10000)")
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="Locust users in all (100)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"({DEFAULT_SEED})")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="hand out no stream after this long; report what ran (300)",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, metavar="N", help="as bench/soak.py's --warmup"
    )
    parser.add_argument(
        "--expect-workers",
        type=int,
        default=None,
        metavar="N",
        help="workers to wait for, those started elsewhere included (default: --workers)",
    )
    parser.add_argument(
        "--master-bind-host",
        default="127.0.0.1",
        help="where the master listens for workers (127.0.0.1; another machine's workers "
        "need an address they reach)",
    )
    parser.add_argument("--master-port", type=int, default=0, help="(0: a free port)")
    add_target_arguments(parser)
    parser.add_argument("--out", type=Path, default=REPORT, help="where to write the JSON")
    args = parser.parse_args(argv)
    if args.workers < 0 or (args.workers == 0 and not args.expect_workers):
        parser.error("--workers 0 needs --expect-workers N (workers started elsewhere)")
    try:
        options = target_options(args)
    except ProfileError as exc:
        parser.error(str(exc))
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    command = f"bench/soak_locust.py --workers {args.workers}"
    options = replace(run_options(options, args), command=command)
    where = Distribution(args.workers, args.expect_workers, args.master_bind_host, args.master_port)
    try:
        document = run(options, say, load=locust_load(where))
    except TargetError as exc:  # it never started: one clear error, and no report replaced
        print(exc, file=sys.stderr)
        return 2
    print(summary(document))
    d = document["distributed"]
    print(
        f"Locust {d['locust']}: {d['workers']} workers, {d['users']} users; streams by worker "
        f"{d['streams_by_worker']}; {document['chunks_per_s']} chunks/s; CPU s {d['cpu_s']}"
    )
    write_report(document, args.out)
    return 0 if document["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
