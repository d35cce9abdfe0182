"""Targets: the proxy process under test, started for the run and stopped after it.

The bundled reference proxy is started as any other proxy would be, from a command line:
the harness never imports `proxy/`. It writes the proxy a config that routes every model
to the fake provider, and hands it a listening socket on 127.0.0.1 (`{fd}`), already bound
to an ephemeral port. Because the socket listens before the process starts, the first
request simply waits in the kernel's backlog until the proxy accepts it: no polling, no
sleeping, and no race for the port.

A command template may use:

    {python}    this interpreter
    {upstream}  the fake provider's base URL, e.g. http://127.0.0.1:PORT/v1
    {fd}        an inherited listening socket (uvicorn: --fd)
    {port}      its port number
    {api_key}   the key the proxy must send upstream (also in $STREAMPROOF_UPSTREAM_KEY)
    {config}    a reference-proxy config file written for this run
"""

from __future__ import annotations

import os
import secrets
import shlex
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import httpx

BUNDLED = "{python} -m proxy --config {config} --fd {fd}"
KEY_VARIABLE = "STREAMPROOF_UPSTREAM_KEY"


@dataclass(frozen=True)
class Timeouts:
    """What the target declares, so timing cases know what to expect (seconds)."""

    connect: float = 1.0
    first_byte: float = 0.5
    idle: float = 0.3
    total: float = 5.0


class TargetError(RuntimeError):
    """The target could not be started or did not answer; the message has its log's tail."""


class ProcessTarget:
    """A proxy started from a command template, listening on 127.0.0.1."""

    def __init__(
        self,
        template: str,
        upstream: str,
        workdir: Path,
        *,
        timeouts: Timeouts | None = None,
        name: str = "",
    ) -> None:
        self.template = template
        self.upstream = upstream
        self.workdir = workdir
        self.timeouts = timeouts or Timeouts()
        self.name = name or template
        self.api_key = "sk-streamproof-" + secrets.token_hex(16)
        self.log_path = workdir / "target.log"  # the process's stdout and stderr
        self.proxy_log_path = workdir / "proxy.log"  # the bundled proxy's own log file
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 30.0) -> None:
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = listener.getsockname()[1]
        config = self.workdir / "proxy-config.toml"
        config.write_text(_reference_config(self.upstream, self.timeouts, self.proxy_log_path))
        argv = [
            part.format(
                python=sys.executable,
                upstream=self.upstream,
                fd=listener.fileno(),
                port=self.port,
                api_key=self.api_key,
                config=config,
            )
            for part in shlex.split(self.template)
        ]
        env = {**os.environ, KEY_VARIABLE: self.api_key}
        with self.log_path.open("wb") as log, listener:
            self._process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                cwd=Path(__file__).resolve().parent.parent,
            )
        # Our copy of the socket is closed now: if the process dies, connects are refused.
        try:
            httpx.get(f"{self.base_url}/health", timeout=ready_timeout)
        except httpx.HTTPError as exc:
            self.stop()
            raise TargetError(
                f"{self.name!r} did not answer on {self.base_url}: {exc}\n{self.log_tail()}"
            ) from None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]).replace(self.api_key, "[redacted]")


def _reference_config(upstream: str, timeouts: Timeouts, log: Path) -> str:
    return textwrap.dedent(
        f"""\
        # Written by streamproof for one run: every model goes to the fake provider.
        [logging]
        file = "{log}"

        [timeouts]
        connect = {timeouts.connect}
        first_byte = {timeouts.first_byte}
        idle = {timeouts.idle}
        total = {timeouts.total}

        [retry]
        max_attempts = 3
        backoff_base = 0.01
        backoff_max = 0.05
        retry_after_cap = 2.0
        deadline = 5.0

        [providers.fake]
        base_url = "{upstream}"
        api_key_env = "{KEY_VARIABLE}"

        # The same fake, declared as a provider that rejects stream_options (as Mistral and
        # NVIDIA NIM have): scenarios that model one are routed to it.
        [providers.fake_without_stream_options]
        base_url = "{upstream}"
        api_key_env = "{KEY_VARIABLE}"
        stream_options = false

        [[routes]]
        model = "*reject_stream_options*"
        providers = ["fake_without_stream_options"]

        [[routes]]
        model = "*"
        providers = ["fake"]
        """
    )
