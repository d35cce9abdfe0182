"""Starting and stopping the target: the harness's own faults are never shown as the proxy's.

Environment proxies are never used for loopback, a target that cannot start is one clear
error that stops the run, a SIGTERM stops the target as Ctrl-C does, and `--target-ready`
says how a started target is known to be ready.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from streamproof.harness.client import StreamClient
from streamproof.harness.options import profile_of
from streamproof.harness.targets import (
    ProcessTarget,
    TargetError,
    no_proxy,
    parse_readiness,
    sigterm_interrupts,
)

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"
LEAN = ("-p", "no:html", "-p", "no:hypothesispytest", "-p", "no:cacheprovider")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
NOWHERE = "http://127.0.0.1:9/v1"  # an upstream for targets that never call it

# A stand-in proxy: it writes its pid and the NO_PROXY it was given to STATE, logs the path
# of every GET to STATE.requests and answers it, and never answers a POST (it marks that one
# came with STATE.posted): a case that sends one is in progress until the run is stopped.
STAND_IN = """
import json, os, socket, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer

listen, state = sys.argv[1], sys.argv[2]


def write(path, text):
    with open(path + ".tmp", "w") as file:
        file.write(text)
    os.replace(path + ".tmp", path)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with open(state + ".requests", "a") as file:
            file.write(self.path + "\\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        write(state + ".posted", "")
        threading.Event().wait()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
server.socket.close()
if listen.startswith("fd="):
    server.socket = socket.socket(fileno=int(listen[3:]))
else:
    server.socket = socket.create_server(("127.0.0.1", int(listen[5:])))
names = ("NO_PROXY", "no_proxy")
write(state, json.dumps({"pid": os.getpid(), **{n: os.environ.get(n) for n in names}}))
server.serve_forever()
"""


class BadGateway:
    """An HTTP proxy that answers 502 to everything, and notes every request it was sent."""

    def __init__(self) -> None:
        seen = self.requests = list[str]()

        class Handler(BaseHTTPRequestHandler):
            def handle_one_request(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    return
                seen.append(self.requestline)
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> BadGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[BadGateway]:
    """Every proxy variable of the environment names a BadGateway; no NO_PROXY."""
    with BadGateway() as gateway:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, gateway.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield gateway


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    path = tmp_path / "stand_in.py"
    path.write_text(STAND_IN)
    return path


def _state(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


def _wait_for(path: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not appear within {within} s"
        time.sleep(0.02)  # polling a file, bounded


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody has reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --- environment proxies ------------------------------------------------------------------


def test_no_proxy_appends_the_loopback_names() -> None:
    assert no_proxy(None, None) == "127.0.0.1,localhost,::1"
    assert no_proxy("corp.example, localhost", "") == "corp.example,localhost,127.0.0.1,::1"
    assert no_proxy("a", "b,a") == "a,b,127.0.0.1,localhost,::1"


@pytest.mark.parametrize(
    "listen", [pytest.param("fd={fd}", id="inherited"), pytest.param("port={port}", id="polled")]
)
def test_target_readiness_probe_never_uses_the_environment_proxy(
    gateway: BadGateway, stand_in: Path, tmp_path: Path, listen: str
) -> None:
    state = tmp_path / "state.json"
    target = ProcessTarget(f"{{python}} {stand_in} {listen} {state}", NOWHERE, tmp_path)
    target.start()
    try:
        assert (tmp_path / "state.json.requests").read_text() == "/health\n"
    finally:
        target.stop()
    assert gateway.requests == []


def test_target_gets_no_proxy_for_loopback(
    monkeypatch: pytest.MonkeyPatch, stand_in: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("NO_PROXY", "corp.example")
    monkeypatch.delenv("no_proxy", raising=False)
    state = tmp_path / "state.json"
    target = ProcessTarget(f"{{python}} {stand_in} fd={{fd}} {state}", NOWHERE, tmp_path)
    target.start()
    target.stop()
    expected = "corp.example,127.0.0.1,localhost,::1"
    assert _state(state) | {"pid": 0} == {"pid": 0, "NO_PROXY": expected, "no_proxy": expected}


def _stream_client_uses_the_environment_proxy(gateway: BadGateway) -> bool:
    client = StreamClient(f"http://127.0.0.1:{_closed_port()}")
    try:
        client.get("/probe")
    except httpx.HTTPError:
        pass  # refused: it went straight to the (closed) port
    finally:
        client.close()
    used = bool(gateway.requests)
    gateway.requests.clear()
    return used


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_environment_proxy_is_never_used_for_loopback(
    pytester: pytest.Pytester, gateway: BadGateway
) -> None:
    assert not _stream_client_uses_the_environment_proxy(gateway)
    out = pytester.path / "verdicts.json"
    result = pytester.runpytest_subprocess(
        str(SUITES), "--case", "1.1", "--case", "7.1", "--verdicts-json", str(out), *LEAN
    )
    verdicts = {v["case"]: v["level"] for v in json.loads(out.read_text())}
    assert verdicts == {"1.1": "PASS", "7.1": "PASS"}, result.stdout.str()
    assert gateway.requests == []


# --- a target that cannot start ------------------------------------------------------------


EXITS = "{python} -c \"import os, sys; print('said', os.environ['STREAMPROOF_UPSTREAM_KEY'])"
EXITS += "; print('boom-marker', file=sys.stderr); sys.exit(3)\""


@pytest.mark.parametrize(
    ("command", "why", "workers"),
    [
        pytest.param(EXITS + " {port}", "exited with status 3", 0, id="exits"),
        pytest.param(EXITS + " {fd}", "exited with status 3", 0, id="exits-with-the-socket"),
        pytest.param(
            "streamproof-no-such-proxy --port {port}",
            "No such file or directory: 'streamproof-no-such-proxy'",
            0,
            id="not-found",
        ),
        pytest.param(EXITS + " {port}", "exited with status 3", 2, id="exits-under-xdist"),
    ],
)
def test_target_that_cannot_start_is_one_error_and_the_run_stops(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, command: str, why: str, workers: int
) -> None:
    monkeypatch.setenv("STREAMPROOF_UPSTREAM_KEY", "sk-canary-4711")
    out = pytester.path / "verdicts.json"
    xdist = ("-n", str(workers)) if workers else ("-p", "no:xdist")
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        str(SUITES), "--target-cmd", command, "--verdicts-json", str(out), *LEAN, *xdist
    )
    elapsed = time.monotonic() - started
    text = result.stdout.str() + result.stderr.str()
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.INTERNAL_ERROR), text
    errors = [v for v in json.loads(out.read_text()) if v["level"] == "ERROR"]
    assert 1 <= len(errors) <= max(workers, 1), text  # one per worker at most, not 232
    assert text.count("ERROR at setup of") == len(errors)
    assert "streamproof: the target could not start" in text
    message = errors[0]["reason"]
    assert f"the target {command!r} could not start" in message
    assert "command: " in message
    assert why in message
    if "exited" in why:
        assert "boom-marker" in message  # the tail of its output
        assert "said [redacted]" in message
        assert "sk-canary-4711" not in text
    assert "Traceback" not in text
    assert "232 errors" not in text
    # Neither results.json nor the report is replaced by a run that judged nothing.
    assert not (pytester.path / "reports" / "results.json").exists()
    assert not (pytester.path / "reports" / "index.json").exists()
    assert not list((pytester.path / "reports" / "targets").glob("*/results.json"))
    assert "report: not updated: the target never started" in text
    assert elapsed < 60  # the whole run, interpreter and workers included


# --- SIGTERM ---------------------------------------------------------------------------


def test_sigterm_stops_the_target(stand_in: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITES),
            "--case",
            "2.2",
            "--target-cmd",
            f"{{python}} {stand_in} fd={{fd}} {state}",
            *LEAN,
            "-p",
            "no:xdist",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pid = 0
    try:
        _wait_for(tmp_path / "state.json.posted", within=60)  # the target is up, 2.2 waits
        pid = int(str(_state(state)["pid"]))
        assert _alive(pid)
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, "the target outlived the run by 10 s"
            time.sleep(0.02)  # polling the process table, bounded
        assert run.returncode == pytest.ExitCode.INTERRUPTED, output.decode()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_handler_chains_and_is_removed() -> None:
    calls: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        before = signal.getsignal(signal.SIGTERM)
        with sigterm_interrupts(), pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            signal.raise_signal(signal.SIGTERM)  # its handlers have run when it returns
        assert calls == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- --target-ready ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "readiness"),
    [("/ready", "/ready"), ("tcp", ""), ("", ""), ("TCP", ""), (" /health ", "/health")],
)
def test_parse_readiness(value: str, readiness: str) -> None:
    assert parse_readiness(value) == readiness


@pytest.mark.parametrize("value", ["health", "http://127.0.0.1/health", "/a b"])
def test_parse_readiness_refuses_what_is_not_a_path(value: str) -> None:
    with pytest.raises(ValueError, match=r"a path to GET .* or '' or 'tcp'"):
        parse_readiness(value)


def test_target_ready_is_a_usage_error_when_bad(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest(
        "--target-cmd", "x {port}", "--target-ready", "health", "-p", "no:asyncio"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--target-ready takes a path to GET*or '' or 'tcp'*"])


@pytest.mark.parametrize(
    ("args", "ini", "readiness"),
    [
        pytest.param([], "", "/health", id="default"),
        pytest.param(["--target-ready", "/ready"], "", "/ready", id="path"),
        pytest.param(["--target-ready", "tcp"], "", "", id="tcp"),
        pytest.param(["--target-ready", ""], "", "", id="empty"),
        pytest.param([], "streamproof_target_ready = /from-ini", "/from-ini", id="ini"),
        pytest.param(["--target-ready", "tcp"], "streamproof_target_ready = /x", "", id="both"),
    ],
)
def test_target_ready_reaches_the_profile(
    pytester: pytest.Pytester, args: list[str], ini: str, readiness: str
) -> None:
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{ini}\n")
    config = pytester.parseconfigure("--target-cmd", "my-proxy --port {port}", *args)
    assert profile_of(config).readiness == readiness


@pytest.mark.parametrize(
    ("readiness", "probed"),
    [pytest.param("/ready", "/ready\n", id="path"), pytest.param("", None, id="tcp")],
)
def test_target_readiness_is_what_it_says(
    stand_in: Path, tmp_path: Path, readiness: str, probed: str | None
) -> None:
    state = tmp_path / "state.json"
    template = f"{{python}} {stand_in} port={{port}} {state}"
    target = ProcessTarget(template, NOWHERE, tmp_path, readiness=readiness)
    target.start()
    try:
        requests = tmp_path / "state.json.requests"
        assert (requests.read_text() if requests.exists() else None) == probed
    finally:
        target.stop()


def test_target_that_never_listens_is_a_target_error(tmp_path: Path) -> None:
    target = ProcessTarget("{python} -c 'import time; time.sleep(60)'", NOWHERE, tmp_path)
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"could not start: it did not answer .* after 1 s"):
        target.start(ready_timeout=1.0)
    assert time.monotonic() - started < 10
    assert target.command_line.endswith("-c 'import time; time.sleep(60)'")
