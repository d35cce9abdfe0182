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
    {workdir}   the target's own folder for the run
    {root}      this repository
    {ca_file}   the PEM file of the CA made for the run, when the fake serves TLS
                (--upstream-tls; "" otherwise); also SSL_CERT_FILE, REQUESTS_CA_BUNDLE
                and NODE_EXTRA_CA_CERTS in the target's environment

The same placeholders fill the target's `environment`, its `files` and the headers the
client sends it (`ProcessTarget.fill`): their values are known only once it is started.

The harness talks to the target over loopback only, and never through a proxy of the
environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY): its probes do not trust the environment,
and the target is given NO_PROXY and no_proxy with the loopback names appended, so that a
proxy under test which honours HTTP_PROXY still reaches the fake provider directly.

A target that cannot start (the command is not found, the process exits, or it does not
answer in time) is a `TargetError` whose message names the target and the command and
gives the exit status and the tail of its output, the key redacted.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

BUNDLED = "{python} -m streamproof.proxy --config {config} --fd {fd}"
KEY_VARIABLE = "STREAMPROOF_UPSTREAM_KEY"
PROXY_KEY_VARIABLE = "STREAMPROOF_PROXY_KEY"  # the proxy's own key, when a case sets one
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # never reached through a proxy
TCP = ""  # the readiness that connects, with no HTTP request ("tcp" on the command line)


@dataclass(frozen=True)
class Timeouts:
    """The timers a target declares, so timing cases know what to expect (seconds).

    Each is a number of seconds, `NONE` (the target says it has no such timer) or None
    (undeclared). A timer that is not a number is judged by its bound (`BOUNDS`): a stall
    must still end, within a generous bound, not against a timer nobody declared.
    `Timeouts()` declares nothing; `REFERENCE_TIMEOUTS` are those of the config the
    harness writes for the bundled proxy.
    """

    connect: float | None = None
    first_byte: float | None = None
    idle: float | None = None
    total: float | None = None

    @classmethod
    def parse(cls, text: str) -> Timeouts:
        """`"idle=30,first_byte=60,total=none"`: seconds, or `none` for a timer the target
        does not have; a timer left out is undeclared (never filled in from another)."""
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if name not in TIMERS:
                raise ValueError(f"unknown timeout {name!r} (accepted: {', '.join(TIMERS)})")
            if value.lower() == "none":
                values[name] = NONE
                continue
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(
                    f"{name} takes a number of seconds or 'none', not {value!r}"
                ) from None
            if not 0 < seconds < NONE:
                raise ValueError(f"{name} takes a positive number of seconds, not {value!r}")
            values[name] = seconds
        return cls(**values)

    def declares(self, name: str) -> bool:
        """The target gave a number of seconds for this timer."""
        value = getattr(self, name)
        return value is not None and value < NONE

    @property
    def declared(self) -> bool:
        """The target declares at least one timer."""
        return any(self.declares(name) for name in TIMERS)

    def bound(self, name: str) -> float:
        """What a timing case judges this timer by: its seconds, or else its bound."""
        value: float | None = getattr(self, name)
        return value if value is not None and value < NONE else BOUNDS[name]

    def describe(self) -> str:
        """`"connect 0.25 s, first_byte undeclared, idle 0.3 s, total none"`."""
        words = []
        for name in TIMERS:
            value = getattr(self, name)
            said = "undeclared" if value is None else "none" if value >= NONE else f"{value:g} s"
            words.append(f"{name} {said}")
        return ", ".join(words)


def tolerance(seconds: float) -> float:
    """Room for scheduling on a loaded 2-core machine around a timer: what every timing
    case and the client's patience allow a target past its own timer."""
    return seconds + max(0.25, seconds / 2)


TIMERS = ("connect", "first_byte", "idle", "total")
NONE = float("inf")  # a timer the target says it does not have
# What an undeclared timer (or one the target does not have) is judged by: bounds, not
# expectations. A stall ends within `idle`, an unanswered request within `total`.
BOUNDS = {"connect": 1.0, "first_byte": 5.0, "idle": 5.0, "total": 10.0}
REFERENCE_TIMEOUTS = Timeouts(connect=0.25, first_byte=0.5, idle=0.3, total=5.0)
UNDECLARED = Timeouts()


