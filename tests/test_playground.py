"""`make playground` (examples/playground.py): the fake provider and the reference proxy on
it, on free ports here, and the requests its banner offers, the seed guide's recipes and a
Ctrl-C that stops both."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests import curl_examples
from tests.test_docs_scenarios import WAIT, Lines

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "playground.py"
CONFIG = ROOT / "examples" / "playground.toml"
KEY_VARIABLE = "PLAYGROUND_KEY"


@dataclass
class Playground:
    process: subprocess.Popen[str]
    out: Lines
    err: Lines
    proxy: str  # http://127.0.0.1:PORT
    fake: str
    banner: list[str]
    log: Path


def start(workdir: Path, *args: str) -> tuple[subprocess.Popen[str], Lines, Lines]:
    env = {k: v for k, v in os.environ.items() if k != KEY_VARIABLE}  # its own dummy key
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=workdir,  # logs/proxy.log goes here
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    return process, Lines(process.stdout), Lines(process.stderr)


@pytest.fixture
def playground(tmp_path) -> Iterator[Playground]:
    process, out, err = start(tmp_path, "--port", "0")
    try:
        lines = out.wait_for(lambda got: "Ctrl-C stops both." in got)
        assert "Ctrl-C stops both." in lines, "\n".join(lines + err.lines)
        text = "\n".join(lines)
        proxy = re.search(r"^  proxy +(http://127\.0\.0\.1:\d+)/v1/chat/completions", text, re.M)
        fake = re.search(r"^  fake +(http://127\.0\.0\.1:\d+)/v1", text, re.M)
        assert proxy, text
        assert fake, text
        yield Playground(
            process,
            out,
            err,
            proxy.group(1),
            fake.group(1),
            lines,
            tmp_path / "logs" / "proxy.log",
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        process.wait(timeout=WAIT)
        out.closed()
        err.closed()


def _offered(playground: Playground) -> dict[str, str]:
    """What the banner's curl commands print, by the comment above each."""
    printed: dict[str, str] = {}
    comment = ""
    with httpx.Client(trust_env=False) as client:
        for line in playground.banner:
            if line.startswith("  # "):
                comment = line[4:]
            elif line.startswith("  curl "):
                command = curl_examples.parse_curl(line.strip())
                printed[comment] = curl_examples.terminal(command, client, {})
    return printed


def _events(printed: str) -> list[str]:
    return [line[len("data: ") :] for line in printed.splitlines() if line.startswith("data: ")]


