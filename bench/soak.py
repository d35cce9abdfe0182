"""A chaos soak of the bundled reference proxy: thousands of streams, each with its own faults.

`make soak`, or `.venv/bin/python bench/soak.py [--streams N] [--concurrency C] [--seed S]
[--max-seconds T] [--out PATH]` (defaults 10,000 streams, 100 at a time, seed 20250131, at
most 300 s of launching, reports/soak.json). `--replay SEED:INDEX` (repeatable, one seed)
runs those streams' schedules again on a fresh fake and proxy, after a short warm-up, with
every check, and prints both sides of each. `--proxy-cmd` runs another proxy command (a
`--target-cmd` template, e.g. `tests/broken_reference.py`); `--warmup N` sizes the warm-up.

On 127.0.0.1 it starts a fake provider (in this process, so that its journals can be read)
and the reference proxy (a child process on an inherited socket, as the harness starts it,
with the config the harness writes: idle 0.3 s, first byte 0.5 s, total 5 s, 3 attempts),
then sends every stream through the proxy from one asyncio loop speaking HTTP/1.1 with h11,
one connection per stream.

Each stream's schedule is drawn from `random.Random(f"{seed}:{index}")`: a scenario in the
fake's vocabulary (its content, its SSE dialect, and faults before the commit point,
after it, or both, combined with write shapes, often with `first-K`) and a client
behaviour (read to the end, leave after N events, or give up after T s without headers).
The same seed and index always give the same model name, request id included.

Per stream, from what the client received and what the fake journaled:

- a success (`[DONE]`) carries the clean answer's content exactly once (`chat.expected`),
  every chunk from one attempt, one `[DONE]` and nothing after it;
- a failure is an HTTP error status with a JSON error body, or a 200 event stream that
  ends with exactly one in-band error event, no `[DONE]`, and content that is a prefix of
  what the attempt it came from wrote;
- anything else (a body that just stops, a reset, silence past the total timeout, a 200
  that is not an event stream) is a violation; a client that left is not judged on content;
- upstream: a failure was tried upstream at least once, at most 3 attempts, none after the
  one whose chunks the client got, and every attempt over: the fake ended it (clean,
  reset) or the proxy hung up; none held open.

Globally, after the last stream: the proxy's `requests.active` reaches 0 (bounded wait);
its health counters match what the clients saw (the rule is in `counter_check`); its file
descriptors are back to the baseline measured after the warm-up, by class: no connection
from a client left, no more of everything else than then, and no more upstream connections
than its idle keep-alive pool may hold (the baseline's, or httpx's 20; that they are idle
is the journal's check above: every attempt is over); and its peak
RSS during the soak (VmHWM, reset after the warm-up through /proc/PID/clear_refs; sampled
VmRSS where that is refused) is at most 20 MiB above its RSS after the warm-up.

It prints a summary and writes the report; every violation names the seed, the index, the
model and the client behaviour, and the `--replay` that runs it again. The exit status is 1
when there is a violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import httpx

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_providers import Attempt, FakeProvider, Journal, chat
from fake_providers.faults import ERROR_SHAPES, NONOBJECTS, Fault, NonObject
from fake_providers.scenario import Scenario
from fake_providers.text import TEXT_KINDS
from harness.sse import SSEDecoder
from harness.sut import Exchange
from harness.targets import BUNDLED, MAX_ATTEMPTS, REFERENCE_TIMEOUTS, ProcessTarget
from harness.transcript import DONE, Arrival, Outcome, Transcript, Transport
from harness.upstream import (
    Chop,
    CloseAfter,
    Coalesce,
    CutInside,
    Malformed,
    NoDone,
    ResetAfter,
    ResetBeforeHeaders,
    ResetInside,
    Slow,
    SplitUtf8,
    StallAfter,
    StallBeforeHeaders,
    Status,
    UpstreamError,
)

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "soak.json"
DEFAULT_SEED = 20250131
DEFAULT_STREAMS = 10_000
DEFAULT_CONCURRENCY = 100
DEFAULT_MAX_SECONDS = 300.0
TIMEOUTS = REFERENCE_TIMEOUTS  # the config the harness writes: idle 0.3, first byte 0.5, total 5 s
# A client gives up on a stream this long after sending it: the proxy's total timeout plus
# room for a loaded machine. A stream still open then has been held past every timer.
STREAM_BOUND = TIMEOUTS.bound("total") + 3.0
STALL_LIMIT = 10.0  # the fake ends a stall by itself after this: a stall the proxy never cut
SETTLE_BOUND = 20.0  # seconds for active == 0, every attempt over, fds back (each)
RSS_LIMIT_MIB = 20.0
POLL = 0.01  # seconds between reads of another process's /proc files (see `settle`)
SAMPLE = 0.25  # seconds between VmRSS samples during the soak
KEPT_PER_CHECK = 100  # violations of each check in the report; all are counted
CANDIDATES = 10  # streams named by a violation of a global check
SHOWN_PER_CHECK = 3  # violations printed per check; the report has them all (to a bound)
REPLAY_CONCURRENCY = 4  # for --replay: its warm-up waves, and the replayed streams together
CHAT_PATH = "/v1/chat/completions"
# Upstream connections the proxy may keep open, idle, for reuse: httpx's default keep-alive
# pool (max_keepalive_connections), which the reference proxy does not change. Whether a
# connection is idle is the journal's to say: every attempt made on it is over.
KEEPALIVE_BOUND = 20


# --- schedules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """One stream: the scenario the fake plays and what the client does."""

    seed: int
    index: int
    scenario: Scenario
    leave_after_events: int | None = None
    leave_before_response: float | None = None  # seconds without response headers

    @property
    def model(self) -> str:
        return self.scenario.model

    @property
    def client(self) -> str:
        if self.leave_after_events is not None:
            return f"leave after {self.leave_after_events} events"
        if self.leave_before_response is not None:
            return f"give up after {self.leave_before_response:g} s without headers"
        return "read to the end"

    @property
    def replay(self) -> str:
        return f"python bench/soak.py --replay {self.seed}:{self.index}"

    def names(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "index": self.index,
            "model": self.model,
            "client": self.client,
            "replay": self.replay,
        }


def _pre_commit(rng: random.Random, chunks: int) -> Fault:
    """A fault that fires before anything reaches the client: retried by the proxy."""
    draw: list[Callable[[], Fault]] = [
        ResetBeforeHeaders,
        StallBeforeHeaders,
        lambda: Status(rng.choice((500, 502, 503, 529))),
        lambda: Status(429),
        lambda: Status(429, 0),  # Retry-After 0: no cooldown that would refuse other streams
        lambda: ResetAfter(0),
        lambda: Malformed(1),
        lambda: UpstreamError(1, rng.choice(ERROR_SHAPES)),
    ]
    if rng.random() < 0.1:
        return Status(rng.choice((400, 404, 422)))  # the client's problem: passed through
    return rng.choice(draw)()


def _post_commit(rng: random.Random, chunks: int) -> Fault:
    """A fault that fires after the role chunk was relayed: the client must be told."""
    # Events: 1 the role chunk, 2..chunks+1 content, chunks+2 the finish, chunks+3 [DONE].
    after = rng.randint(1, chunks + 1)
    inside = rng.randint(2, chunks + 2)
    draw: list[Callable[[], Fault]] = [
        lambda: ResetAfter(after),
        lambda: StallAfter(after),
        lambda: CloseAfter(rng.randint(1, chunks + 2)),  # chunks+2: finished, no [DONE]
        lambda: CutInside(after),
        lambda: ResetInside(after),
        lambda: Malformed(inside),
        lambda: NonObject(inside, rng.choice(tuple(NONOBJECTS))),
        lambda: UpstreamError(inside, rng.choice(ERROR_SHAPES)),
        NoDone,
    ]
    return rng.choice(draw)()


def _shape(rng: random.Random) -> Fault:
    """How the body is cut into writes, or paced: a correct relay is unaffected."""
    draw: list[Callable[[], Fault]] = [
        lambda: Chop(rng.choice((1, 2, 3, 7, 64))),
        SplitUtf8,
        Coalesce,
        lambda: Slow(rng.choice((1, 5, 20))),
    ]
    return rng.choice(draw)()


def schedule(seed: int, index: int, tag: str = "n") -> Schedule:
    """The schedule of stream `index` under `seed`: the same on every run and machine."""
    rng = random.Random(f"{seed}:{index}")
    chunks = rng.randint(1, 16)
    text = rng.choice(TEXT_KINDS) if rng.random() < 0.35 else None
    eol = rng.choice(("crlf", "cr", "mixed")) if rng.random() < 0.25 else "lf"
    formats = {rng.choice(("bom", "comments", "nospace", "fields", "multiline", "empty_data"))}
    formats = formats if rng.random() < 0.2 else set()
    faults: list[Fault] = []
    first: int | None = None
    kind = rng.choices(("clean", "shaped", "pre", "post", "both"), weights=(10, 15, 30, 30, 15))[0]
    if kind == "shaped":
        faults.append(_shape(rng))
    if kind in ("pre", "both"):
        faults.append(_pre_commit(rng, chunks))
        if rng.random() < 0.25:
            faults.append(_pre_commit(rng, chunks))  # two at once: the earlier stage wins
        # Mostly "fail K times, then succeed"; 1 or 2 recover within 3 attempts, 3 does not.
        first = rng.choices((1, 2, 3, None), weights=(40, 30, 15, 15))[0]
    if kind in ("post", "both"):
        faults.append(_post_commit(rng, chunks))
        if rng.random() < 0.3 and not any(isinstance(f, Slow) for f in faults):
            faults.append(_shape(rng))
        if kind == "post" and rng.random() < 0.3:
            first = 1
    if any(isinstance(f, Slow) for f in faults):
        faults = [f for f in faults if not isinstance(f, Chop)]  # 1-byte writes, each paced
    behaviour = rng.random()
    leave_after = rng.randint(1, 6) if behaviour < 0.12 else None
    give_up = rng.choice((0.02, 0.05, 0.1, 0.2, 0.4)) if 0.12 <= behaviour < 0.2 else None
    scenario = Scenario(
        nonce=f"{tag}{seed}x{index}",
        chunks=chunks,
        eol=eol,
        text=text,
        seed=rng.randint(0, 999) if text == "random" else None,
        faults=tuple(faults),
        first=first,
        formats=frozenset(formats),
    )
    return Schedule(seed, index, scenario, leave_after, give_up)


def fault_kind(token: str) -> str:
    """`reset_after-3` -> `reset_after`."""
    return token.split("-", 1)[0]


# --- the client --------------------------------------------------------------------------


@dataclass
class Stream:
    """One stream as it ran: its schedule, what the client saw, the upstream's journal."""

    schedule: Schedule
    transcript: Transcript
    left: bool  # the client hung up before the end
    journal: Journal
    result: str = ""  # success | http_error | error | left | broken
    problems: list[tuple[str, str]] = field(default_factory=list)  # (check, detail)
    attempt: int | None = None  # the attempt whose chunks the client got, if any