OFFERS = {
    "retries": "retries before the commit point: a reset or a 5xx before the first byte, a "
    "429 after its Retry-After, asked again until the answer comes (a target without them is "
    "judged on failing honestly: a 502/504/429 JSON error, never a hang)",
    "api-chat": "POST /api/chat, the seed dashboard's simple dialect",
    "messages": "POST /v1/messages, the Anthropic Messages API, passed through to a provider "
    "that speaks it (streamed with typed events, and whole)",
    "responses": "POST /v1/responses, the OpenAI Responses API, passed through to a provider "
    "that speaks it (streamed with typed events, and whole)",
    "health": "GET /health answering streamproof's health report (the reference proxy's)",
    "metrics": "GET /metrics in Prometheus' text format, with the reference proxy's names",
    "config": "runs on the reference-proxy {config} the harness writes: its retries, its "
    "fallback routes, its log file, its alert thresholds, its feed's queue and its own key",
    "feed": "GET /ws, a WebSocket live feed in the reference proxy's protocol (init, "
    "stream_started, stream_ended, alert; ping/pong; seq)",
    "dashboard": "GET /, the reference proxy's dashboard page, fed by /ws",
}
# Messages the feed holds for one client in the config the harness writes before it drops
# that client: small, so that a stalled client is dropped after a few hundred events.
FEED_QUEUE = 64
MAX_ATTEMPTS = 3  # attempts per provider in the config the harness writes


@dataclass(frozen=True)
class Offers:
    """What a target offers beyond `POST /v1/chat/completions`. A case that needs more is
    skipped, with the reason, never failed. The bundled proxy offers everything."""

    names: frozenset[str] = frozenset()
    max_attempts: int | None = None  # attempts per provider, when the target declares it

    @classmethod
    def parse(cls, text: str) -> Offers:
        """`"api-chat,health"`: names from OFFERS; "all" for every one; "" for none."""
        names = {name.strip() for name in text.split(",") if name.strip()}
        if names == {"all"}:
            return cls.everything()
        unknown = names - OFFERS.keys()
        if unknown:
            accepted = ", ".join(["all", *OFFERS])
            raise ValueError(f"unknown offer {sorted(unknown)[0]!r} (accepted: {accepted})")
        return cls(frozenset(names), MAX_ATTEMPTS if "config" in names else None)

    @classmethod
    def everything(cls) -> Offers:
        return cls(frozenset(OFFERS), MAX_ATTEMPTS)

    def __contains__(self, name: str) -> bool:
        return name in self.names


@dataclass(frozen=True)
class Thresholds:
    """The alert thresholds of the config the harness writes (see proxy.health)."""

    window: int = 20
    min_requests: int = 4
    min_success_rate: float = 0.5
    max_consecutive_failures: int = 3
    min_chunks_per_stream: float = 6.0


# The chains of the config the harness writes, by the route marker in the model name
# (`Scenario(via=...)`): the first provider fails in its own way, the second is the fake.
CHAINS = {
    "fallback": ("fake", "secondary"),  # both the fake, the second on its own labelled route
    "refused": ("refused", "fake"),  # nothing listens: connects are refused
    "blackhole": ("blackhole", "fake"),  # connects never complete: a connect timeout
}


class TargetError(RuntimeError):
    """The target could not be started or did not answer; the message has its log's tail."""


def parse_readiness(text: str) -> str:
    """A readiness probe: a path to GET until the target answers (`/health`), or `""` or
    `"tcp"` for a plain TCP connect (`TCP`)."""
    text = text.strip()
    if text.lower() in ("", "tcp"):
        return TCP
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise ValueError(
            f"takes a path to GET until the target answers (e.g. /health), or '' or 'tcp' "
            f"for a plain TCP connect, not {text!r}"
        )
    return text


def no_proxy(*values: str | None) -> str:
    """The hosts of NO_PROXY values, joined, with the LOOPBACK names they lack appended."""
    names: list[str] = []
    for value in values:
        for name in (value or "").split(","):
            if name.strip() and name.strip() not in names:
                names.append(name.strip())
    return ",".join([*names, *(name for name in LOOPBACK if name not in names)])


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(
    r"\{(python|upstream|upstream_origin|fd|port|api_key|config|workdir|root|ca_file)\}"
)
# What a proxy already running (`--target-url`) has of them: it is not started by us.
RUNNING_PLACEHOLDERS = frozenset({"python", "upstream", "upstream_origin", "root", "ca_file"})
# The variables that give a target the run's CA: OpenSSL and Python (httpx, aiohttp),
# requests, Node.
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


def origin(upstream: str) -> str:
    """`{upstream_origin}`: the fake provider's base URL without its `/v1`, for a target
    that appends `/v1/...` itself (LiteLLM's `anthropic/` models do)."""
    return upstream.removesuffix("/").removesuffix("/v1")


