"""streamproof's options, profiles and case selection: what the run is asked to do."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streamproof.harness import results
from streamproof.harness.expectations import Expectations
from streamproof.harness.expectations import selects as selects  # re-exported, for `--case`
from streamproof.harness.profiles import (
    DEFAULT_FILE,
    REFERENCE,
    Profile,
    ProfileError,
    load_profiles,
    parse_profile,
    settled_timeouts,
)
from streamproof.harness.results import Results, Target
from streamproof.harness.targets import (
    BUNDLED,
    OFFERS,
    RUNNING_PLACEHOLDERS,
    Offers,
    Timeouts,
    command_problem,
    parse_readiness,
    placeholders,
    tolerance,
)
from streamproof.harness.verdict import Case, Judge, Level

FAIL_ON = {
    "fail": {Level.FAIL, Level.ERROR},
    "non-strict": {Level.FAIL, Level.ERROR, Level.NON_STRICT},
}
# What the plugin's modules keep on the config and the items, between hooks.
JUDGE_KEY = pytest.StashKey[Judge]()
CALL_DURATION_KEY = pytest.StashKey[float]()
EXPECTATIONS_KEY = pytest.StashKey[Expectations]()
CATALOGUE_KEY = pytest.StashKey[list[tuple[str, Case]]]()
PROFILE_KEY = pytest.StashKey[Profile]()

# What --case accepts: a group (5), a case (5.5) or one variant of a case (2.1[chop-1]).
CASE_SELECTOR = re.compile(r"\d+(\.\d+)*(\[[^\]]+\])?")


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
        help=f"the TOML file of target profiles (default: {DEFAULT_FILE} in the current folder, "
        "else in the rootdir)",
    )
    group.addoption(
        "--target-name",
        dest="streamproof_target_name",
        default=None,
        metavar="NAME",
        help="the target's name in the report (its column, its folder): default the "
        "profile's name, or for --target-cmd the command without its placeholders",
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
        "--upstream-tls",
        dest="streamproof_upstream_tls",
        action="store_true",
        default=False,
        help="the fake provider serves HTTPS with a CA made for the run ({upstream} is "
        "https://, the target gets the CA as {ca_file}, SSL_CERT_FILE, REQUESTS_CA_BUNDLE and "
        "NODE_EXTRA_CA_CERTS), and the TLS cases run",
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
        max_wait = float(option(config, "streamproof_max_wait"))
    except ValueError:
        raise pytest.UsageError("--max-wait takes a number of seconds") from None
    if not max_wait > 0:
        raise pytest.UsageError(f"--max-wait takes a positive number of seconds, not {max_wait}")
    for selector in config.getoption("streamproof_cases"):
        if not CASE_SELECTOR.fullmatch(selector):
            raise pytest.UsageError(
                f"--case takes a case id (5.5), a case with its variant (2.1[chop-1]) or a "
                f"group (5), not {selector!r}"
            )
    fail_on = option(config, "streamproof_fail_on")
    if fail_on not in FAIL_ON:
        raise pytest.UsageError(f"--fail-on takes {' or '.join(FAIL_ON)}, not {fail_on!r}")
    expectations_file = path_option(config, "streamproof_expectations")
    expectations = Expectations.load(expectations_file) if expectations_file else Expectations()
    config.stash[EXPECTATIONS_KEY] = expectations
    verdicts_json = config.getoption("streamproof_verdicts_json")
    log = Results(
        config,
        target_of(config),
        expectations,
        report_dir=path_option(config, "streamproof_report_dir")
        or config.invocation_params.dir / "reports",
        verdicts_json=Path(verdicts_json) if verdicts_json else None,
    )
    config.pluginmanager.register(log, "streamproof-results")


def option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    return value if value is not None else config.getini(name)


def path_option(config: pytest.Config, name: str) -> Path | None:
    """A path on the command line is taken from the directory pytest was started in; one in
    the ini file, from the ini file's folder."""
    value = config.getoption(name)
    if value is not None:
        return config.invocation_params.dir / str(value)
    value = config.getini(name)
    if not value:
        return None
    return (config.inipath.parent if config.inipath else config.rootpath) / str(value)


def report_dir_of(config: pytest.Config) -> Path:
    return path_option(config, "streamproof_report_dir") or config.invocation_params.dir / "reports"


