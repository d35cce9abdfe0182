"""streamproof's fixtures: the fake provider, the system under test, live routes, the judge."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import WebSocketException

from streamproof.fake_providers import FakeProvider
from streamproof.fake_providers.dead import Blackhole, RefusingAddress
from streamproof.fake_providers.tls import Authority
from streamproof.harness import live
from streamproof.harness.client import StreamClient
from streamproof.harness.feed import FeedRecorder, Refused, ws_url
from streamproof.harness.options import (
    JUDGE_KEY,
    max_wait_of,
    profile_of,
    report_dir_of,
    target_of,
    timeouts_of,
    upstream_tls_of,
)
from streamproof.harness.report import log_folder
from streamproof.harness.sut import SystemUnderTest
from streamproof.harness.targets import (
    ROOT,
    TIMERS,
    ProcessTarget,
    TargetError,
    Timeouts,
    fill,
    origin,
    sigterm_interrupts,
)
from streamproof.harness.verdict import Judge


@pytest.fixture(scope="session")
def fake_provider(pytestconfig: pytest.Config) -> Iterator[FakeProvider]:
    profile = profile_of(pytestconfig)
    port = profile.upstream_port or 0
    # A stall the fake holds outlasts any wait of the run, so no verdict can come from the
    # fake giving up: twice the longest timer the target is judged by, and 30 s at least.
    timeouts = timeouts_of(pytestconfig)
    longest = max(timeouts.bound(name) for name in TIMERS)
    authority = Authority() if upstream_tls_of(pytestconfig) else None
    try:
        with FakeProvider(
            port=port, stall_limit=max(30.0, 2 * longest + 10), tls=authority
        ) as provider:
            yield provider
    finally:
        if authority is not None:
            authority.close()


@pytest.fixture(scope="session")
def dead_upstreams() -> Iterator[dict[str, str]]:
    """Providers that are down, for the fallback chains: refused, and (on Linux) blackhole."""
    with contextlib.ExitStack() as stack:
        refused = stack.enter_context(RefusingAddress())
        upstreams = {"refused": refused.base_url}
        try:
            blackhole = stack.enter_context(Blackhole())
        except OSError:
            pass  # not Linux: the blackhole chain is left out, and its case skipped
        else:
            upstreams["blackhole"] = blackhole.base_url
        yield upstreams


@pytest.fixture(scope="session")
def sut(
    fake_provider: FakeProvider,
    dead_upstreams: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: Any,
    request: pytest.FixtureRequest,
) -> Iterator[SystemUnderTest]:
    """The system under test, started once per session (per xdist worker)."""
    profile = profile_of(pytestconfig)
    timeouts = timeouts_of(pytestconfig)
    offers = profile.offers
    # The client waits longer than any of the target's own timers, so that a proxy which
    # honours them is never cut short by the harness, and one that does not is caught.
    read_timeout = _read_timeout(timeouts)
    if profile.url is not None:
        workers = getattr(pytestconfig, "workerinput", {}).get("workercount", 1)
        if workers > 1:
            pytest.exit("--target-url runs without -n: the fake provider has one port", 4)
        running = {
            "python": sys.executable,
            "upstream": fake_provider.base_url,
            "upstream_origin": origin(fake_provider.base_url),
            "root": str(ROOT),
            "ca_file": str(fake_provider.tls.ca_file) if fake_provider.tls else "",
        }
        headers = {name: fill(value, running) for name, value in profile.headers.items()}
        client = StreamClient(profile.url, headers=headers, read_timeout=read_timeout)
        under = SystemUnderTest(
            profile.name,
            client,
            fake_provider,
            timeouts,
            offers,
            headers=headers,
            max_wait=max_wait_of(pytestconfig),
        )
        try:
            with _recording(under):
                yield under
        finally:
            client.close()
        return
    assert profile.command is not None
    target = ProcessTarget(
        profile.command,
        fake_provider.base_url,
        tmp_path_factory.mktemp("target"),
        timeouts=timeouts,
        name=target_of(pytestconfig).name,
        upstreams={"secondary": fake_provider.url_for("secondary"), **dead_upstreams},
        environment=profile.environment,
        readiness=profile.readiness,
        files=profile.files,
        cwd=pytestconfig.invocation_params.dir,
        ca_file=str(fake_provider.tls.ca_file) if fake_provider.tls else None,
    )
    report_dir = report_dir_of(pytestconfig)

    @contextlib.contextmanager
    def run(target: ProcessTarget) -> Iterator[SystemUnderTest]:
        target.start()
        # Filled now: the port, the key and the upstream are this process's.
        headers = {name: target.fill(value) for name, value in profile.headers.items()}
        if target.proxy_key:
            headers["Authorization"] = f"Bearer {target.proxy_key}"
        client = StreamClient(target.base_url, headers=headers, read_timeout=read_timeout)
        try:
            yield SystemUnderTest(
                target.name,
                client,
                fake_provider,
                target.timeouts,
                offers,
                log_path=target.proxy_log_path if "config" in offers else None,
                chains=target.chains if "config" in offers else frozenset(),
                thresholds=target.thresholds,
                fresh=lambda proxy_key=None, upstream=None: run(
                    target.fresh(
                        tmp_path_factory.mktemp("fresh"), proxy_key=proxy_key, upstream=upstream
                    )
                ),
                down=dict(dead_upstreams),
                headers=headers,
                secrets=tuple(key for key in (target.api_key, target.proxy_key) if key),
                max_wait=max_wait_of(pytestconfig),
            )
        finally:
            client.close()
            target.stop()

    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_interrupts())  # a SIGTERM stops the target as Ctrl-C does
        named = target_of(pytestconfig)
        logs = log_folder(report_dir, {"name": named.name, "command": named.command})
        stack.callback(target.keep_log, logs)
        failure: str | None = None
        try:
            under = stack.enter_context(run(target))
        except TargetError as exc:
            failure = str(exc)
        if failure is not None:
            # Every case needs the target: one error says why, and the run stops there
            # (under xdist, at each worker's first case, and the controller stops them all).
            request.session.shouldfail = "streamproof: the target could not start"
            pytest.fail(failure, pytrace=False)
        stack.enter_context(_recording(under))
        yield under


def _read_timeout(timeouts: Timeouts) -> float:
    """How long the client waits for a read where no patience applies (other endpoints,
    bad requests): longer than the target's total timer, so that one it honours is never
    cut short by the harness."""
    return timeouts.bound("total") + 1.0


@contextlib.contextmanager
def _recording(under: SystemUnderTest) -> Iterator[None]:
    """Keep a feed client connected for the session, when the target offers the feed, so
    that case 6.6 can check every stream's events. A target that claims the feed but does
    not serve it is not stopped here: 6.6 fails, saying why, and so do the feed's cases."""
    if "feed" not in under.offers:
        yield
        return
    try:
        under.recorder = FeedRecorder(under.base_url, under.headers)
    except (OSError, WebSocketException, Refused) as exc:
        under.recorder_error = f"could not connect to {ws_url(under.base_url)}: {exc}"
    try:
        yield
    finally:
        if under.recorder is not None:
            under.recorder.close()


