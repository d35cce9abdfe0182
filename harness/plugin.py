"""streamproof's pytest plugin: options, fixtures, verdicts and reports.

Registered once, through the `pytest11` entry point `harness.plugin`. It gives suites:

- `sut`: the system under test (by default the bundled reference proxy, started for the
  session on 127.0.0.1 and wired to a fake provider; under xdist, one per worker);
- `judge`: collects a case's findings; the verdict is worked out when the case ends;
- the `case` marker (through `harness.case(...)`), which names and numbers a test.

Each case's verdict (PASS, NON-STRICT, FAIL, INFO, SKIP, ERROR) and reason travel in the
report's `user_properties`, so they survive xdist, and are shown in the terminal summary,
in pytest-html's table and, with `--verdicts-json`, in a file.
"""

from __future__ import annotations

import html
import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_providers import FakeProvider
from harness.client import StreamClient
from harness.sut import SystemUnderTest
from harness.targets import BUNDLED, ProcessTarget, Timeouts
from harness.verdict import Case, CaseFailed, Judge, Level

FAIL_ON = {
    "fail": {Level.FAIL, Level.ERROR},
    "non-strict": {Level.FAIL, Level.ERROR, Level.NON_STRICT},
}
_judge_key = pytest.StashKey[Judge]()
_VERDICT = "streamproof"


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
        "--fail-on",
        dest="streamproof_fail_on",
        default=None,
        metavar="LEVEL",
        help=f"which verdicts fail the run: {' or '.join(FAIL_ON)} (default: fail)",
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
        help="write every case's verdict to this JSON file",
    )
    parser.addini("streamproof_target_cmd", "default for --target-cmd", default=None)
    parser.addini("streamproof_fail_on", "default for --fail-on", default="fail")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "case(case): a numbered streamproof conformance case (use harness.case)"
    )
    fail_on = _option(config, "streamproof_fail_on")
    if fail_on not in FAIL_ON:
        raise pytest.UsageError(f"--fail-on takes {' or '.join(FAIL_ON)}, not {fail_on!r}")
    config.pluginmanager.register(VerdictLog(config), "streamproof-verdicts")


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    return value if value is not None else config.getini(name)


def pytest_report_header(config: pytest.Config) -> str:
    template = _option(config, "streamproof_target_cmd")
    target = f"command {template!r}" if template else "the bundled reference proxy"
    return f"streamproof: target {target}; fake provider on 127.0.0.1 (ephemeral ports)"


def case_id(item: pytest.Item) -> str | None:
    """The case id of a collected test, with its parameters: `2.1[chop-1]`."""
    marker = item.get_closest_marker("case")
    if marker is None:
        return None
    callspec = getattr(item, "callspec", None)
    return str(marker.args[0].id) + (f"[{callspec.id}]" if callspec else "")


def selects(selector: str, case: str) -> bool:
    """`5` selects group 5, `2.1` every variant of 2.1, `2.1[chop-1]` just that one."""
    return case == selector or case.startswith((selector + "[", selector + "."))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="session")
def sut(
    fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory, pytestconfig: Any
) -> Iterator[SystemUnderTest]:
    """The system under test, started once per session (per xdist worker)."""
    template = _option(pytestconfig, "streamproof_target_cmd") or BUNDLED
    timeouts = Timeouts()
    target = ProcessTarget(
        template,
        fake_provider.base_url,
        tmp_path_factory.mktemp("target"),
        timeouts=timeouts,
        name="reference proxy" if template == BUNDLED else template,
    )
    target.start()
    # The client waits longer than any of the target's own timers, so that a proxy which
    # honours them is never cut short by the harness, and one that does not is caught.
    client = StreamClient(target.base_url, read_timeout=timeouts.total + 1.0)
    try:
        yield SystemUnderTest(target.name, client, fake_provider, timeouts)
    finally:
        client.close()
        target.stop()


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Judge:
    marker = request.node.get_closest_marker("case")
    judge = Judge(marker.args[0] if marker else None)
    request.node.stash[_judge_key] = judge
    return judge


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("case")
    if marker is None or not (report.when == "call" or report.outcome != "passed"):
        return report
    case: Case = marker.args[0]
    judge = item.stash.get(_judge_key, None)
    level, reason = _verdict(report, call, judge)
    if level is Level.NON_STRICT and level in FAIL_ON[_option(item.config, "streamproof_fail_on")]:
        report.outcome = "failed"
        report.longrepr = f"NON-STRICT: {reason}"
    verdict = {
        "case": case_id(item) or case.id,
        "title": case.title,
        "strength": case.strength.value,
        "level": level.value,
        "reason": reason,
        "requirement": case.requirement,
        "source": case.source,
        "expected": case.expected,
        "nodeid": item.nodeid,
    }
    report.user_properties.append((_VERDICT, verdict))
    _add_html_extra(report, verdict, judge)
    return report