PLACEHOLDER_NAMES = (
    "python",
    "upstream",
    "upstream_origin",
    "fd",
    "port",
    "api_key",
    "config",
    "workdir",
    "root",
    "ca_file",
)
_BRACED = re.compile(r"(?<!\$)\{(\w+)\}")


def command_problem(template: str, *also: str) -> str | None:
    """What is wrong with a target's command before it is started, in words: a `{name}`
    that is no placeholder (a typo would reach the proxy as it is), or no `{port}` nor
    `{fd}` in it or in the texts it is given (`also`: its files, its environment), so that
    the harness could not know where it listens. None: nothing."""
    unknown = sorted({m[1] for m in _BRACED.finditer(template)} - set(PLACEHOLDER_NAMES))
    if unknown:
        known = " ".join(f"{{{name}}}" for name in PLACEHOLDER_NAMES)
        return f"{{{unknown[0]}}} is not a placeholder (they are {known})"
    if not set().union(*map(placeholders, (template, *also))) & {"port", "fd"}:
        return (
            "it has neither {port} nor {fd}: the proxy must listen where the harness says "
            "(a proxy with a port of its own: --target-url and --upstream-port)"
        )
    return None


def placeholders(text: str) -> set[str]:
    """The names of the placeholders `text` uses."""
    return {match.group(1) for match in PLACEHOLDER.finditer(text)}


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with each placeholder replaced by its value (`values` has every one used)."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