def _terminal(data: str, name: str) -> bool:
    """An event that ends a stream: `[DONE]` or an in-band error (any of its shapes)."""
    if data == "[DONE]" or name == "error":
        return True
    try:
        payload = json.loads(data)
    except ValueError:
        return False
    return isinstance(payload, dict) and ("error" in payload or payload.get("object") == "error")


async def exchange(port: int, s: Schedule) -> tuple[Transcript, bool]:
    """Send one stream's request on a connection of its own; record what comes back."""
    body = {"model": s.model, "messages": list(chat.DEFAULT_MESSAGES), "stream": True}
    payload = json.dumps(body).encode()
    loop = asyncio.get_running_loop()
    transcript = Transcript(request=body, sent_at=time.perf_counter())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        transcript.transport, transcript.transport_error = Transport.RESET, f"connect: {exc}"
        transcript.ended_at = time.perf_counter()
        return transcript, False
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("host", f"127.0.0.1:{port}"),
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("content-length", str(len(payload))),
        ("connection", "close"),
    ]
    request = h11.Request(method="POST", target=CHAT_PATH, headers=headers)
    left = False
    counter = SSEDecoder() if s.leave_after_events is not None else None
    seen, ended = 0, False
    try:
        writer.write(conn.send(request) + conn.send(h11.Data(data=payload)))
        writer.write(conn.send(h11.EndOfMessage()))
        transcript.sent_at = time.perf_counter()
        ends = loop.time() + STREAM_BOUND
        give_up = s.leave_before_response
        head_ends = ends if give_up is None else min(ends, loop.time() + give_up)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                waiting_for_head = transcript.status is None
                try:
                    async with asyncio.timeout_at(head_ends if waiting_for_head else ends):
                        data = await reader.read(65536)
                except TimeoutError:
                    if waiting_for_head and give_up is not None and head_ends < ends:
                        left, transcript.transport = True, Transport.LEFT
                    else:
                        transcript.transport = Transport.TIMED_OUT
                    transcript.transport_error = "TimeoutError"
                    break
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                transcript.status = event.status_code
                transcript.headers = {
                    name.decode().lower(): value.decode("latin-1") for name, value in event.headers
                }
                transcript.headers_at = time.perf_counter()
            elif isinstance(event, h11.Data):
                transcript.chunks.append(Arrival(time.perf_counter(), bytes(event.data)))
                if counter is not None and s.leave_after_events is not None and not ended:
                    for sse in counter.feed(bytes(event.data)):
                        seen += 1
                        ended = ended or _terminal(sse.data, sse.event)
                    if seen >= s.leave_after_events and not ended:
                        left, transcript.transport = True, Transport.LEFT
                        break
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                transcript.transport = Transport.RESET
                transcript.transport_error = "the connection closed before a response"
                break
    except h11.RemoteProtocolError as exc:  # e.g. the body ended inside a chunk
        transcript.transport, transcript.transport_error = Transport.RESET, f"h11: {exc}"
    except ConnectionError as exc:
        transcript.transport = Transport.RESET
        transcript.transport_error = f"{type(exc).__name__}: {exc}"
    finally:
        transcript.ended_at = time.perf_counter()
        writer.close()  # a client that leaves closes its connection: the proxy sees it go
    return transcript, left


