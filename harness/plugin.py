"""streamproof's pytest plugin: options, fixtures, verdicts and reports.

Registered once, through the `pytest11` entry point `harness.plugin`. It gives suites:

- `sut`: the system under test (by default the bundled reference proxy, started for the
  session on 127.0.0.1 and wired to a fake provider; under xdist, one per worker);
- `judge`: collects a case's findings; the verdict is worked out when the case ends;
- the `case` marker (through `harness.case(...)`), which names and numbers a test.

Each case's verdict (PASS, NON-STRICT, FAIL, INFO, SKIP, ERROR) and reason become its
record (`harness.results`), which travels in the report's `user_properties`, so it
survives xdist, and is shown in the terminal summary and in pytest-html's table, and
written to `results.json` (and, with `--verdicts-json`, to a flat list). A verdict the
user expected (`--expectations`, see `harness.expectations`) is accepted: shown as such,
it does not fail the run. `--collect-only` adds the catalogue of the collected cases.
"""

from __future__ import annotations

import contextlib
import html
import os
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import WebSocketException

from fake_providers import FakeProvider
from fake_providers.dead import Blackhole, RefusingAddress
from harness import live, results
from harness.client import StreamClient
from harness.expectations import Expectations
from harness.expectations import selects as selects  # re-exported, for `--case`
from harness.feed import FeedRecorder, Refused, ws_url
from harness.profiles import (
    DEFAULT_FILE,
    REFERENCE,
    Profile,
    ProfileError,
    load_profiles,
    parse_profile,
)
from harness.results import CaseRecord, Results, Target
from harness.sut import SystemUnderTest
from harness.targets import (
    BUNDLED,
    OFFERS,
    REFERENCE_TIMEOUTS,
    ROOT,
    RUNNING_PLACEHOLDERS,
    TIMERS,
    UNDECLARED,
    Offers,
    ProcessTarget,
    TargetError,
    Timeouts,
    fill,
    parse_readiness,
    placeholders,
    sigterm_interrupts,
    tolerance,
)
from harness.verdict import Case, CaseFailed, Judge, Judged, Level