class ProcessTarget:
    """A proxy started from a command template, listening on 127.0.0.1.

    A template with `{fd}` gets a socket that already listens: the first request waits in
    the kernel's backlog until the proxy accepts it, with no polling and no race for the
    port. A template with only `{port}` must bind that port itself; the harness then asks
    `readiness` until the proxy answers, waiting on the process between tries (so a proxy
    that dies is noticed at once), within `ready_timeout`.
    """

    def __init__(
        self,
        template: str,
        upstream: str,
        workdir: Path,
        *,
        timeouts: Timeouts | None = None,
        name: str = "",
        upstreams: Mapping[str, str] | None = None,
        thresholds: Thresholds | None = None,
        environment: Mapping[str, str] | None = None,
        readiness: str = "/health",
        files: Mapping[str, str] | None = None,
        config: str | None = None,
        api_key: str | None = None,
        proxy_key: str | None = None,
        cwd: Path | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.template = template
        self.ca_file = ca_file  # the run's CA (PEM), when the fake serves TLS
        # Where its command runs: the folder pytest was started in, so that a relative path
        # in a user's command means what it means in their shell (default: streamproof's).
        self.cwd = cwd or ROOT
        self.upstream = upstream
        self.workdir = workdir
        self.timeouts = timeouts or REFERENCE_TIMEOUTS
        self.name = name or template
        # Base URLs of the other providers of the CHAINS: secondary, refused, blackhole.
        self.upstreams = dict(upstreams or {})
        self.thresholds = thresholds or Thresholds()
        self.environment = dict(environment or {})
        self.readiness = readiness
        self.files = dict(files or {})
        self.config_text = config  # the {config} to write; None: the harness's own
        # Fresh for every run, unless given or set by the user (e.g. to plant a canary key).
        self.api_key = (
            api_key or os.environ.get(KEY_VARIABLE) or "sk-streamproof-" + secrets.token_hex(16)
        )
        # The proxy's own key, for the cases that start one with a key (config offer).
        self.proxy_key = proxy_key
        self.log_path = workdir / "target.log"  # the process's stdout and stderr
        self.proxy_log_path = workdir / "proxy.log"  # the bundled proxy's own log file
        self._process: subprocess.Popen[bytes] | None = None
        self._values: dict[str, str] = {}  # the placeholders' values, once started
        self.port = 0
        self.command_line = ""  # the command as started, placeholders filled

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The started process's id, which is also its process group's (None if stopped)."""
        return self._process.pid if self._process is not None else None

    def start(self, ready_timeout: float = 30.0) -> None:
        """Start the process and wait until it is ready; TargetError if it cannot start."""
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = listener.getsockname()[1]
        inherits = "{fd}" in self.template
        config = self.workdir / "proxy-config.toml"
        config.write_text(self._config())
        self._values = {
            "python": sys.executable,
            "upstream": self.upstream,
            "upstream_origin": origin(self.upstream),
            "fd": str(listener.fileno()),
            "port": str(self.port),
            "api_key": self.api_key,
            "config": str(config),
            "workdir": str(self.workdir),
            "root": str(ROOT),
            "ca_file": self.ca_file or "",
        }
        for name, text in self.files.items():
            (self.workdir / name).write_text(self.fill(text))
        try:
            argv = [self.fill(part) for part in shlex.split(self.template)]
        except ValueError as exc:  # e.g. "No closing quotation"
            listener.close()
            raise TargetError(self._failure(f"its command cannot be split: {exc}")) from None
        if not argv:
            listener.close()
            raise TargetError(self._failure("its command is empty"))
        self.command_line = shlex.join(argv)
        env = {
            **os.environ,
            KEY_VARIABLE: self.api_key,
            **(dict.fromkeys(CA_VARIABLES, self.ca_file) if self.ca_file else {}),
            **({PROXY_KEY_VARIABLE: self.proxy_key} if self.proxy_key else {}),
            **{name: self.fill(value) for name, value in self.environment.items()},
        }
        # Both spellings, the same value: programs differ in which one they read first.
        env["NO_PROXY"] = env["no_proxy"] = no_proxy(env.get("NO_PROXY"), env.get("no_proxy"))
        if not inherits:
            listener.close()  # the port is the proxy's to bind now
        with self.log_path.open("wb") as log, listener:
            try:
                self._process = subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(),) if inherits else (),
                    cwd=self.cwd,
                    # Its own process group: stopped whole, never orphaned.
                    start_new_session=True,
                )
            except OSError as exc:  # not found, not executable
                raise TargetError(self._failure(f"it could not be run: {exc}")) from None
        atexit.register(self.stop)  # also when the run is interrupted
        # Our copy of the socket is closed now: if the process dies, connects are refused.
        try:
            self._wait_until_ready(ready_timeout, poll=not inherits)
        except (httpx.HTTPError, OSError, TargetError) as exc:
            why = self._exited() or f"it did not answer on {self.base_url}: {exc}"
            self.stop()
            raise TargetError(self._failure(why)) from None
        except BaseException:  # interrupted while waiting (Ctrl-C, SIGTERM): stop it now
            self.stop()
            raise

    def fill(self, text: str) -> str:
        """`text` with this run's placeholder values: for the target's headers, whose
        values (its port, the key, the upstream) exist only once `start` has chosen them."""
        if not self._values:
            raise TargetError(f"{self.name!r} is not started: its placeholders have no values")
        return fill(text, self._values)

    def _wait_until_ready(self, timeout: float, *, poll: bool) -> None:
        # Never through a proxy of the environment: the target is on loopback.
        if not poll:  # the request waits in the backlog of the inherited socket
            if self.readiness:
                # A process that exits closes the socket (our copy is closed): the request
                # is refused or reset at once, so the wait ends with the process.
                httpx.get(f"{self.base_url}{self.readiness}", timeout=timeout, trust_env=False)
            return
        assert self._process is not None
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            try:
                if self.readiness:
                    # Listening: its answer is worth waiting for, however slow the first one.
                    wait = httpx.Timeout(1.0, read=max(1.0, deadline - time.monotonic()))
                    httpx.get(f"{self.base_url}{self.readiness}", timeout=wait, trust_env=False)
                else:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                return
            except (httpx.ConnectError, ConnectionRefusedError):
                pass  # not listening yet
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TargetError(f"not listening after {timeout:g} s")
            try:  # waiting on the process: a proxy that dies ends the wait at once
                self._process.wait(timeout=min(pause, remaining))
            except subprocess.TimeoutExpired:
                pause = min(pause * 2, 0.25)
                continue
            raise TargetError("the process exited before it answered")

    def _exited(self, within: float = 1.0) -> str | None:
        """How the process ended ("exited with status 3"), if it ends within `within` s: a
        process whose socket was closed under a waiting probe may not be reaped yet."""
        if self._process is None:
            return None
        try:
            code = self._process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            return None
        return f"the process {_exit_status(code)} before it answered"

    def _failure(self, why: str) -> str:
        """The message of a TargetError: the target, the command, why, and its output."""
        tail = self.log_tail()
        return "\n".join(
            [
                f"the target {self.name!r} could not start: {why}",
                f"  command: {self._redact(self.command_line or self.template)}",
                "  its output (the last lines, the key redacted):"
                if tail.strip()
                else "  its output: (none)",
                *(f"    {line}" for line in tail.splitlines()),
            ]
        )

    @property
    def chains(self) -> frozenset[str]:
        """The route markers of CHAINS whose every provider this target's config has."""
        have = {"fake", *self.upstreams}
        return frozenset(m for m, chain in CHAINS.items() if all(p in have for p in chain))

    def fresh(
        self, workdir: Path, *, proxy_key: str | None = None, upstream: str | None = None
    ) -> ProcessTarget:
        """Another process of the same target, with nothing recorded yet (not started);
        with `proxy_key`, the config the harness writes makes the proxy want that key; with
        `upstream`, its `{upstream}` is that base URL (a provider that is down)."""
        return ProcessTarget(
            self.template,
            upstream or self.upstream,
            workdir,
            timeouts=self.timeouts,
            name=self.name,
            upstreams=self.upstreams,
            thresholds=self.thresholds,
            environment=self.environment,
            readiness=self.readiness,
            files=self.files,
            proxy_key=proxy_key,
            cwd=self.cwd,
            ca_file=self.ca_file,
        )

    def _config(self) -> str:
        if self.config_text is not None:
            return self.config_text
        return _reference_config(
            {"fake": self.upstream, **self.upstreams},
            self.timeouts,
            self.thresholds,
            self.proxy_log_path,
            with_key=self.proxy_key is not None,
        )

    def _redact(self, text: str) -> str:
        for key in (self.api_key, self.proxy_key):
            if key:
                text = text.replace(key, "[redacted]")
        return text

    def stop(self) -> None:
        """Stop the process and its group (a proxy may have started workers of its own)."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
        else:
            _signal_group(process, signal.SIGKILL)  # any worker left behind

    def keep_log(self, folder: Path) -> Path | None:
        """Copy the process's output (the key redacted) into `folder`, named for the worker
        under pytest-xdist, so it is kept with the report; its path, or None if none."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        path = folder / f"target{'-' + worker if worker else ''}.log"
        path.write_text(self._redact(text))
        return path

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return self._redact("\n".join(text.splitlines()[-lines:]))


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM (what CI timeouts and timeout(1) send) raises KeyboardInterrupt
    in the main thread, as Ctrl-C does, so that the run unwinds the same way and stops its
    targets: on a signal's default action the process dies at once, and no atexit handler
    runs. A Python handler installed before is called first; a SIGTERM that was ignored
    stays ignored; a second SIGTERM while the run unwinds is ignored, so that it cannot cut
    the targets' stop short. Off the main thread, where no handler can be installed, and
    after the block, SIGTERM is as it was."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous in (
        signal.SIG_IGN,
        None,  # installed by something other than Python: not ours to replace
    ):
        yield
        return
    received = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        if received:
            return
        received = True
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is interrupt:
            signal.signal(signal.SIGTERM, previous)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return  # the whole group is gone already