def test_playground_recovers_as_its_banner_says_and_ctrl_c_stops_both(playground):
    proxy_port = int(playground.proxy.rsplit(":", 1)[1])
    fake_port = int(playground.fake.rsplit(":", 1)[1])
    assert proxy_port != 0
    assert fake_port != 0
    printed = _offered(playground)
    assert len(printed) == 7, printed.keys()
    by_word = {
        word: text
        for word in ("plain", "resets twice", "429", "reset after", "stall", "three", "seed")
        for comment, text in printed.items()
        if word in comment
    }
    assert len(by_word) == 7, printed.keys()
    # A plain stream, and two that recover before the commit point: the client sees one
    # clean stream, the third attempt's (two resets) or the second's (a 429 waited out).
    for word, attempt in (("plain", "fake-1"), ("resets twice", "try1-3"), ("429", "try2-2")):
        events = _events(by_word[word])
        assert events[-1] == "[DONE]", by_word[word]
        assert all(f'"id":"chatcmpl-{attempt}"' in event for event in events[:-1])
    # After the commit point: the events so far, one error event, no [DONE].
    for word, code, kept in (
        ("reset after", "upstream_reset", 3),
        ("stall", "upstream_idle_timeout", 3),
    ):
        events = _events(by_word[word])
        assert len(events) == kept + 1, by_word[word]
        assert json.loads(events[-1])["error"]["code"] == code
        assert "[DONE]" not in events
    # Three failures: the proxy gives up, with an error naming them.
    assert json.loads(by_word["three"])["error"]["code"] == "upstream_failed"
    # The seed's /api/chat, as the banner writes it.
    chunks = _events(by_word["seed"])
    assert chunks[-1] == "[DONE]"
    assert "".join(json.loads(chunk)["chunk"] for chunk in chunks[:-1]).startswith("Hello")
    # The fake printed a line per attempt: 2 resets then a stream for try1, among others.
    fake_lines = playground.out.wait_for(lambda got: sum("try1" in line for line in got) >= 3)
    try1 = [line for line in fake_lines if line.startswith("fake: ") and ".id-try1." in line]
    assert [line.split(": ", 2)[2].split(",")[0] for line in try1] == [
        "no response",
        "no response",
        "200",
    ], try1
    # Ctrl-C: both stop, cleanly, and say so.
    playground.process.send_signal(signal.SIGINT)
    playground.process.wait(timeout=WAIT)
    errors = "\n".join(playground.err.closed())
    assert playground.process.returncode == 0, errors
    assert "playground: stopping" in errors
    assert "Traceback" not in errors
    assert "Application shutdown complete." in errors  # the proxy's own, graceful
    for port in (proxy_port, fake_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()


def test_playground_seed_guide_recipes_work_as_written(playground):
    """The seed guide's debugging recipes, on real sockets: curl a stream of /api/chat (its
    headers, with $PROXY_KEY unset, as the playground has no key), grep the log file for
    the reset, open the dashboard, ping the live feed."""
    # curl -H "Accept: text/event-stream" -H "Authorization: Bearer $PROXY_KEY" \
    #      -X POST http://localhost:8000/api/chat -d '{"message":"test","stream":true}'
    # sends these bytes (curl 7.88; the playground has no key, so $PROXY_KEY is empty and
    # the header ends with a space, which httpx would refuse to send: a plain socket does).
    host_port = playground.proxy.removeprefix("http://")
    body = b'{"message":"test","stream":true}'
    request = (
        f"POST /api/chat HTTP/1.1\r\nHost: {host_port}\r\nUser-Agent: curl/7.88.1\r\n"
        "Accept: text/event-stream\r\nAuthorization: Bearer \r\n"
        f"Content-Length: {len(body)}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    ).encode() + body
    host, port = host_port.split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(request)
        while not answer.endswith(b"\r\n0\r\n\r\n"):  # the end of a chunked body
            piece = sock.recv(65536)
            assert piece, answer
            answer += piece
    head, _, chunked = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert b"\r\ncontent-type: text/event-stream" in head.lower()
    assert b'data: {"chunk": "Hello"}\n\n' in chunked
    assert b"data: [DONE]\n\n" in chunked
    with httpx.Client(trust_env=False, timeout=WAIT) as client:
        # A reset after the commit point, then: tail -f logs/proxy.log | grep -i
        # "readerror\|connection\|reset"
        model = "streamproof.id-seed.chunks-3.reset_after-2"
        chat = {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
        client.post(f"{playground.proxy}/v1/chat/completions", json=chat)
        logged = playground.log.read_text(encoding="utf-8").splitlines()
        grepped = [line for line in logged if re.search("readerror|connection|reset", line, re.I)]
        assert any(model in line and "ReadError" in line for line in grepped), logged
        # The dashboard: GET / on the proxy, its script beside it.
        page = client.get(f"{playground.proxy}/")
        assert page.status_code == 200
        assert "<html" in page.text
        assert "/dashboard.js" in page.text
        assert client.get(f"{playground.proxy}/dashboard.js").status_code == 200
    # websocat ws://localhost:8000/ws --text; Send {"type": "ping"}: receive a pong.
    feed = "ws://" + playground.proxy.removeprefix("http://") + "/ws"
    with connect(feed, proxy=None, open_timeout=WAIT) as websocket:
        assert json.loads(websocket.recv(timeout=WAIT))["type"] == "init"
        websocket.send(json.dumps({"type": "ping"}))
        assert json.loads(websocket.recv(timeout=WAIT))["type"] == "pong"


def test_playground_config_points_only_at_loopback_with_a_dummy_key():
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    assert config["server"]["host"] == "127.0.0.1"
    assert list(config["providers"]) == ["fake"]
    assert config["providers"]["fake"]["base_url"].startswith("http://127.0.0.1:")
    assert config["providers"]["fake"]["api_key_env"] == KEY_VARIABLE
    assert config["routes"] == [{"model": "*", "providers": ["fake"]}]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(
        rf"^\t{KEY_VARIABLE}=\S+ \$\(BIN\)/python examples/playground\.py", makefile, re.M
    )


def test_playground_port_in_use_is_said_before_anything_starts(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process, out, err = start(tmp_path, "--port", str(port))
        process.wait(timeout=WAIT)
    errors = "\n".join(err.closed())
    out.closed()
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for the proxy" in errors
    assert "PLAYGROUND_PORT=" in errors
    assert not (tmp_path / "logs").exists()  # the proxy never started


def test_playground_point_at_changes_the_base_url_alone():
    spec = importlib.util.spec_from_file_location("playground", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = CONFIG.read_text(encoding="utf-8")
    changed = module.point_at(text, "fake", "http://127.0.0.1:4242/v1")
    before, after = tomllib.loads(text), tomllib.loads(changed)
    assert after["providers"]["fake"]["base_url"] == "http://127.0.0.1:4242/v1"
    after["providers"]["fake"]["base_url"] = before["providers"]["fake"]["base_url"]
    assert after == before
    with pytest.raises(ValueError, match=r"no providers\.other\.base_url"):
        module.point_at(text, "other", "http://127.0.0.1:4242/v1")
    twice = text + '\n# the old URL again: "http://127.0.0.1:8001/v1"\n'
    with pytest.raises(ValueError, match="not written once"):
        module.point_at(twice, "fake", "http://127.0.0.1:4242/v1")