FAIL_ON = {
    "fail": {Level.FAIL, Level.ERROR},
    "non-strict": {Level.FAIL, Level.ERROR, Level.NON_STRICT},
}
_judge_key = pytest.StashKey[Judge]()
_call_duration_key = pytest.StashKey[float]()
_expectations_key = pytest.StashKey[Expectations]()
_catalogue_key = pytest.StashKey[list[tuple[str, Case]]]()
_profile_key = pytest.StashKey[Profile]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamproof", "streamproof: conformance of streaming LLM proxies")
    group.addoption(
        "--target-cmd",
        dest="streamproof_target_cmd",
        default=None,
        metavar="TEMPLATE",
        help="command that starts the proxy under test; placeholders {upstream} {fd} {port} "
        "{api_key} {config} {python} (default: the bundled reference proxy)",
    )
    group.addoption(
        "--target",
        dest="streamproof_target",
        default=None,
        metavar="NAME",
        help="run against the target profile NAME of the --targets-file ('reference' is the "
        "bundled proxy, always there)",
    )
    group.addoption(
        "--targets-file",
        dest="streamproof_targets_file",
        default=None,
        metavar="PATH",
        help=f"the TOML file of target profiles (default: {DEFAULT_FILE} in the rootdir)",
    )
    group.addoption(
        "--target-url",
        dest="streamproof_target_url",
        default=None,
        metavar="URL",
        help="a proxy that is already running, wired by its user to a fake provider on "
        "--upstream-port (runs without -n)",
    )
    group.addoption(
        "--upstream-port",
        dest="streamproof_upstream_port",
        default=None,
        type=int,
        metavar="N",
        help="with --target-url: the port on 127.0.0.1 where the fake provider listens",
    )
    group.addoption(
        "--target-header",
        dest="streamproof_target_headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header for every request to the target (its own auth); may be repeated; "
        "its value may use the placeholders of --target-cmd, filled when the target starts; "
        "never written to any report",
    )
    group.addoption(
        "--target-offers",
        dest="streamproof_target_offers",
        default=None,
        metavar="NAMES",
        help="what the --target-cmd target offers beyond POST /v1/chat/completions, "
        f"comma-separated: {', '.join(OFFERS)}, or 'all' (the bundled proxy offers all; "
        "another target, none unless told); a case that needs more is skipped",
    )
    group.addoption(
        "--target-timeouts",
        dest="streamproof_target_timeouts",
        default=None,
        metavar="SPEC",
        help="the --target-cmd target's own timers in seconds, e.g. "
        "'idle=30,first_byte=60,total=none' (connect, first_byte, idle, total; 'none': it has "
        "no such timer), so timing cases judge against them; a timer left out is undeclared "
        "and judged with a bound (docs/verdicts.md)",
    )
    group.addoption(
        "--target-ready",
        dest="streamproof_target_ready",
        default=None,
        metavar="PATH",
        help="how the harness knows a target it starts is ready: a PATH to GET until it "
        "answers, whatever the status (default: /health; with {fd} the one request waits in "
        "the socket's backlog), or '' or 'tcp' for a plain TCP connect (with {fd}, none: the "
        "socket listens already)",
    )
    group.addoption(
        "--max-wait",
        dest="streamproof_max_wait",
        default=None,
        type=float,
        metavar="SECONDS",
        help="the longest a timing case may wait on the target's timers (default 60): a case "
        "that would wait longer (a stall against an idle timer of 120 s) is skipped, saying "
        "so; raise it to run them",
    )
    group.addoption(
        "--live",
        dest="streamproof_live",
        action="store_true",
        default=False,
        help="also run the live cases (group 8) against the real providers whose keys are "
        "set (KIMI_API_KEY, NVIDIA_API_KEY, MISTRAL_API_KEY), directly and through the "
        "bundled proxy; without it nothing leaves 127.0.0.1",
    )
    group.addoption(
        "--fail-on",
        dest="streamproof_fail_on",
        default=None,
        metavar="LEVEL",
        help="which verdicts fail the run: 'fail' (FAIL and ERROR; the default) or "
        "'non-strict' (NON-STRICT too); PASS, INFO and SKIP never do",
    )
    group.addoption(
        "--case",
        dest="streamproof_cases",
        action="append",
        default=[],
        metavar="ID",
        help="run only this case: '5.5', '2.1' (all its variants), '2.1[chop-1]', or a "
        "whole group '5'; may be repeated",
    )
    group.addoption(
        "--verdicts-json",
        dest="streamproof_verdicts_json",
        default=None,
        metavar="PATH",
        help="also write every case's verdict to this JSON file, as a flat list",
    )
    group.addoption(
        "--report-dir",
        dest="streamproof_report_dir",
        default=None,
        metavar="DIR",
        help=f"write the run's {results.RESULTS_JSON} here (default: reports)",
    )
    group.addoption(
        "--expectations",
        dest="streamproof_expectations",
        default=None,
        metavar="FILE",
        help='TOML file of expected verdicts, a table per case id: ["5.13"] verdict = '
        '"FAIL" reason = "..."; an expected verdict does not fail the run',
    )
    parser.addini("streamproof_target_cmd", "default for --target-cmd", default=None)
    parser.addini("streamproof_target", "default for --target", default=None)
    parser.addini("streamproof_targets_file", "default for --targets-file", default=None)
    parser.addini("streamproof_target_offers", "default for --target-offers", default=None)
    parser.addini("streamproof_target_timeouts", "default for --target-timeouts", default=None)
    parser.addini("streamproof_target_ready", "default for --target-ready", default=None)
    parser.addini("streamproof_fail_on", "default for --fail-on", default="fail")
    parser.addini("streamproof_max_wait", "default for --max-wait", default="60")
    parser.addini("streamproof_report_dir", "default for --report-dir", default=None)
    parser.addini("streamproof_expectations", "default for --expectations", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "case(case): a numbered streamproof conformance case (use harness.case)"
    )
    config.addinivalue_line(
        "markers",
        "after_the_others: run after every other case of the session (a case that judges "
        "what the others did, e.g. 6.6)",
    )
    profile_of(config)  # a bad target option is a usage error before anything starts
    try:
        max_wait = float(_option(config, "streamproof_max_wait"))
    except ValueError:
        raise pytest.UsageError("--max-wait takes a number of seconds") from None
    if not max_wait > 0:
        raise pytest.UsageError(f"--max-wait takes a positive number of seconds, not {max_wait}")
    fail_on = _option(config, "streamproof_fail_on")
    if fail_on not in FAIL_ON:
        raise pytest.UsageError(f"--fail-on takes {' or '.join(FAIL_ON)}, not {fail_on!r}")
    expectations_file = _path_option(config, "streamproof_expectations")
    expectations = Expectations.load(expectations_file) if expectations_file else Expectations()
    config.stash[_expectations_key] = expectations
    verdicts_json = config.getoption("streamproof_verdicts_json")
    log = Results(
        config,
        target_of(config),
        expectations,
        report_dir=_path_option(config, "streamproof_report_dir")
        or config.invocation_params.dir / "reports",
        verdicts_json=Path(verdicts_json) if verdicts_json else None,
    )
    config.pluginmanager.register(log, "streamproof-results")


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    return value if value is not None else config.getini(name)