# --- per-stream verdicts -----------------------------------------------------------------


def _chunk_attempts(t: Transcript, nonce: str) -> set[int | None]:
    """The attempt numbers in the chunks' ids (`chatcmpl-<nonce>-<k>`); None for another."""
    prefix = f"chatcmpl-{nonce}-"
    found: set[int | None] = set()
    for _, chunk in t.chat_chunks:
        ident = chunk.get("id")
        tail = ident[len(prefix) :] if isinstance(ident, str) and ident.startswith(prefix) else ""
        found.add(int(tail) if tail.isdigit() else None)
    return found


def _attempt(journal: Journal, number: int | None) -> Attempt | None:
    return next((a for a in journal.attempts if a.number == number), None)


def judge(stream: Stream) -> None:
    """The stream's result, and its problems, from what the client saw (see the docstring)."""
    s, t = stream.schedule, stream.transcript
    problems = stream.problems
    attempts = _chunk_attempts(t, s.scenario.nonce)
    if len(attempts) > 1:
        shown = sorted(str(a) for a in attempts)
        problems.append(("attempts-mixed", f"chunks from attempts {', '.join(shown)}"))
    stream.attempt = next(iter(attempts)) if len(attempts) == 1 else None
    if stream.left:
        stream.result = "left"
        return
    outcome = t.outcome
    kind = t.headers.get("content-type", "")
    if t.status == 200 and not kind.startswith("text/event-stream"):
        stream.result = "broken"
        problems.append(("not-an-event-stream", f"status 200 with content-type {kind!r}"))
        return
    if outcome is Outcome.DONE:
        stream.result = "success"
        _judge_success(stream)
    elif outcome is Outcome.ERROR:
        stream.result = "error"
        _judge_error(stream)
    elif outcome is Outcome.HTTP_ERROR:
        stream.result = "http_error"
        document = t.json_body
        if not (isinstance(document, dict) and isinstance(document.get("error"), dict)):
            problems.append(("error-body", f"HTTP {t.status} without a JSON error object"))
        if t.status is None or not 400 <= t.status <= 599:
            problems.append(("error-status", f"HTTP {t.status} is not an error status"))
    else:
        stream.result = "broken"
        check = {
            Outcome.TRUNCATED: "silent-truncation",
            Outcome.RESET: "connection-broken",
            Outcome.TIMED_OUT: "no-end",
            Outcome.NO_RESPONSE: "no-response",
        }.get(outcome, f"outcome-{outcome.value}")
        detail = (
            f"{t.outcome.value}: status {t.status}, {len(t.events)} events, no [DONE], "
            f"no error event, {len(t.content(0))} characters"
            + (f" ({t.transport_error})" if t.transport_error else "")
        )
        if outcome is Outcome.TIMED_OUT:
            detail += f"; still open {STREAM_BOUND:g} s after it was sent"
        problems.append((check, detail))