def profile_of(config: pytest.Config) -> Profile:
    """The target, from --target (a profile), --target-cmd, --target-url or the default,
    with --target-offers, --target-timeouts, --target-ready and --target-header applied."""
    if PROFILE_KEY in config.stash:
        return config.stash[PROFILE_KEY]
    profile = _chosen_profile(config)
    offers_text = option(config, "streamproof_target_offers")
    timeouts_text = option(config, "streamproof_target_timeouts")
    try:
        offers = Offers.parse(offers_text) if offers_text is not None else profile.offers
        timeouts = Timeouts.parse(timeouts_text) if timeouts_text is not None else None
    except ValueError as exc:
        which = "--target-offers" if "offer" in str(exc) else "--target-timeouts"
        raise pytest.UsageError(f"{which}: {exc}") from None
    ready_text = option(config, "streamproof_target_ready")
    try:
        readiness = parse_readiness(ready_text) if ready_text is not None else profile.readiness
    except ValueError as exc:
        raise pytest.UsageError(f"--target-ready {exc}") from None
    if profile.command is not None and profile.command != BUNDLED:
        given = [*profile.files.values(), *profile.environment.values()]
        problem = command_problem(profile.command, *given)
        if problem is not None:
            where = (
                "--target-cmd" if profile.name == profile.command else f"profile {profile.name!r}"
            )
            raise pytest.UsageError(f"{where}: {problem}")
    if timeouts is None:
        timeouts = settled_timeouts(profile, offers)
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
    config.stash[PROFILE_KEY] = profile
    return profile


def _chosen_profile(config: pytest.Config) -> Profile:
    name = option(config, "streamproof_target")
    command = option(config, "streamproof_target_cmd")
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
    path = path_option(config, "streamproof_targets_file") or _default_targets_file(config)
    try:
        profiles = load_profiles(path) if path.exists() else {"reference": REFERENCE}
    except ProfileError as exc:
        raise pytest.UsageError(f"--targets-file: {exc}") from None
    if name not in profiles:
        known = ", ".join(sorted(profiles))
        raise pytest.UsageError(f"--target: no profile {name!r} in {path} (known: {known})")
    return profiles[name]


def _default_targets_file(config: pytest.Config) -> Path:
    """targets.toml in the folder pytest was started in, else in the rootdir."""
    here = config.invocation_params.dir / DEFAULT_FILE
    return here if here.exists() else config.rootpath / DEFAULT_FILE


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
    named = config.getoption("streamproof_target_name")
    offers = tuple(sorted(profile.offers.names))
    timers = timeouts_of(config).describe()
    if profile.name == "reference":
        return Target(named or "reference proxy", None, REFERENCE.description, offers, timers)
    if profile.url is not None:
        about = profile.description or f"the proxy at {profile.url}"
        return Target(named or profile.name, None, about, offers, timers)
    return Target(named or profile.name, profile.command, profile.description, offers, timers)


def offers_of(config: pytest.Config) -> Offers:
    return profile_of(config).offers


def upstream_tls_of(config: pytest.Config) -> bool:
    """Whether the fake provider serves TLS (--upstream-tls)."""
    return bool(config.getoption("streamproof_upstream_tls"))


def timeouts_of(config: pytest.Config) -> Timeouts:
    timeouts = profile_of(config).timeouts
    assert timeouts is not None  # profile_of always settles them
    return timeouts


def max_wait_of(config: pytest.Config) -> float:
    return float(option(config, "streamproof_max_wait"))


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
    # A selector that selects nothing is a mistake to say, not an empty run to pass. Under
    # xdist the controller has checked it already (see pytest_collection below).
    unmatched = [s for s in selectors if not any(selects(s, case_id(i) or "") for i in keep)]
    if unmatched and not hasattr(config, "workerinput"):
        raise pytest.UsageError(_no_such_case(unmatched, [case_id(i) or "" for i in items]))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """Under pytest-xdist the controller collects nothing and its workers cannot stop the
    run with a usage error; with --case, the controller collects once to check the
    selection before any worker runs a case."""
    config = session.config
    controller = config.pluginmanager.has_plugin("dsession")
    if controller and config.getoption("streamproof_cases"):
        session.perform_collect()


def _no_such_case(unmatched: list[str], collected: list[str]) -> str:
    """Which selectors select nothing, and what there is to select instead."""
    ids = sorted({c.partition("[")[0] for c in collected if c}, key=results.sort_key)
    groups = Counter(results.group_of(c) for c in ids)
    lines = [f"--case {', '.join(unmatched)}: no such case among those collected"]
    if not ids:
        lines.append("  (no streamproof case was collected at all: is suites/ in the selection?)")
    lines.append("  groups: " + ", ".join(f"{g} ({n} cases)" for g, n in sorted(groups.items())))
    for selector in unmatched:
        base = selector.partition("[")[0]
        if "[" in selector and base in ids:
            variants = [c for c in collected if c.startswith(base + "[")]
            lines.append(f"  {base} has the variants: {', '.join(variants) or 'none'}")
            continue
        group = results.group_of(base)
        if group in groups:
            same = [c for c in ids if results.group_of(c) == group]
            lines.append(f"  group {group}: {', '.join(same)}")
    return "\n".join(lines)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        return
    catalogue = session.config.stash[CATALOGUE_KEY] = []
    for item in session.items:
        marker = item.get_closest_marker("case")
        if marker is not None:
            catalogue.append((case_id(item) or marker.args[0].id, marker.args[0]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    catalogue = terminalreporter.config.stash.get(CATALOGUE_KEY, None)
    if catalogue:
        terminalreporter.section("streamproof catalogue")
        for line in results.catalogue(catalogue):
            terminalreporter.write_line(line)