def _path_option(config: pytest.Config, name: str) -> Path | None:
    """A path on the command line is taken from the directory pytest was started in; one in
    the ini file, from the ini file's folder."""
    value = config.getoption(name)
    if value is not None:
        return config.invocation_params.dir / str(value)
    value = config.getini(name)
    if not value:
        return None
    return (config.inipath.parent if config.inipath else config.rootpath) / str(value)


def profile_of(config: pytest.Config) -> Profile:
    """The target, from --target (a profile), --target-cmd, --target-url or the default,
    with --target-offers, --target-timeouts, --target-ready and --target-header applied."""
    if _profile_key in config.stash:
        return config.stash[_profile_key]
    profile = _chosen_profile(config)
    offers_text = _option(config, "streamproof_target_offers")
    timeouts_text = _option(config, "streamproof_target_timeouts")
    try:
        offers = Offers.parse(offers_text) if offers_text is not None else profile.offers
        timeouts = Timeouts.parse(timeouts_text) if timeouts_text is not None else None
    except ValueError as exc:
        option = "--target-offers" if "offer" in str(exc) else "--target-timeouts"
        raise pytest.UsageError(f"{option}: {exc}") from None
    ready_text = _option(config, "streamproof_target_ready")
    try:
        readiness = parse_readiness(ready_text) if ready_text is not None else profile.readiness
    except ValueError as exc:
        raise pytest.UsageError(f"--target-ready {exc}") from None
    if timeouts is None:
        own = profile.command == BUNDLED or "config" in offers
        timeouts = profile.timeouts or (REFERENCE_TIMEOUTS if own else UNDECLARED)
    headers = {**profile.headers, **_headers(config.getoption("streamproof_target_headers"))}
    if profile.url is not None:
        for name, value in headers.items():
            unknown = placeholders(value) - RUNNING_PLACEHOLDERS
            if unknown:
                usable = " ".join(f"{{{p}}}" for p in sorted(RUNNING_PLACEHOLDERS))
                raise pytest.UsageError(
                    f"header {name}: {{{min(unknown)}}} has a value only in a target the harness "
                    f"starts; with --target-url, header values may use {usable}"
                )
    profile = replace(
        profile, offers=offers, timeouts=timeouts, headers=headers, readiness=readiness
    )
    config.stash[_profile_key] = profile
    return profile


def _chosen_profile(config: pytest.Config) -> Profile:
    name = _option(config, "streamproof_target")
    command = _option(config, "streamproof_target_cmd")
    url = config.getoption("streamproof_target_url")
    port = config.getoption("streamproof_upstream_port")
    options = {"--target": name, "--target-cmd": command, "--target-url": url}
    chosen = [option for option, value in options.items() if value is not None]
    if len(chosen) > 1:
        raise pytest.UsageError(f"choose one target: {' or '.join(chosen)}, not both")
    if (url is None) != (port is None):
        raise pytest.UsageError("--target-url and --upstream-port go together")
    if url is not None:
        try:
            return parse_profile("url", {"url": url, "upstream_port": port})
        except ProfileError as exc:
            raise pytest.UsageError(f"--target-url: {exc}") from None
    if command is not None:
        return Profile(command, command=command)
    if name is None:
        return REFERENCE
    path = _path_option(config, "streamproof_targets_file") or config.rootpath / DEFAULT_FILE
    try:
        profiles = load_profiles(path) if path.exists() else {"reference": REFERENCE}
    except ProfileError as exc:
        raise pytest.UsageError(f"--targets-file: {exc}") from None
    if name not in profiles:
        known = ", ".join(sorted(profiles))
        raise pytest.UsageError(f"--target: no profile {name!r} in {path} (known: {known})")
    return profiles[name]


def _headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, colon, text = value.partition(":")
        if not colon or not name.strip() or any(c.isspace() for c in name.strip()):
            raise pytest.UsageError(
                f"--target-header takes 'Name: value' (e.g. 'Authorization: Bearer ...'), "
                f"not {value.split(':')[0]!r}..."
            )
        headers[name.strip()] = text.strip()
    return headers