@pytest.fixture(scope="session")
def report_dir(pytestconfig: pytest.Config) -> Path:
    """Where the run's reports go (`--report-dir`, default ./reports): cases that keep
    files for a person to look at (the dashboard's screenshots) put them here."""
    return report_dir_of(pytestconfig)


@pytest.fixture(scope="session")
def live_proxies(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[live.LiveProvider], ProcessTarget]]:
    """The target under test (the bundled proxy by default) wired to one real provider:
    started on first use, one per provider, with that provider's base URL as {upstream},
    its key as the key to send, and a {config} routing its model to it."""
    started: dict[str, ProcessTarget] = {}
    profile = profile_of(pytestconfig)

    def target_for(provider: live.LiveProvider) -> ProcessTarget:
        if profile.command is None:
            pytest.skip("the target is a running proxy: its routes to real providers are its own")
        if provider.name not in started:
            workdir = tmp_path_factory.mktemp(f"live-{provider.name}")
            target = ProcessTarget(
                profile.command,
                provider.base_url,
                workdir,
                name=f"{target_of(pytestconfig).name} (live {provider.name})",
                config=live.proxy_config([provider], workdir / "proxy.log"),
                timeouts=live.TIMEOUTS,
                environment=profile.environment,
                readiness=profile.readiness,
                files=profile.files,
                cwd=pytestconfig.invocation_params.dir,
                api_key=provider.key,
            )
            target.start()
            started[provider.name] = target
        return started[provider.name]

    try:
        yield target_for
    finally:
        for name, target in started.items():
            target.stop()
            target.keep_log(report_dir_of(pytestconfig) / "logs" / f"live-{name}")


@pytest.fixture
def live_route(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    live_proxies: Callable[[live.LiveProvider], ProcessTarget],
) -> Iterator[live.LiveRoute]:
    """One of live.ROUTES (`kimi-direct`, `kimi-proxy`, ...), or a skip saying why not."""
    if not pytestconfig.getoption("streamproof_live"):
        pytest.skip("a live case: run with --live to talk to the real providers")
    name, via = str(request.param).rsplit("-", 1)
    provider = live.providers(os.environ)[name]
    if provider.skip_reason:
        pytest.skip(f"{provider.name}: {provider.skip_reason}")
    read_timeout = _read_timeout(live.TIMEOUTS)
    if via == "direct":
        headers = {"Authorization": f"Bearer {provider.key}"}
        # A real provider, maybe behind the user's own HTTPS proxy: the environment is honoured.
        client = StreamClient(
            provider.base_url, headers=headers, read_timeout=read_timeout, trust_env=True
        )
        path = "/chat/completions"
    else:
        target = live_proxies(provider)
        headers = {
            name: target.fill(value) for name, value in profile_of(pytestconfig).headers.items()
        }
        client = StreamClient(target.base_url, headers=headers, read_timeout=read_timeout)
        path = "/v1/chat/completions"
    try:
        yield live.LiveRoute(provider, via, client, path)
    finally:
        client.close()


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Judge:
    marker = request.node.get_closest_marker("case")
    judge = Judge(marker.args[0] if marker else None)
    request.node.stash[JUDGE_KEY] = judge
    return judge