def _verdict(
    report: pytest.TestReport, call: pytest.CallInfo[None], judge: Judge | None
) -> tuple[Level, str]:
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return Level.SKIP, reason.removeprefix("Skipped: ")
    if report.failed:
        excinfo = call.excinfo
        if excinfo is not None and excinfo.errisinstance(CaseFailed):
            return Level.FAIL, str(excinfo.value)
        if excinfo is not None and excinfo.errisinstance(AssertionError) and report.when == "call":
            return Level.FAIL, str(excinfo.value).splitlines()[0] if str(
                excinfo.value
            ) else "assertion failed"
        what = f"{excinfo.typename}: {excinfo.value}" if excinfo is not None else "unknown"
        return Level.ERROR, f"harness error during {report.when}: {what}"
    if judge is None:
        return Level.PASS, ""
    return judge.level, judge.reason


def _add_html_extra(
    report: pytest.TestReport, verdict: dict[str, str], judge: Judge | None
) -> None:
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover - pytest-html is a dependency, but may be disabled
        return
    parts = [
        f"<p><b>{html.escape(verdict['case'])} {html.escape(verdict['title'])}</b> — "
        f"{html.escape(verdict['level'])}</p>",
        f"<p><b>Requirement</b> ({html.escape(verdict['strength'])}, "
        f"{html.escape(verdict['source'])}): {html.escape(verdict['requirement'])}</p>",
        f"<p><b>Expected</b>: {html.escape(verdict['expected'])}</p>",
        f"<p><b>Observed</b>: {html.escape(verdict['reason'] or '-')}</p>",
    ]
    for title, text in judge.evidence if judge else []:
        parts.append(f"<p><b>{html.escape(title)}</b></p><pre>{html.escape(text)}</pre>")
    # pytest-html reads `report.extras`, an attribute it expects plugins to set.
    setattr(report, "extras", [*getattr(report, "extras", []), extras.html("\n".join(parts))])  # noqa: B010


def _verdict_of(report: pytest.TestReport) -> dict[str, str] | None:
    for name, value in report.user_properties:
        if name == _VERDICT and isinstance(value, dict):
            return value
    return None


class VerdictLog:
    """Gathers every case's verdict (on the xdist controller too) and shows them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.verdicts: list[dict[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        verdict = _verdict_of(report)
        if verdict is not None:
            self.verdicts.append(verdict)

    def sorted(self) -> list[dict[str, str]]:
        return sorted(self.verdicts, key=lambda v: _sort_key(v["case"]))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.verdicts:
            return
        terminalreporter.section("streamproof verdicts")
        for verdict in self.sorted():
            line = f"{verdict['case']:<28} {verdict['level']:<11} {verdict['title']}"
            if verdict["level"] not in ("PASS", "INFO"):
                line += f" — {verdict['reason']}"
            terminalreporter.write_line(line)
        terminalreporter.write_line(self.counts())

    def counts(self) -> str:
        """ "42 cases: 40 PASS, 2 NON-STRICT", in the order of the levels."""
        counts: dict[str, int] = {}
        for verdict in self.verdicts:
            counts[verdict["level"]] = counts.get(verdict["level"], 0) + 1
        summary = ", ".join(f"{counts[lv.value]} {lv.value}" for lv in Level if lv.value in counts)
        return f"{len(self.verdicts)} cases: {summary}"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.getoption("streamproof_verdicts_json")
        if not path or hasattr(self.config, "workerinput"):
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.sorted(), indent=2, ensure_ascii=False))


def _sort_key(case_id: str) -> tuple[Any, ...]:
    number, _, param = case_id.partition("[")
    return (*(int(p) if p.isdigit() else 0 for p in number.split(".")), param)


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "streamproof conformance report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    log = session.config.pluginmanager.get_plugin("streamproof-verdicts")
    if isinstance(log, VerdictLog) and log.verdicts:
        template = _option(session.config, "streamproof_target_cmd")
        target = f"command {template}" if template else "the bundled reference proxy"
        prefix.append(f"<p><b>Target</b>: {html.escape(target)}</p>")
        prefix.append(f"<p><b>Verdicts</b>: {html.escape(log.counts())}</p>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="case">Case</th>')
    cells.insert(2, '<th class="sortable" data-column-type="verdict">Verdict</th>')
    cells.insert(3, "<th>Reason</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    verdict = _verdict_of(report) or {"case": "", "level": "", "reason": ""}
    level = verdict["level"]
    title = verdict.get("title", "")
    cells.insert(
        1,
        f'<td class="col-case"><b>{html.escape(verdict["case"])}</b> {html.escape(title)}</td>',
    )
    cells.insert(2, f'<td class="col-verdict verdict-{level.lower()}">{html.escape(level)}</td>')
    cells.insert(3, f'<td class="col-reason">{html.escape(verdict["reason"])}</td>')
