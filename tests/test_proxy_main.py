"""`python -m streamproof.proxy`: the harness's command line, on an inherited socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

KEY = "sk-main-test-key"


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text(
        f"""
        [logging]
        file = "{path.parent / "logs" / "proxy.log"}"

        [providers.fake]
        base_url = "http://127.0.0.1:9/v1"
        api_key_env = "STREAMPROOF_UPSTREAM_KEY"
        {extra}

        [[routes]]
        model = "*"
        providers = ["fake"]
        """
    )
    return path


def run_proxy(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "STREAMPROOF_UPSTREAM_KEY": KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "streamproof.proxy", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=[int(args[-1])] if "--fd" in args else [],
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_main_serves_on_an_inherited_socket(tmp_path):
    config = write_config(tmp_path / "proxy.toml")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        process = run_proxy("--config", str(config), "--fd", str(listener.fileno()))
    try:
        # The socket listened before the process started: the request waits in the backlog.
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)
        assert response.json()["status"] == "ok"
        assert response.json()["requests"]["total"] == 0
    finally:
        process.terminate()
        _, log = process.communicate(timeout=10)
    assert "Application startup complete" in log
    assert KEY not in log
    # The same lines go to the configured log file, its folder created on startup.
    logged = (tmp_path / "logs" / "proxy.log").read_text()
    assert "Application startup complete" in logged
    assert KEY not in logged


def test_main_bad_config_exits_2_naming_the_key(tmp_path):
    config = write_config(tmp_path / "proxy.toml", extra="timeout = 3")
    process = run_proxy("--config", str(config))
    _, log = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "providers.fake.timeout" in log
    assert "unknown key" in log


def test_main_shipped_config_without_keys_stops_naming_them_as_its_comment_says():
    """config.toml without its providers' keys: the proxy does not start (no provider that
    answers 503 instead), and the file's own comment says so."""
    root = Path(__file__).resolve().parent.parent
    variables = ("KIMI_API_KEY", "NVIDIA_API_KEY", "MISTRAL_API_KEY")
    env = {name: value for name, value in os.environ.items() if name not in variables}
    result = subprocess.run(
        [sys.executable, "-m", "streamproof.proxy", "--config", "config.toml"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=30,
    )
    assert result.returncode == 2
    for name in variables:
        assert name in result.stderr
    header = (root / "config.toml").read_text().split("\n\n")[0]
    assert "stops the proxy at startup (exit 2), naming the variable" in " ".join(header.split())
    assert "503" not in header
