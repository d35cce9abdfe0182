"""`python -m streamproof.fake_providers`: the fake provider on a real socket, by command."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import curl_examples
from tests.test_docs_scenarios import WAIT, Lines

ROOT = Path(__file__).resolve().parent.parent


def start(*args: str) -> tuple[subprocess.Popen[str], Lines]:
    process = subprocess.Popen(
        [sys.executable, "-m", "streamproof.fake_providers", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
    )
    assert process.stdout is not None
    return process, Lines(process.stdout)


def refused(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamproof.fake_providers", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=WAIT,
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_fake_cli_serves_until_stopped_and_its_banner_request_works(stop):
    process, lines = start("--port", "0")
    try:
        (banner,) = lines.wait_for(bool)[:1]
        found = re.fullmatch(
            r"fake provider on (http://127\.0\.0\.1:(\d+))/v1 \(Ctrl-C stops it\); "
            r"try: (curl .*) \(scenarios: docs/scenarios\.md\)",
            banner,
        )
        assert found, banner
        base, port = found.group(1), int(found.group(2))
        assert port != 0
        # The request the banner offers, as curl would send it: a three-delta stream.
        command = curl_examples.parse_curl(found.group(3))
        with httpx.Client(trust_env=False) as client:
            printed = curl_examples.terminal(command, client, {})
        assert command.url == f"{base}/v1/chat/completions"
        assert printed.count("data: ") == 6  # role, three deltas, finish, [DONE]
        assert printed.endswith("data: [DONE]\n\n")
        # Then it prints a line for that attempt.
        attempt = lines.wait_for(lambda got: len(got) > 1)[1]
        assert attempt == (
            "POST /v1/chat/completions streamproof.chunks-3 #1: 200, 6 events in 6 writes "
            f"({len(printed.encode())} bytes), ended cleanly"
        )
    finally:
        process.send_signal(stop)
        process.wait(timeout=WAIT)
        lines.closed()
    assert process.stderr is not None
    errors = process.stderr.read()
    process.stderr.close()
    assert process.returncode == 0, errors
    assert errors == ""
    with pytest.raises(ConnectionRefusedError):  # it stopped listening
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()


def test_fake_cli_listens_on_the_port_given():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free a moment ago; the fake binds it after
    process, lines = start("--port", str(port))
    try:
        assert f"http://127.0.0.1:{port}/v1 " in lines.wait_for(bool)[0]
        response = httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False, timeout=WAIT)
        assert response.json()["data"][0]["id"] == "streamproof"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=WAIT)
        lines.closed()
        assert process.stderr is not None
        process.stderr.close()
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(["--host", "0.0.0.0"], "not a loopback IPv4 address", id="any-address"),
        pytest.param(["--host", "192.168.1.10"], "not a loopback IPv4 address", id="lan"),
        pytest.param(["--host", "localhost"], "not a loopback IPv4 address", id="a-name"),
        pytest.param(["--host", "::1"], "not a loopback IPv4 address", id="ipv6"),
        pytest.param(["--port", "65536"], "is not a port", id="port-too-big"),
        pytest.param(["--port", "-1"], "is not a port", id="port-negative"),
        pytest.param(["--port", "eighty"], "is not a port", id="port-not-a-number"),
        pytest.param(["--colour"], "unrecognized arguments", id="unknown-option"),
    ],
)
def test_fake_cli_bad_options_exit_2_saying_why(args, said):
    result = refused(*args)
    assert result.returncode == 2
    assert said in result.stderr
    assert result.stderr.startswith("usage: python -m streamproof.fake_providers")
    assert result.stdout == ""


def test_fake_cli_port_in_use_exits_1_saying_so():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = refused("--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Address already in use" in result.stderr
    assert result.stdout == ""