def _judge_success(stream: Stream) -> None:
    s, t, problems = stream.schedule, stream.transcript, stream.problems
    if t.done_count != 1:
        problems.append(("done-count", f"{t.done_count} [DONE] events"))
    if t.payloads and t.payloads[-1][1] is not DONE:
        problems.append(("events-after-done", "events after [DONE]"))
    if t.error_events:
        problems.append(("error-and-done", f"{len(t.error_events)} error events and [DONE]"))
    got, want = t.content(0), chat.expected(s.scenario).text
    if got != want:
        if want.startswith(got):
            check = "truncated-as-done"
        elif got.count(want) > 1 or (len(got) > len(want) and got.startswith(want)):
            check = "content-duplicated"
        else:
            check = "content-differs"
        problems.append((check, f"{len(got)} characters received, {len(want)} expected"))
    if t.finish_reason(0) != s.scenario.finish_reason:
        problems.append(("finish-reason", f"finish_reason {t.finish_reason(0)!r}"))


def _judge_error(stream: Stream) -> None:
    t, problems = stream.transcript, stream.problems
    errors = t.error_events
    if len(errors) != 1:
        problems.append(("error-count", f"{len(errors)} in-band error events"))
    if t.events and errors and t.events[-1] is not errors[-1]:
        problems.append(("events-after-error", "events after the error event"))
    got = t.content(0)
    attempt = _attempt(stream.journal, stream.attempt)
    written = attempt.content_written if attempt is not None else ""
    if got and not written.startswith(got):
        source = f"attempt {stream.attempt}" if attempt is not None else "no attempt"
        problems.append(
            (
                "content-not-prefix",
                f"{len(got)} characters received are not a prefix of the {len(written)} "
                f"{source} wrote",
            )
        )


def released(attempt: Attempt) -> bool:
    """The attempt is over: the fake ended it (clean, reset) or the proxy hung up."""
    if attempt.peer_closed_at is not None:
        return True
    return attempt.ending in ("clean", "reset", "peer_left")


def judge_upstream(stream: Stream) -> None:
    """Per stream, once the proxy is idle: attempts bounded, none after the commit, and
    every one of them over (the journal is final by then, or the wait for it timed out)."""
    attempts = stream.journal.attempts
    if not attempts and stream.result in ("http_error", "error"):
        # The upstream listens on 127.0.0.1 and answers every request: a failure that never
        # reached it is the proxy's own (a connection pool that hands out no connection).
        stream.problems.append(
            (
                "no-upstream-attempt",
                f"failed ({stream.transcript.status}) without one request reaching the upstream",
            )
        )
    if len(attempts) > MAX_ATTEMPTS:
        stream.problems.append(("too-many-attempts", f"{len(attempts)} upstream attempts"))
    if stream.attempt is not None:
        # An attempt the proxy had hung up on before the fake read it was made before the
        # commit, whatever number the fake gave it: a loaded fake may read it late.
        later = [a.number for a in attempts if a.number > stream.attempt and not a.abandoned]
        if later:
            stream.problems.append(
                ("attempt-after-commit", f"attempts {later} after attempt {stream.attempt}")
            )
    for a in attempts:
        if released(a):
            continue
        if a.ending == "stall":
            detail = f"attempt {a.number}: held open until the fake gave up ({STALL_LIMIT:g} s)"
            stream.problems.append(("upstream-held-open", detail))
        else:
            stream.problems.append(("upstream-not-closed", f"attempt {a.number} still open"))


# --- the proxy from outside: /proc and /health -------------------------------------------


def children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if stat.rpartition(")")[2].split()[1] == me:
                found.add(int(entry.name))
    return found


def _tcp_sockets(pid: int) -> dict[int, tuple[int, int]]:
    """inode -> (local port, remote port) of the TCP sockets in the process's namespace."""
    found: dict[int, tuple[int, int]] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            found[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16))
    return found


