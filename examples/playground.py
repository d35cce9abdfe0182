"""`make playground`: the reference proxy on the fake provider, on real sockets, with no keys.

    .venv/bin/python examples/playground.py [--port 8000] [--fake-port 0] [--config FILE]

It starts the fake provider (`fake_providers`) on 127.0.0.1, on a free port unless
`--fake-port` names one, then the reference proxy (`python -m streamproof.proxy`) with
examples/playground.toml, its `fake` provider pointed at that fake, on 127.0.0.1:8000 (the
seed guide's recipes use localhost:8000) unless `--port` names another; 0 picks a free one.
Once the proxy answers, it prints where everything is (the proxy's API, its dashboard, the
live feed, the log file, the fake) and requests to try that show recovery. Then the fake
prints a line per attempt (`fake: ...`) and the proxy its log lines, until Ctrl-C (or
SIGTERM, or the terminal closing) stops both.

The proxy listens on a socket bound here and handed over (`--fd`): a port already in use is
said before anything starts, and the first request waits in the socket's backlog rather
than racing the proxy's start. The proxy runs in a session of its own, so the terminal's
Ctrl-C reaches only this script, which asks the proxy once to stop (SIGTERM: uvicorn's
graceful shutdown) and waits for it.

The proxy reads a copy of the config in a temporary folder, the one line of the `fake`
provider's `base_url` changed (and the copy checked by parsing it: nothing else differs).
Its log goes where the config says, relative to the working directory: logs/proxy.log.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from streamproof.fake_providers import FakeProvider
from streamproof.fake_providers.cli import port, reporting_journals, write_line

HOST = "127.0.0.1"  # both servers: loopback only
HERE = Path(__file__).resolve().parent
CONFIG = HERE / "playground.toml"
PROVIDER = "fake"  # the provider of the config that is pointed at the fake
KEY_VARIABLE = "PLAYGROUND_KEY"  # the provider's key variable; the fake ignores its value
DUMMY_KEY = "playground-not-a-secret"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0  # the proxy's graceful shutdown takes at most 5 s
MESSAGES = [{"role": "user", "content": "hi"}]
# (what it shows, the model, whether it streams): the requests printed to try.
TRIES = (
    ("a plain stream", "streamproof.chunks-3", True),
    (
        "the upstream resets twice before answering: the proxy retries, you get one clean stream",
        "streamproof.id-try1.chunks-3.reset_before_headers.first-2",
        True,
    ),
    (
        "a 429 with Retry-After: 1, once: the proxy waits a second and tries again",
        "streamproof.id-try2.chunks-3.status-429-1.first-1",
        True,
    ),
    (
        "a reset after the commit point: the events so far, one error event, no [DONE]",
        "streamproof.id-try3.chunks-4.reset_after-3",
        True,
    ),
    (
        "a stall mid-stream: the proxy's idle timer (3 s) ends it with an error event",
        "streamproof.id-try4.chunks-4.stall_after-3",
        True,
    ),
    (
        "the upstream fails three times: the proxy gives up with a 502 (try -i to see it)",
        "streamproof.id-try5.status-500.first-3",
        False,
    ),
)


class Stop(Exception):
    """SIGTERM or SIGHUP: stop as Ctrl-C does."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def point_at(text: str, provider: str, url: str) -> str:
    """The config `text` with `providers.<provider>.base_url` set to `url`.

    The value is replaced where it is written, and the result parsed: anything but that one
    value differing is an error (ValueError), as is a config without that provider.
    """
    original = tomllib.loads(text)
    try:
        old = original["providers"][provider]["base_url"]
    except (KeyError, TypeError):
        raise ValueError(f"the config has no providers.{provider}.base_url") from None
    literal = json.dumps(old)  # a TOML basic string, for a URL as the config writes it
    if text.count(literal) != 1:
        raise ValueError(f"providers.{provider}.base_url ({literal}) is not written once")
    changed = text.replace(literal, json.dumps(url))
    expected: dict[str, Any] = copy.deepcopy(original)
    expected["providers"][provider]["base_url"] = url
    if tomllib.loads(changed) != expected:
        raise ValueError(f"providers.{provider}.base_url could not be changed alone")
    return changed


def curl(url: str, model: str, stream: bool) -> str:
    body = json.dumps({"model": model, "stream": stream, "messages": MESSAGES})
    return f"curl -sSN {url}/v1/chat/completions -d '{body}'"


