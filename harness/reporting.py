"""streamproof's verdicts as pytest reports: each case's record, pytest-html's table."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Generator
from typing import Any

import pytest

from streamproof.harness import results
from streamproof.harness.options import (
    CALL_DURATION_KEY,
    EXPECTATIONS_KEY,
    FAIL_ON,
    JUDGE_KEY,
    case_id,
    option,
)
from streamproof.harness.report import case_slug, log_folder
from streamproof.harness.results import NOT_STARTED, CaseRecord, Results
from streamproof.harness.sut import SystemUnderTest
from streamproof.harness.verdict import Case, CaseFailed, Judge, Judged, Level


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    """After a case ran to its end, every exchange it sent is judged on its harms."""
    judge = item.stash.get(JUDGE_KEY, None)
    sut = getattr(item, "funcargs", {}).get("sut")
    before = len(sut.exchanges) if isinstance(sut, SystemUnderTest) else 0
    typed = len(sut.typed_exchanges) if isinstance(sut, SystemUnderTest) else 0
    try:
        yield
    except CaseFailed:
        # A MUST finding failed before the case showed its exchange: if that exchange
        # missed its premise through no harm, the case is NON-STRICT, not FAIL.
        if judge is None or not isinstance(sut, SystemUnderTest):
            raise
        judge.record_unseen([*sut.exchanges[before:], *sut.typed_exchanges[typed:]])
        if judge.premise_missed and not any(f.harm and not f.ok for f in judge.findings):
            raise Judged() from None
        raise
    if judge is not None and isinstance(sut, SystemUnderTest):
        judge.judge_unseen([*sut.exchanges[before:], *sut.typed_exchanges[typed:]])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("case")
    if report.when == "call":
        item.stash[CALL_DURATION_KEY] = report.duration
    if marker is None or not (report.when == "call" or report.outcome != "passed"):
        return report
    case: Case = marker.args[0]
    judge = item.stash.get(JUDGE_KEY, None)
    if call.excinfo is not None and call.excinfo.errisinstance(Judged) and report.failed:
        report.outcome, report.longrepr = "passed", None  # a verdict reached early
    level, reason = _verdict(report, call, judge)
    cid = case_id(item) or case.id
    accepted = item.config.stash[EXPECTATIONS_KEY].accepts(cid, level)
    if report.failed and report.when == "setup":
        accepted = None  # were it made a pass, pytest would run the case without its fixtures
    fail_on = FAIL_ON[option(item.config, "streamproof_fail_on")]
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
        duration=item.stash.get(CALL_DURATION_KEY, report.duration),
        nodeid=item.nodeid,
        accepted=accepted,
        axes=judge.axes if judge else None,
        wire=judge.wire if judge else None,
        worker=getattr(item.config, "workerinput", {}).get("workerid"),
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
        if report.when == "setup" and excinfo is not None and NOT_STARTED in str(excinfo.value):
            return Level.ERROR, str(excinfo.value)  # the target's fault, said in its words
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


_results_of: dict[str, Results] = {}  # this session's, for pytest-html's rows


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    log = config.pluginmanager.get_plugin("streamproof-results")
    if isinstance(log, Results):
        _results_of["log"] = log


def _case_page(report: pytest.TestReport, case: str) -> str | None:
    """The link from pytest-html's row to the case's page, relative to the HTML file."""
    log = _results_of.get("log")
    html_path = getattr(log.config.option, "htmlpath", None) if log else None
    if log is None or not html_path:
        return None
    target = {"name": log.target.name, "command": log.target.command}
    folder = log_folder(log.report_dir, target).parent
    page = folder / "cases" / f"{case_slug(case)}.html"
    start = (log.config.invocation_params.dir / html_path).parent
    return os.path.relpath(page, start)


# Verdicts pytest-html has no outcome for: NON-STRICT would be "Passed", NOT-OFFERED
# "Skipped". Its page is given them as outcomes of their own once it is written.
OWN_OUTCOMES = {
    "NON-STRICT": ("non-strict", "Non-strict", "passed"),
    "NOT-OFFERED": ("not-offered", "Not-offered", "skipped"),
}


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    html_path = getattr(config.option, "htmlpath", None)
    if html_path and not hasattr(config, "workerinput"):
        path = config.invocation_params.dir / html_path
        if path.is_file():
            patched = own_outcomes(path.read_text(encoding="utf-8"))
            if patched is not None:
                path.write_text(patched, encoding="utf-8")


def own_outcomes(page: str) -> str | None:
    """pytest-html's page with NON-STRICT and NOT-OFFERED as outcomes of their own: each
    row's result, a filter box with its count, taken from Passed and Skipped. None when the
    page is not laid out as pytest-html 4 lays it out: then it is left as it is."""
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    filters = re.search(r"const possibleFilters = \[", page)
    boxes = {
        name: re.search(
            rf'(<input checked="true" class="filter" name="filter_checkbox" type="checkbox" '
            rf'data-test-result="{name}" ?(?:disabled)?/?>\s*<span class="{name}">)'
            r"(\d+)( \w+,?</span>)",
            page,
        )
        for name in ("failed", "passed", "skipped")
    }
    if blob is None or filters is None or not all(boxes.values()):
        return None
    data = json.loads(html.unescape(blob.group(1)))
    counts = dict.fromkeys(OWN_OUTCOMES, 0)
    for runs in data.get("tests", {}).values():
        for row in runs:
            own = OWN_OUTCOMES.get(str(row.get("verdict", "")))
            if own is None or not row.get("resultsTableRow"):
                continue
            counts[str(row["verdict"])] += 1
            row["result"] = own[1]
            row["resultsTableRow"][0] = f'<td class="col-result">{own[1]}</td>'
    text = html.escape(json.dumps(data), quote=True)
    added = "".join(
        f'<input checked="true" class="filter" name="filter_checkbox" type="checkbox" '
        f'data-test-result="{name}"{" disabled" if not counts[verdict] else ""}>'
        f'<span class="{name}">{counts[verdict]} {label},</span>'
        for verdict, (name, label, _) in OWN_OUTCOMES.items()
    )
    edits = [
        (blob.span(1), text),
        (filters.span(), "const possibleFilters = ['non-strict', 'not-offered', "),
    ]
    taken = {under: counts[v] for v, (_, _, under) in OWN_OUTCOMES.items()}
    for name, found in boxes.items():
        assert found is not None
        if name in taken:
            edits.append((found.span(2), str(int(found.group(2)) - taken[name])))
    failed = boxes["failed"]
    assert failed is not None
    edits.append(((failed.end(), failed.end()), added))
    style = "<style>span.non-strict{color:#9a6700}span.not-offered{color:#57606a}</style></head>"
    for (start, end), new in sorted(edits, reverse=True):
        page = page[:start] + new + page[end:]
    return page.replace("</head>", style, 1)


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
    page = _case_page(report, case) if record else None
    shown = f"<b>{html.escape(case)}</b> {html.escape(title)}"
    if page is not None:
        shown = f'<a href="{html.escape(page)}">{shown}</a>'
    cells.insert(1, f'<td class="col-case">{shown}</td>')
    cells.insert(2, f'<td class="col-verdict verdict-{level.lower()}">{html.escape(label)}</td>')
    cells.insert(3, f'<td class="col-reason">{html.escape(reason)}</td>')