def target_of(config: pytest.Config) -> Target:
    profile = profile_of(config)
    if profile.name == "reference":
        return Target("reference proxy", description=REFERENCE.description)
    if profile.url is not None:
        return Target(profile.name, None, profile.description or f"the proxy at {profile.url}")
    return Target(profile.name, profile.command, profile.description)


def offers_of(config: pytest.Config) -> Offers:
    return profile_of(config).offers


def timeouts_of(config: pytest.Config) -> Timeouts:
    timeouts = profile_of(config).timeouts
    assert timeouts is not None  # profile_of always settles them
    return timeouts


def max_wait_of(config: pytest.Config) -> float:
    return float(_option(config, "streamproof_max_wait"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    target = target_of(config)
    timeouts = timeouts_of(config)
    stall = max(timeouts.bound("idle"), timeouts.bound("first_byte"))
    return [
        f"streamproof: target {target}; fake provider on 127.0.0.1 (ephemeral ports)",
        f"streamproof: timers {timeouts.describe()}; a stall case waits up to "
        f"{tolerance(stall):.1f} s, an unanswered request up to "
        f"{tolerance(timeouts.bound('total')):.1f} s (--max-wait {max_wait_of(config):g} s)",
    ]


def case_id(item: pytest.Item) -> str | None:
    """The case id of a collected test, with its parameters: `2.1[chop-1]`."""
    marker = item.get_closest_marker("case")
    if marker is None:
        return None
    callspec = getattr(item, "callspec", None)
    return str(marker.args[0].id) + (f"[{callspec.id}]" if callspec else "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Stable: the cases that judge the others keep their own order, at the end. Under
    # pytest-xdist each worker runs its share in this order, so there too they come last.
    items.sort(key=lambda item: item.get_closest_marker("after_the_others") is not None)
    selectors: list[str] = config.getoption("streamproof_cases")
    if not selectors:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        case = case_id(item)
        chosen = case is not None and any(selects(s, case) for s in selectors)
        (keep if chosen else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        return
    catalogue = session.config.stash[_catalogue_key] = []
    for item in session.items:
        marker = item.get_closest_marker("case")
        if marker is not None:
            catalogue.append((case_id(item) or marker.args[0].id, marker.args[0]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    catalogue = terminalreporter.config.stash.get(_catalogue_key, None)
    if catalogue:
        terminalreporter.section("streamproof catalogue")
        for line in results.catalogue(catalogue):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def fake_provider(pytestconfig: pytest.Config) -> Iterator[FakeProvider]:
    profile = profile_of(pytestconfig)
    port = profile.upstream_port or 0
    # A stall the fake holds outlasts any wait of the run, so no verdict can come from the
    # fake giving up: twice the longest timer the target is judged by, and 30 s at least.
    timeouts = timeouts_of(pytestconfig)
    longest = max(timeouts.bound(name) for name in TIMERS)
    with FakeProvider(port=port, stall_limit=max(30.0, 2 * longest + 10)) as provider:
        yield provider


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
        running = {"python": sys.executable, "upstream": fake_provider.base_url, "root": str(ROOT)}
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
    )
    report_dir = _report_dir(pytestconfig)

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
        stack.callback(target.keep_log, report_dir / "logs")
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
    return _report_dir(pytestconfig)


def _report_dir(config: pytest.Config) -> Path:
    return (
        _path_option(config, "streamproof_report_dir") or config.invocation_params.dir / "reports"
    )


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
            target.keep_log(_report_dir(pytestconfig) / "logs" / f"live-{name}")


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
    request.node.stash[_judge_key] = judge
    return judge


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    """After a case ran to its end, every exchange it sent is judged on its harms."""
    judge = item.stash.get(_judge_key, None)
    sut = getattr(item, "funcargs", {}).get("sut")
    before = len(sut.exchanges) if isinstance(sut, SystemUnderTest) else 0
    yield
    if judge is not None and isinstance(sut, SystemUnderTest):
        judge.judge_unseen(list(sut.exchanges[before:]))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("case")
    if report.when == "call":
        item.stash[_call_duration_key] = report.duration
    if marker is None or not (report.when == "call" or report.outcome != "passed"):
        return report
    case: Case = marker.args[0]
    judge = item.stash.get(_judge_key, None)
    if call.excinfo is not None and call.excinfo.errisinstance(Judged) and report.failed:
        report.outcome, report.longrepr = "passed", None  # a verdict reached early
    level, reason = _verdict(report, call, judge)
    cid = case_id(item) or case.id
    accepted = item.config.stash[_expectations_key].accepts(cid, level)
    if report.failed and report.when == "setup":
        accepted = None  # were it made a pass, pytest would run the case without its fixtures
    fail_on = FAIL_ON[_option(item.config, "streamproof_fail_on")]
    if accepted is not None and report.failed:
        report.sections.append(("streamproof: accepted failure", str(report.longrepr)))
        report.outcome = "passed"
        report.longrepr = None
    elif accepted is None and level is Level.NON_STRICT and level in fail_on:
        report.outcome = "failed"
        report.longrepr = f"NON-STRICT: {reason}"
    if call.excinfo is not None and call.excinfo.errisinstance(CaseFailed) and report.failed:
        # A FAIL is a verdict, not a crash: its reason says it all, a traceback adds noise.
        report.longrepr = f"{cid} FAIL: {reason}"
    record = results.record(
        case,
        cid,
        level,
        reason,
        duration=item.stash.get(_call_duration_key, report.duration),
        nodeid=item.nodeid,
        accepted=accepted,
        axes=judge.axes if judge else None,
        wire=judge.wire if judge else None,
    )
    report.user_properties.append((results.KEY, record))
    _add_html_extra(report, record, judge)
    return report


def _verdict(
    report: pytest.TestReport, call: pytest.CallInfo[None], judge: Judge | None
) -> tuple[Level, str]:
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if judge is not None and judge.not_offered is not None:
            return Level.NOT_OFFERED, reason
        return Level.SKIP, reason
    if report.failed:
        excinfo = call.excinfo
        if excinfo is not None and excinfo.errisinstance(CaseFailed):
            return Level.FAIL, str(excinfo.value)
        # Anything else, an AssertionError included, is streamproof's own fault: ERROR.
        what = f"{excinfo.typename}: {excinfo.value}" if excinfo is not None else "unknown"
        return Level.ERROR, f"harness error during {report.when}: {what}"
    if judge is None:
        return Level.PASS, ""
    return judge.level, judge.reason


def _add_html_extra(report: pytest.TestReport, record: CaseRecord, judge: Judge | None) -> None:
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover - pytest-html is a dependency, but may be disabled
        return
    parts = [
        f"<p><b>{html.escape(record['id'])} {html.escape(record['title'])}</b> — "
        f"{html.escape(results.label(record))}</p>",
        f"<p><b>Requirement</b> ({html.escape(record['strength'])}, "
        f"{html.escape(record['source'])}): {html.escape(record['requirement'])}</p>",
        f"<p><b>Expected</b>: {html.escape(record['expected'])}</p>",
        f"<p><b>Observed</b>: {html.escape(record['reason'] or '-')}</p>",
    ]
    if record["content"] is not None:
        parts.append(
            f"<p><b>Content</b>: {html.escape(record['content'])} · "
            f"<b>Ending</b>: {html.escape(record['ending'] or '-')}</p>"
        )
    for title, text in judge.evidence if judge else []:
        parts.append(f"<p><b>{html.escape(title)}</b></p><pre>{html.escape(text)}</pre>")
    # pytest-html reads `report.extras`, an attribute it expects plugins to set.
    setattr(report, "extras", [*getattr(report, "extras", []), extras.html("\n".join(parts))])  # noqa: B010


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "streamproof conformance report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    log = session.config.pluginmanager.get_plugin("streamproof-results")
    if isinstance(log, Results) and log.records:
        prefix.append(f"<p><b>Target</b>: {html.escape(str(log.target))}</p>")
        prefix.append(f"<p><b>Verdicts</b>: {html.escape(log.counts())}</p>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="case">Case</th>')
    cells.insert(2, '<th class="sortable" data-column-type="verdict">Verdict</th>')
    cells.insert(3, "<th>Reason</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    record = results.record_of(report)
    case, title, level, label, reason = (
        (record["id"], record["title"], record["verdict"], results.label(record), record["reason"])
        if record
        else ("", "", "", "", "")
    )
    cells.insert(1, f'<td class="col-case"><b>{html.escape(case)}</b> {html.escape(title)}</td>')
    cells.insert(2, f'<td class="col-verdict verdict-{level.lower()}">{html.escape(label)}</td>')
    cells.insert(3, f'<td class="col-reason">{html.escape(reason)}</td>')