def banner(proxy: str, fake: str, log: str) -> str:
    host_port = proxy.removeprefix("http://")
    lines = [
        "",
        "streamproof playground: the reference proxy on a fake provider, no keys needed.",
        "",
        f"  proxy      {proxy}/v1/chat/completions  (and POST {proxy}/api/chat)",
        f"  dashboard  {proxy}/",
        f"  health     {proxy}/health   metrics {proxy}/metrics",
        f"  live feed  ws://{host_port}/ws",
        f"  log        {log}   (tail -f {log})" if log else "  log        stderr only",
        f"  fake       {fake}/v1  (the scenarios: docs/scenarios.md; FAKE={fake})",
        "",
        "Try (the fake counts attempts per id- for as long as it runs: to see a failure",
        "again, change the id):",
    ]
    for what, model, stream in TRIES:
        lines += [f"  # {what}", f"  {curl(proxy, model, stream)}"]
    lines += [
        "  # the seed guide's /api/chat",
        f'  curl -sN -H "Accept: text/event-stream" -X POST {proxy}/api/chat'
        ' -d \'{"message":"test","stream":true}\'',
        "",
        "Ctrl-C stops both.",
        "",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="examples/playground.py",
        description="The reference proxy on streamproof's fake provider, with no keys.",
    )
    parser.add_argument(
        "--port", type=port, default=None, help="the proxy's port (default: the config's, 8000)"
    )
    parser.add_argument(
        "--fake-port", type=port, default=0, help="the fake provider's port (default 0: free)"
    )
    parser.add_argument("--config", type=Path, default=CONFIG, help="the proxy's config file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    prog = "playground"
    try:
        text = args.config.read_text(encoding="utf-8")
        config = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"{prog}: cannot read the config {args.config}: {exc}", file=sys.stderr)
        return 1
    proxy_port = config.get("server", {}).get("port", 8000) if args.port is None else args.port
    try:
        listener = socket.create_server((HOST, proxy_port), backlog=128)
    except OSError as exc:
        print(
            f"{prog}: cannot listen on {HOST}:{proxy_port} for the proxy: {exc}\n"
            f"{prog}: another port: make playground PLAYGROUND_PORT=8010",
            file=sys.stderr,
        )
        return 1
    try:
        fake = FakeProvider(host=HOST, port=args.fake_port)
    except OSError as exc:
        listener.close()
        print(f"{prog}: cannot listen on {HOST}:{args.fake_port}: {exc}", file=sys.stderr)
        return 1
    fake.journals = reporting_journals(lambda line: write_line(f"fake: {line}"))
    proxy_url = f"http://{HOST}:{listener.getsockname()[1]}"
    fake_url = f"http://{fake.host}:{fake.port}"
    log = str(config.get("logging", {}).get("file", "logs/proxy.log"))
    # Ctrl-C is how the playground stops, even where a shell started it with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    process: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="streamproof-playground-") as folder, listener:
        try:
            try:
                run_config = Path(folder) / "playground.toml"
                run_config.write_text(point_at(text, PROVIDER, f"{fake_url}/v1"), "utf-8")
            except ValueError as exc:
                print(f"{prog}: {args.config}: {exc}", file=sys.stderr)
                return 1
            fake.start()
            env = {**os.environ, KEY_VARIABLE: os.environ.get(KEY_VARIABLE) or DUMMY_KEY}
            fd = str(listener.fileno())
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streamproof.proxy",
                    "--config",
                    str(run_config),
                    "--fd",
                    fd,
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                pass_fds=(listener.fileno(),),
                start_new_session=True,  # the terminal's Ctrl-C is ours to pass on, once
            )
            listener.close()  # the proxy's now: if it dies, connects are refused
            try:
                httpx.get(f"{proxy_url}/health", timeout=READY_TIMEOUT, trust_env=False)
            except httpx.HTTPError as exc:
                try:  # a proxy that stopped at startup has said why on stderr already
                    why = f"it exited with {process.wait(timeout=STOP_TIMEOUT)}"
                except subprocess.TimeoutExpired:
                    why = f"{exc!r}"
                print(f"{prog}: the proxy did not start: {why}", file=sys.stderr)
                return 1
            print(banner(proxy_url, fake_url, log), flush=True)
            code = process.wait()
            print(f"{prog}: the proxy exited with {code}", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, Stop):
            print(f"\n{prog}: stopping", file=sys.stderr, flush=True)
            return 0
        finally:
            if process is not None:
                _stop_proxy(process)
            fake.stop()


def _stop_proxy(process: subprocess.Popen[bytes]) -> None:
    """Ask the proxy to stop, once, and wait for it.

    SIGTERM, not SIGINT: uvicorn shuts down gracefully on either, then raises the signal
    again, and a SIGINT raised again is a KeyboardInterrupt with its traceback. A second
    signal would make it quit at once, open streams cut.
    """
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except (subprocess.TimeoutExpired, KeyboardInterrupt, Stop):  # or a second Ctrl-C
        process.kill()
        process.wait()


if __name__ == "__main__":
    sys.exit(main())
