"""`python -m streamproof.fake_providers`: the fake provider on a real socket, by hand.

    python -m streamproof.fake_providers --port 8001     # --port 0 (the default) picks a free port

It serves `FakeProvider` on 127.0.0.1 until Ctrl-C (or SIGTERM), prints one line saying
where it listens and how to try it, then one line per attempt, once the attempt has ended:
what was asked and what the fake did (status, events, writes, how it ended). The scenario
language, with examples: docs/scenarios.md.

Only loopback (127.0.0.0/8): the fake has no authentication and does whatever a model name
asks of it (a 16 MiB delta, a socket held open for 30 s), so it is nothing to offer a
network. A host that is not a loopback IPv4 address is a usage error (exit 2).

Attempts are counted per request id for as long as it runs (`first-K` counts them), so its
journals are kept: memory grows with the attempts served (each keeps up to 64 KiB of its
answer). It is a playground, not a service.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from streamproof.fake_providers.journal import Attempt, Journal, Journals
from streamproof.fake_providers.server import FakeProvider

PROG = "python -m streamproof.fake_providers"
TRY_BODY = (
    '{"model": "streamproof.chunks-3", "stream": true, '
    '"messages": [{"role": "user", "content": "hi"}]}'
)
_ENDINGS = {
    "clean": "ended cleanly",
    "reset": "reset (TCP RST)",
    "stall": "stalled",
    "peer_left": "the client left",
}


class ReportingJournal(Journal):
    """A journal that hands each of its attempts to `report` once, when it has ended.

    The fake's server thread is the only one that begins and updates attempts, so `_open`
    needs no lock of its own.
    """

    def __init__(self, nonce: str, report: Callable[[Attempt], None]) -> None:
        super().__init__(nonce)
        self._report = report
        self._open: list[Attempt] = []  # begun, not yet ended

    def begin(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        *,
        abandoned: bool = False,
    ) -> Attempt:
        attempt = super().begin(method, path, headers, body, abandoned=abandoned)
        self._open.append(attempt)
        return attempt

    def update(self, change: Callable[[], None]) -> None:
        super().update(change)
        ended = [attempt for attempt in self._open if attempt.ending is not None]
        for attempt in ended:
            self._open.remove(attempt)
            self._report(attempt)


def reporting_journals(print_line: Callable[[str], None]) -> Journals:
    """Journals that print one line (`describe`) for each attempt once it has ended."""
    return Journals(lambda nonce: ReportingJournal(nonce, lambda a: print_line(describe(a))))


def describe(attempt: Attempt) -> str:
    """One line on an ended attempt: `POST /v1/chat/completions MODEL #2: 200, ...`.

    Only what the scenario decides is in it (no times), so the same request gives the same
    line on every run.
    """
    body = attempt.body if isinstance(attempt.body, dict) else {}
    head = f"{attempt.method} {attempt.path} {body.get('model', '')} #{attempt.number}"
    faults = f" [{' '.join(attempt.faults)}]" if attempt.faults else ""
    if attempt.status is None:
        if attempt.ending == "stall":
            return f"{head}: no response, stalled{_left(attempt)}{faults}"
        return f"{head}: no response, {_ENDINGS.get(str(attempt.ending), attempt.ending)}{faults}"
    events = attempt.events_written
    if attempt.status == 200 and body.get("stream") is True:
        what = f"{events} event{'s' * (events != 1)}"
    else:
        what = "a JSON body" if events else "no body"
    writes = len(attempt.writes)
    sent = f"{what} in {writes} write{'s' * (writes != 1)} ({attempt.bytes_written} bytes)"
    ending = _ENDINGS.get(str(attempt.ending), str(attempt.ending))
    if attempt.ending == "stall":
        ending += _left(attempt)
    return f"{head}: {attempt.status}, {sent}, {ending}{faults}"


def _left(attempt: Attempt) -> str:
    return " until the client left" if attempt.peer_closed_at is not None else ""


def loopback(host: str) -> str:
    """An argparse type: a loopback IPv4 address, or a usage error that says why."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise argparse.ArgumentTypeError(
            f"{host!r} is not a loopback IPv4 address (127.0.0.0/8): the fake provider has "
            "no authentication and does whatever a model name asks, so it listens on "
            "loopback only"
        )
    return host


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: a free one)."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535; 0 picks a free one)")
    return number


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="streamproof's fake OpenAI-compatible provider, on a real socket until "
        "Ctrl-C. The scenario travels in the request's model name: docs/scenarios.md.",
    )
    parser.add_argument(
        "--host",
        type=loopback,
        default="127.0.0.1",
        help="loopback address to listen on (default 127.0.0.1; nothing else is accepted)",
    )
    parser.add_argument(
        "--port", type=port, default=0, help="port to listen on (default 0: a free one)"
    )
    return parser


def banner(provider: FakeProvider) -> str:
    """The one line printed once the fake listens: where, and a request to try."""
    return (
        f"fake provider on {provider.base_url} (Ctrl-C stops it); try: curl -sSN "
        f"{provider.base_url}/chat/completions -d '{TRY_BODY}' (scenarios: docs/scenarios.md)"
    )


def write_line(line: str) -> None:
    """`line` and its newline to stdout in one write, flushed: whole beside other writers."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        provider = FakeProvider(host=args.host, port=args.port)
    except OSError as exc:
        print(f"{PROG}: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    provider.journals = reporting_journals(write_line)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    # SIGINT too, even where a shell started it with SIGINT ignored: Ctrl-C is how it stops.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        provider.start()
        try:
            write_line(banner(provider))
            stopping.wait()
        finally:
            provider.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