APIS = '["chat", "messages", "responses"]'  # the fake speaks all three


def _reference_config(
    upstreams: Mapping[str, str],
    timeouts: Timeouts,
    thresholds: Thresholds,
    log: Path,
    *,
    with_key: bool = False,
) -> str:
    providers = "".join(
        f"""
        [providers.{name}]
        base_url = "{url}"
        api_key_env = "{KEY_VARIABLE}"
        apis = {APIS}
        """
        for name, url in upstreams.items()
    )
    chains = "".join(
        f"""
        [[routes]]
        model = "*.via-{marker}*"
        providers = {json.dumps(list(chain))}
        """
        for marker, chain in CHAINS.items()
        if all(name in upstreams for name in chain)
    )
    return textwrap.dedent(
        f"""\
        # Written by streamproof for one run: every model goes to the fake provider, or to
        # a fallback chain that ends with it.
        [logging]
        file = "{log}"

        [server]
        {f'api_key_env = "{PROXY_KEY_VARIABLE}"' if with_key else "# no key of its own"}

        [feed]
        queue = {FEED_QUEUE}
        send_buffer = 16384
        auth_timeout = 2.0

        [timeouts]
        connect = {timeouts.bound("connect")}
        first_byte = {timeouts.bound("first_byte")}
        idle = {timeouts.bound("idle")}
        total = {timeouts.bound("total")}

        [retry]
        max_attempts = {MAX_ATTEMPTS}
        backoff_base = 0.01
        backoff_max = 0.05
        retry_after_cap = 2.0
        deadline = 5.0

        [health]
        window = {thresholds.window}
        min_requests = {thresholds.min_requests}
        min_success_rate = {thresholds.min_success_rate}
        max_consecutive_failures = {thresholds.max_consecutive_failures}
        min_chunks_per_stream = {thresholds.min_chunks_per_stream}
        {providers}
        # The same fake, declared as a provider that rejects stream_options (as Mistral and
        # NVIDIA NIM have): scenarios that model one are routed to it.
        [providers.fake_without_stream_options]
        base_url = "{upstreams["fake"]}"
        api_key_env = "{KEY_VARIABLE}"
        apis = {APIS}
        stream_options = false
        {chains}
        [[routes]]
        model = "*reject_stream_options*"
        providers = ["fake_without_stream_options"]

        [[routes]]
        model = "*"
        providers = ["fake"]
        """
    )