def fd_classes(pid: int, proxy_port: int, fake_port: int) -> dict[str, int]:
    """The process's open descriptors: `client` (connections accepted on its port),
    `upstream` (connections to the fake), `other` (the listener, files, pipes, ...)."""
    folder = f"/proc/{pid}/fd"
    links = []
    for name in os.listdir(folder):
        with contextlib.suppress(FileNotFoundError):  # closed while we looked
            links.append(os.readlink(f"{folder}/{name}"))
    sockets = _tcp_sockets(pid)
    counts = {"client": 0, "upstream": 0, "other": 0}
    for link in links:
        ports = sockets.get(int(link[8:-1])) if link.startswith("socket:[") else None
        if ports is not None and ports[1] == fake_port:
            counts["upstream"] += 1
        elif ports is not None and ports[0] == proxy_port and ports[1] != 0:
            counts["client"] += 1
        else:
            counts["other"] += 1
    counts["total"] = len(links)
    return counts


def memory_kib(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            found[line.split(":")[0]] = int(line.split()[1])
    return found


def settle(ready: Callable[[], bool], bound: float) -> bool:
    """Ask `ready` until it says yes, for at most `bound` seconds; say whether it did.

    This polls with a deadline on purpose: it waits on another process (the proxy's file
    descriptors, its health report), which offers nothing to wait on. Each question is a
    read of /proc or one HTTP request; POLL seconds pass between them.
    """
    deadline = time.monotonic() + bound
    while True:
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)


def health(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/health", headers={"connection": "close"}, timeout=10.0)
    document = response.json()
    assert isinstance(document, dict)
    return document


def counters(report: dict[str, Any]) -> dict[str, int]:
    requests = report.get("requests", {})
    return {k: int(requests.get(k, 0)) for k in ("total", "succeeded", "failed", "cancelled")}


def counter_check(streams: list[Stream], delta: dict[str, int]) -> list[dict[str, Any]]:
    """The health counters against what the clients saw.

    What a client knows exactly: a `[DONE]` it received is a success the proxy decided before
    sending it, an HTTP error or an in-band error a failure (the proxy records the outcome
    before the last byte goes out). A client that left cannot know whether the proxy had
    already decided (its last bytes may have been on the way) or saw the hang-up first; and a
    stream already judged broken has no agreed meaning. So, with a, b, c the succeeded,
    failed and cancelled counts beyond what the clients saw:

        total = streams sent;  a, b, c >= 0;  a + b + c = left + broken;
        a <= the left or broken streams whose upstream wrote the whole answer.
    """
    seen = Counter(s.result for s in streams)
    succeeded = seen["success"]
    failed = seen["http_error"] + seen["error"]
    unknown = [s for s in streams if s.result in ("left", "broken")]
    whole = [
        s
        for s in unknown
        if any(
            a.content_written == chat.expected(s.schedule.scenario).text for a in s.journal.attempts
        )
    ]
    a, b = delta["succeeded"] - succeeded, delta["failed"] - failed
    c = delta["cancelled"]
    clients = (
        f"clients: {succeeded} successes, {failed} failures, {seen['left']} left, "
        f"{seen['broken']} broken, {len(streams)} in all"
    )
    proxy = (
        f"health: {delta['succeeded']} succeeded, {delta['failed']} failed, "
        f"{delta['cancelled']} cancelled, {delta['total']} in all"
    )
    found: list[tuple[str, str, list[Stream]]] = []
    if delta["total"] != len(streams):
        found.append(("health-total", "the total is not the number of streams sent", unknown))
    if a < 0:
        text = f"{-a} successes the clients saw are not counted as successes"
        found.append(("health-succeeded", text, [s for s in streams if s.result == "success"]))
    if b < 0:
        failures = [s for s in streams if s.result in ("http_error", "error")]
        found.append(("health-failed", f"{-b} failures the clients saw are not counted", failures))
    if a > len(whole):
        text = f"{a} successes beyond what clients saw, but only {len(whole)} could be"
        found.append(("health-succeeded", text, [s for s in streams if s.result != "success"]))
    if a >= 0 and b >= 0 and c >= 0 and a + b + c != len(unknown):
        text = f"{a} + {b} + {c} uncertain counts for {len(unknown)} left or broken streams"
        found.append(("health-cancelled", text, unknown))
    return [
        {
            **(named[0].schedule.names() if named else {}),
            "check": check,
            "detail": f"{text}; {clients}; {proxy}",
            "streams": [s.schedule.names() for s in named[:CANDIDATES]],
        }
        for check, text, named in found
    ]


# --- the run -----------------------------------------------------------------------------


@dataclass
class Options:
    seed: int = DEFAULT_SEED
    streams: int = DEFAULT_STREAMS
    concurrency: int = DEFAULT_CONCURRENCY
    max_seconds: float = DEFAULT_MAX_SECONDS
    indices: Sequence[int] | None = None  # these streams only (replay); else range(streams)
    proxy_cmd: str = BUNDLED
    warmup: int | None = None  # streams per warm-up wave; None: the concurrency
    quiet: bool = False


@dataclass
class Run:
    streams: list[Stream]
    wall: float
    stopped_early: bool
    rss_samples_kib: list[int]


async def drive(
    port: int,
    provider: FakeProvider,
    schedules: Iterable[Schedule],
    concurrency: int,
    max_seconds: float,
    *,
    pid: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Run:
    """Run the streams, `concurrency` at a time, launching none after `max_seconds`."""
    started = time.perf_counter()
    slots = asyncio.Semaphore(concurrency)
    done: list[Stream] = []
    samples: list[int] = []
    tasks: set[asyncio.Task[None]] = set()
    stopped = False

    async def one(s: Schedule) -> None:
        try:
            transcript, left = await exchange(port, s)
            stream = Stream(s, transcript, left, provider.journal(s.scenario.nonce))
            judge(stream)
            done.append(stream)
            if progress is not None:
                progress(len(done))
        finally:
            slots.release()

    async def sample() -> None:
        while pid is not None:
            samples.append(memory_kib(pid)["VmRSS"])
            await asyncio.sleep(SAMPLE)  # a sampling interval, not a synchronisation

    sampler = asyncio.create_task(sample())
    try:
        for s in schedules:
            await slots.acquire()
            if time.perf_counter() - started > max_seconds:
                slots.release()
                stopped = True
                break
            task = asyncio.create_task(one(s))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.wait(set(tasks))
    finally:
        sampler.cancel()
        await asyncio.wait({sampler})
    return Run(done, time.perf_counter() - started, stopped, samples)


def _warm_schedules(seed: int, count: int) -> list[Schedule]:
    """The warm-up: a wave of slow clean streams (all open at once), then a wave of mixed
    schedules (every code path taken before the baseline is read)."""
    clean = [
        Schedule(seed, i, Scenario(nonce=f"w{seed}x{i}", faults=(Slow(25),))) for i in range(count)
    ]
    return clean + [schedule(seed, i, tag="m") for i in range(count)]


def run(
    options: Options, say: Callable[[str], None], keep: list[Stream] | None = None
) -> dict[str, Any]:
    """The whole soak; the report as a document. `keep` receives the streams that ran."""
    indices = list(options.indices if options.indices is not None else range(options.streams))
    schedules = [schedule(options.seed, i) for i in indices]
    warm = options.warmup if options.warmup is not None else options.concurrency
    violations: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as workdir,
        FakeProvider(stall_limit=STALL_LIMIT) as provider,
    ):
        target = ProcessTarget(
            options.proxy_cmd, provider.base_url, Path(workdir), timeouts=TIMEOUTS
        )
        before = children()
        target.start()
        try:
            started = children() - before
            if len(started) != 1:
                raise RuntimeError(f"expected one proxy process, found {sorted(started)}")
            pid = started.pop()
            say(f"proxy pid {pid} on port {target.port}; fake provider on port {provider.port}")
            document = _soak(options, schedules, warm, provider, target, pid, violations, say)
            ran: list[Stream] = document.pop("_streams")
            if keep is not None:
                keep.extend(ran)
            document["proxy_log_tail"] = target.log_tail(5)
        finally:
            target.stop()
    return document


def _soak(
    options: Options,
    schedules: list[Schedule],
    warm: int,
    provider: FakeProvider,
    target: ProcessTarget,
    pid: int,
    violations: list[dict[str, Any]],
    say: Callable[[str], None],
) -> dict[str, Any]:
    port, base = target.port, target.base_url
    # A global violation is replayed by the whole run: the schedules are the seed's.
    rerun = {
        "seed": options.seed,
        "rerun": f"python bench/soak.py --seed {options.seed} --streams {options.streams} "
        f"--concurrency {options.concurrency}",
    }

    def classes() -> dict[str, int]:
        return fd_classes(pid, port, provider.port)

    # Warm-up: not judged; the baseline is what the proxy holds once it has seen every path.
    warming = asyncio.run(
        drive(port, provider, _warm_schedules(options.seed, warm), options.concurrency, 1e9)
    )
    say(f"warm-up: {len(warming.streams)} streams in {warming.wall:.1f} s")
    idle_before = settle(lambda: health(base)["requests"]["active"] == 0, SETTLE_BOUND)
    readings: list[dict[str, int]] = []

    def steady() -> bool:  # no client connection left, and the same count twice running
        readings.append(classes())
        return readings[-1]["client"] == 0 and readings[-2:] == [readings[-1]] * 2

    settle(steady, SETTLE_BOUND)
    fds_before = readings[-1]
    counters_before = counters(health(base))
    memory_before = memory_kib(pid)
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS, from here on
        peak_how = "VmHWM (reset after the warm-up)"
    except OSError:
        peak_how = "the largest VmRSS sample"
    say(
        f"baseline: fds {fds_before}, RSS {memory_before['VmRSS'] / 1024:.1f} MiB, "
        f"counters {counters_before}"
    )
    step = max(1, len(schedules) // 10)

    def progress(count: int) -> None:
        if count % step == 0:
            say(f"{count} of {len(schedules)} streams done")

    soak = asyncio.run(
        drive(
            port,
            provider,
            schedules,
            options.concurrency,
            options.max_seconds,
            pid=pid,
            progress=None if options.quiet else progress,
        )
    )
    streams = sorted(soak.streams, key=lambda s: s.schedule.index)
    say(f"{len(streams)} streams in {soak.wall:.1f} s; settling")
    # Global checks, each a bounded wait on the proxy.
    idle = settle(lambda: health(base)["requests"]["active"] == 0, SETTLE_BOUND)
    after_report = health(base)
    counters_after = counters(after_report)
    if not idle or not idle_before:
        violations.append(
            {
                "check": "active-not-zero",
                **rerun,
                "detail": f"requests.active still {after_report['requests']['active']} after "
                f"{SETTLE_BOUND:g} s",
                "streams": [s.schedule.names() for s in streams[:CANDIDATES]],
            }
        )
    deadline = time.monotonic() + SETTLE_BOUND
    for stream in streams:
        stream.journal.wait_for(
            lambda j: all(released(a) for a in j.attempts), max(0.0, deadline - time.monotonic())
        )
        judge_upstream(stream)
    readings.clear()

    def back() -> bool:
        readings.append(classes())
        now = readings[-1]
        pooled = max(fds_before["upstream"], KEEPALIVE_BOUND)
        return (
            now["client"] == 0 and now["upstream"] <= pooled and now["other"] <= fds_before["other"]
        )

    fds_back = settle(back, SETTLE_BOUND)
    fds_after = readings[-1]
    if not fds_back:
        violations.append(
            {
                "check": "fds-not-back",
                **rerun,
                "detail": f"after {SETTLE_BOUND:g} s: {fds_after}; baseline {fds_before} "
                f"(client sockets must be 0, upstream at most {KEEPALIVE_BOUND} idle in the "
                "keep-alive pool or the baseline's, the others at most the baseline's)",
                "streams": [s.schedule.names() for s in streams if s.result == "left"][:CANDIDATES],
            }
        )
    memory_after = memory_kib(pid)
    peak = max([memory_after["VmHWM"]] if peak_how.startswith("VmHWM") else soak.rss_samples_kib)
    growth = (peak - memory_before["VmRSS"]) / 1024
    if growth > RSS_LIMIT_MIB:
        violations.append(
            {
                "check": "rss-growth",
                **rerun,
                "detail": f"peak RSS {peak / 1024:.1f} MiB, {growth:.1f} MiB over the "
                f"baseline {memory_before['VmRSS'] / 1024:.1f} MiB (limit {RSS_LIMIT_MIB:g})",
                "streams": [],
            }
        )
    delta = {k: counters_after[k] - counters_before[k] for k in counters_after}
    violations.extend({**rerun, **v} for v in counter_check(streams, delta))
    per_stream = [
        {**s.schedule.names(), "check": check, "detail": detail, "result": s.result}
        for s in streams
        for check, detail in s.problems
    ]
    violations.extend(per_stream)  # after the global ones, by stream
    document = _document(
        options,
        schedules,
        soak,
        streams,
        violations,
        warming=warming,
        fds=(fds_before, fds_after),
        memory=(memory_before, memory_after, peak, peak_how),
        health=(counters_before, counters_after, delta),
    )
    document["_streams"] = streams
    return document


def _document(
    options: Options,
    schedules: list[Schedule],
    soak: Run,
    streams: list[Stream],
    violations: list[dict[str, Any]],
    *,
    warming: Run,
    fds: tuple[dict[str, int], dict[str, int]],
    memory: tuple[dict[str, int], dict[str, int], int, str],
    health: tuple[dict[str, int], dict[str, int], dict[str, int]],
) -> dict[str, Any]:
    ran = [s.schedule for s in streams]
    scheduled = Counter(fault_kind(f.token) for s in ran for f in s.scenario.faults)
    fired = Counter(
        fault_kind(token) for s in streams for a in s.journal.attempts for token in a.faults
    )
    results = Counter(s.result for s in streams)
    statuses = Counter(str(s.transcript.status) for s in streams if s.result == "http_error")
    attempts = [len(s.journal.attempts) for s in streams]
    endings = Counter(str(a.ending) for s in streams for a in s.journal.attempts)
    memory_before, memory_after, peak, peak_how = memory
    by_check = Counter(v["check"] for v in violations)
    return {
        "seed": options.seed,
        "streams_planned": len(schedules),
        "streams": len(streams),
        "concurrency": options.concurrency,
        "max_seconds": options.max_seconds,
        "stopped_early": soak.stopped_early,
        "wall_s": round(soak.wall, 2),
        "streams_per_s": round(len(streams) / soak.wall, 1) if soak.wall else None,
        "warmup": {"streams": len(warming.streams), "wall_s": round(warming.wall, 2)},
        "proxy_timeouts": {
            "connect": TIMEOUTS.connect,
            "first_byte": TIMEOUTS.first_byte,
            "idle": TIMEOUTS.idle,
            "total": TIMEOUTS.total,
        },
        "faults_scheduled": dict(scheduled.most_common()),
        "faults_fired": dict(fired.most_common()),
        "first_k": dict(Counter(str(s.scenario.first) for s in ran).most_common()),
        "client_behaviour": dict(
            Counter(
                "leave after N events"
                if s.leave_after_events is not None
                else "give up without headers"
                if s.leave_before_response is not None
                else "read to the end"
                for s in ran
            ).most_common()
        ),
        "outcomes": {
            "success": results["success"],
            "http_error": results["http_error"],
            "http_error_by_status": dict(sorted(statuses.items())),
            "in_band_error": results["error"],
            "left": results["left"],
            "broken": results["broken"],
        },
        "upstream": {
            "attempts": sum(attempts),
            "attempts_per_stream_max": max(attempts, default=0),
            "endings": dict(endings.most_common()),
        },
        "health": {"before": health[0], "after": health[1], "delta": health[2]},
        "fds": {"baseline": fds[0], "after": fds[1]},
        "rss": {
            "baseline_mib": round(memory_before["VmRSS"] / 1024, 1),
            "peak_mib": round(peak / 1024, 1),
            "growth_mib": round((peak - memory_before["VmRSS"]) / 1024, 1),
            "after_mib": round(memory_after["VmRSS"] / 1024, 1),
            "limit_mib": RSS_LIMIT_MIB,
            "peak_from": peak_how,
        },
        "violations_by_check": dict(by_check.most_common()),
        "violation_count": len(violations),
        "violations": _kept(violations),
        "ok": not violations,
    }


def _kept(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: Counter[str] = Counter()
    kept = []
    for v in violations:
        seen[v["check"]] += 1
        if seen[v["check"]] <= KEPT_PER_CHECK:
            kept.append(v)
    return kept


def summary(document: dict[str, Any]) -> str:
    d = document
    lines = [
        f"streams {d['streams']} of {d['streams_planned']} (seed {d['seed']}, concurrency "
        f"{d['concurrency']}{', stopped at --max-seconds' if d['stopped_early'] else ''}); "
        f"wall {d['wall_s']:.1f} s, {d['streams_per_s']} streams/s",
        "faults fired (attempts): " + ", ".join(f"{k} {v}" for k, v in d["faults_fired"].items()),
        "faults scheduled (streams): "
        + ", ".join(f"{k} {v}" for k, v in d["faults_scheduled"].items()),
        "first-K: " + ", ".join(f"{k} {v}" for k, v in d["first_k"].items()),
        "clients: " + ", ".join(f"{k} {v}" for k, v in d["client_behaviour"].items()),
        "outcomes: "
        + ", ".join(f"{k} {v}" for k, v in d["outcomes"].items() if not isinstance(v, dict))
        + f" (HTTP {d['outcomes']['http_error_by_status']})",
        f"upstream: {d['upstream']['attempts']} attempts, endings {d['upstream']['endings']}",
        f"health delta: {d['health']['delta']}",
        f"fds: baseline {d['fds']['baseline']}, after {d['fds']['after']}",
        f"RSS: baseline {d['rss']['baseline_mib']} MiB, peak {d['rss']['peak_mib']} MiB "
        f"(+{d['rss']['growth_mib']} MiB, limit {d['rss']['limit_mib']:g}), after "
        f"{d['rss']['after_mib']} MiB",
        f"violations: {d['violation_count']}"
        + (f" {d['violations_by_check']}" if d["violation_count"] else ""),
    ]
    shown: Counter[str] = Counter()
    for v in d["violations"]:
        shown[v["check"]] += 1
        if shown[v["check"]] > SHOWN_PER_CHECK:
            continue
        where = f"seed {v['seed']} index {v['index']}" if "index" in v else "global"
        lines.append(f"  {v['check']} [{where}]: {v['detail']}")
        if "model" in v:
            lines.append(f"    model {v['model']}; client: {v['client']}; {v['replay']}")
        if "rerun" in v:
            lines.append(f"    the whole run again: {v['rerun']}")
    return "\n".join(lines)


def _describe(stream: Stream) -> str:
    x = Exchange(stream.schedule.scenario, stream.transcript, stream.journal)
    return f"client: {stream.schedule.client}; result {stream.result}\n{x.describe()}"


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
    parser.add_argument("--out", type=Path, default=REPORT, help="where to write the JSON")
    parser.add_argument(
        "--replay",
        action="append",
        default=[],
        metavar="SEED:INDEX",
        help="run this stream's schedule again, alone, and show both sides (repeatable)",
    )
    parser.add_argument(
        "--proxy-cmd",
        default=BUNDLED,
        help="the proxy's command template, as --target-cmd (default: the bundled proxy)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    if args.replay:
        pairs = [item.split(":", 1) for item in args.replay]
        seeds = {int(seed) for seed, _ in pairs}
        if len(seeds) != 1:
            parser.error("--replay: one seed at a time")
        options = Options(
            seed=seeds.pop(),
            concurrency=REPLAY_CONCURRENCY,
            indices=[int(index) for _, index in pairs],
            proxy_cmd=args.proxy_cmd,
            warmup=REPLAY_CONCURRENCY if args.warmup is None else args.warmup,
            quiet=True,
        )
        shown: list[Stream] = []
        document = run(options, say, shown)
        for stream in shown:
            print(f"--- {stream.schedule.seed}:{stream.schedule.index} {stream.schedule.model}")
            print(_describe(stream))
            for check, detail in stream.problems:
                print(f"VIOLATION {check}: {detail}")
        print(summary(document))
        return 0 if document["ok"] else 1
    options = Options(
        seed=args.seed,
        streams=args.streams,
        concurrency=args.concurrency,
        max_seconds=args.max_seconds,
        proxy_cmd=args.proxy_cmd,
        warmup=args.warmup,
    )
    document = run(options, say)
    print(summary(document))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"written: {args.out}")
    return 0 if document["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
