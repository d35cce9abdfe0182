"""Case records, gathered for the whole run, and what is made of them.

Each case gets one record, built by `record()` in the process that ran it and carried in the
report's `user_properties` as a plain dict, so that it survives pytest-xdist. On the
controller, `Results` gathers them (a later phase's record replaces an earlier one: a case
that passed but broke in teardown is an ERROR) and makes of them:

- the "streamproof verdicts" section of the terminal summary, with the expectations that
  were not met or not used;
- `results.json` in the report directory (`--report-dir`), the run's machine-readable
  record, each case with the wire log of the exchanges it saw (`harness.wire`);
- the conformance report beside it (`harness.report`): the run is kept as its target's
  latest (`targets/<target>/results.json`), the target's case pages are written, and the
  matrix of every target's latest run (`index.html`, `index.json`) is rebuilt;
- the file given to `--verdicts-json`, an older flat list of the same records.

They are written by the controller only, each to a temporary file first and then renamed,
so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict, cast

import pytest

from streamproof.harness.expectations import Expectations
from streamproof.harness.verdict import Case, Level
from streamproof.harness.wire import Wire, redacted

KEY = "streamproof"  # the name of the record in `report.user_properties`
RESULTS_JSON = "results.json"


class CaseRecord(TypedDict):
    id: str  # with the variant: "2.1[chop-1]"
    title: str
    group: int  # the id's first number
    strength: str  # MUST, SHOULD or INFO
    verdict: str  # a Level's value
    reason: str
    duration_s: float  # of the call phase (of setup, when the case never got that far)
    requirement: str
    source: str
    expected: str
    nodeid: str
    accepted: str | None  # the expectation's reason, when the verdict was expected
    content: str | None  # the content axis: whole, prefix, none or damaged (None: no exchange)
    ending: str | None  # the ending axis: done, error, truncated, reset, timed_out, …
    wire: Wire | None  # both sides' wire logs of the exchanges seen (None: no exchange)
    worker: str | None  # the pytest-xdist worker that ran it ("gw0"; None: no xdist)


@dataclass(frozen=True)
class Target:
    """What is under test: the bundled reference proxy, or a command template."""

    name: str
    command: str | None = None  # None: the bundled reference proxy
    description: str = ""  # in words, for the report (its profile's); "" to let it say
    offers: tuple[str, ...] = ()  # what it offers beyond POST /v1/chat/completions
    timers: str = ""  # its timers, in words (`Timeouts.describe`)

    def __str__(self) -> str:
        if self.command and self.name != self.command:
            return f"{self.name} (command {self.command!r})"
        if self.command:
            return f"command {self.command!r}"
        if self.name != "reference proxy":
            return f"{self.name} ({self.description or 'the bundled reference proxy'})"
        return self.description or "the bundled reference proxy"


def record(
    case: Case,
    case_id: str,
    level: Level,
    reason: str,
    *,
    duration: float,
    nodeid: str,
    accepted: str | None = None,
    axes: tuple[str, str] | None = None,
    wire: Wire | None = None,
    worker: str | None = None,
) -> CaseRecord:
    return {
        "id": case_id,
        "title": case.title,
        "group": group_of(case_id),
        "strength": case.strength.value,
        "verdict": level.value,
        "reason": reason,
        "duration_s": round(duration, 4),
        "requirement": case.requirement,
        "source": case.source,
        "expected": case.expected,
        "nodeid": nodeid,
        "accepted": accepted,
        "content": axes[0] if axes else None,
        "ending": axes[1] if axes else None,
        "wire": wire,
        "worker": worker,
    }


def record_of(report: pytest.TestReport) -> CaseRecord | None:
    for name, value in report.user_properties:
        if name == KEY and isinstance(value, dict):
            return cast(CaseRecord, value)
    return None


def label(record: CaseRecord) -> str:
    """The verdict as shown to people: `FAIL`, or `FAIL (accepted: <reason>)`."""
    accepted = record["accepted"]
    return record["verdict"] + (f" (accepted: {accepted})" if accepted is not None else "")


def group_of(case_id: str) -> int:
    head = case_id.partition("[")[0].partition(".")[0]
    return int(head) if head.isdigit() else 0


def sort_key(case_id: str) -> tuple[Any, ...]:
    number, _, param = case_id.partition("[")
    return (*(int(p) if p.isdigit() else 0 for p in number.split(".")), param)


def catalogue(cases: Iterable[tuple[str, Case]]) -> list[str]:
    """One line per case id (id, strength, title), sorted, then a count per group."""
    ordered = sorted(cases, key=lambda entry: sort_key(entry[0]))
    lines = [f"{cid:<28} {case.strength.value:<6} {case.title}" for cid, case in ordered]
    groups = Counter(group_of(cid) for cid, _ in ordered)
    per_group = ", ".join(f"group {group}: {n}" for group, n in sorted(groups.items()))
    return [*lines, f"{len(ordered)} cases — {per_group}"]


def write_json(path: Path, data: object) -> None:
    """Write `data` to `path` as JSON (see `dumps`), atomically."""
    write_text(path, dumps(data) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would keep a web server from serving the report
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def dumps(data: object, depth: int = 0) -> str:
    """JSON indented by two spaces, except that a list of plain values stays on one line:
    a wire log's row is one line of the file, not six."""
    if isinstance(data, dict) and data:
        pad = "\n" + "  " * (depth + 1)
        items = [
            f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {dumps(v, depth + 1)}"
            for k, v in data.items()
        ]
        return "{" + ",".join(items) + "\n" + "  " * depth + "}"
    if isinstance(data, list | tuple) and any(isinstance(v, dict | list | tuple) for v in data):
        pad = "\n" + "  " * (depth + 1)
        items = [pad + dumps(v, depth + 1) for v in data]
        return "[" + ",".join(items) + "\n" + "  " * depth + "]"
    return json.dumps(data, ensure_ascii=False)


def version() -> str:
    try:
        return metadata.version("streamproof")
    except metadata.PackageNotFoundError:
        return "unknown"


class Results:
    """Gathers every case's record (on the xdist controller too); shows and writes them."""

    def __init__(
        self,
        config: pytest.Config,
        target: Target,
        expectations: Expectations,
        *,
        report_dir: Path,
        verdicts_json: Path | None,
    ) -> None:
        self.config = config
        self.target = target
        self.expectations = expectations
        self.report_dir = report_dir
        self.verdicts_json = verdicts_json
        self.records: dict[str, CaseRecord] = {}  # by node id
        self.started = datetime.now(UTC)
        self.clock = time.perf_counter()
        self.written: list[Path] = []
        self.report: Path | None = None  # the conformance report's index.html, once written
        self.partial = _partial(config)
        self.unpublished = ""  # why the run is not in the report, if it is not

    def pytest_sessionstart(self) -> None:
        self.started = datetime.now(UTC)
        self.clock = time.perf_counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = record_of(report)
        if found is not None:
            self.records[found["nodeid"]] = found

    def sorted(self) -> list[CaseRecord]:
        return sorted(self.records.values(), key=lambda r: sort_key(r["id"]))

    def counts(self) -> str:
        """ "42 cases: 40 PASS, 2 NON-STRICT", in the order of the levels."""
        counts = Counter(r["verdict"] for r in self.records.values())
        summary = ", ".join(f"{counts[lv.value]} {lv.value}" for lv in Level if lv.value in counts)
        return f"{len(self.records)} cases: {summary}"

    def results(self, finished: datetime, duration: float) -> dict[str, Any]:
        counts = Counter(r["verdict"] for r in self.records.values())
        return {
            "streamproof": version(),
            "target": {
                "name": self.target.name,
                "command": self.target.command,
                "description": self.target.description or None,
                "offers": list(self.target.offers),
                "timers": self.target.timers or None,
            },
            "started": self.started.isoformat(timespec="milliseconds"),
            "finished": finished.isoformat(timespec="milliseconds"),
            # A run of some cases only (--case, -k, a file): the report merges it into the
            # target's last full run rather than replace it (harness.report.publish).
            "partial": self.partial,
            "duration_s": round(duration, 3),
            "counts": {level.value: counts[level.value] for level in Level},
            "cases": self.sorted(),
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if not self.records or hasattr(self.config, "workerinput"):
            return
        finished = datetime.now(UTC)
        path = self.report_dir / RESULTS_JSON
        # Whatever a proxy said may hold a key (an error echoing it): none is ever written.
        run = redacted(self.results(finished, time.perf_counter() - self.clock))
        # Imported here: harness.report reads what this module writes, and imports it.
        from streamproof.harness.report import publish

        if never_started(self.records.values()):
            # No case reached the target: a results.json and a column of ERRORs would only
            # replace the last run that did; the terminal says why it never started.
            self.unpublished = (
                f"the target never started, so {path} and the report keep the last run"
            )
        else:
            write_json(path, run)
            self.written.append(path)
            self.report = publish(run, self.report_dir)
        if self.verdicts_json is not None:
            write_json(self.verdicts_json, redacted([_flat(r) for r in self.sorted()]))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> Generator[None]:
        """Failures first: pytest's own sections (FAILURES, the short summary) leave out the
        cases this section shows, and this section comes last, just above pytest's line of
        counts. With -v, pytest shows everything, and so does this section."""
        verbose = self.config.get_verbosity() > 0
        hidden = {} if verbose or not self.records else _hide_cases(terminalreporter)
        try:
            return (yield)
        finally:
            terminalreporter.stats.update(hidden)
            if self.records:
                self.summary(terminalreporter, verbose=verbose)

    def summary(self, terminalreporter: pytest.TerminalReporter, *, verbose: bool) -> None:
        write = terminalreporter.write_line
        width = max(60, terminalreporter._tw.fullwidth)
        terminalreporter.section("streamproof verdicts")
        by_level: dict[str, list[CaseRecord]] = {}
        for r in self.sorted():
            accepted = r["accepted"] is not None and r["verdict"] != Level.PASS.value
            by_level.setdefault(ACCEPTED if accepted else r["verdict"], []).append(r)
        for level in SHOWN_FIRST:
            records = by_level.get(level.value, [])
            if level is Level.NON_STRICT and by_level.get(ACCEPTED):
                self._accepted(write, by_level[ACCEPTED], width)
            if not records or (level in QUIET and not verbose):
                continue
            write("")
            write(f"{level.value} · {len(records)} — {MEANING[level]}", bold=True)
            if level is Level.SKIP and not verbose:
                for reason, skipped in _by_reason(records).items():
                    write(_wrapped(f"{', '.join(skipped)}: {reason}", width, "  ", "    "))
                continue
            # The cases that got the same reason (one bug, often), then that reason once.
            for same in _by_same_reason(_folded(records)):
                for r, shown in same:
                    write(f"  {shown:<26} {r['strength']:<6} {r['title']}")
                r = same[0][0]
                if r["accepted"] is not None:
                    write(_wrapped(f"accepted: {r['accepted']}", width, "    ", "    "))
                if r["reason"] and level is not Level.PASS:
                    write(_wrapped(r["reason"], width, "    ", "    "))
        if self.expectations:
            verdicts = {r["id"]: r["verdict"] for r in self.records.values()}
            misses = self.expectations.misses(verdicts)
            if misses:
                write("")
                write("expectations not met:", bold=True)
                for miss in sorted(misses, key=lambda m: sort_key(m.case)):
                    write(f"  {miss}")
            unused = self.expectations.unused(verdicts)
            if unused:
                write(f"expectations not used (no such case collected): {', '.join(unused)}")
        write("")
        for path in self.written:
            write(f"results: {path}")
        if self.report is not None:
            write(f"report: {self.report}")
        if self.unpublished:
            write(f"report: not updated: {self.unpublished}")
        failed = any(r["verdict"] in ("FAIL", "ERROR") for r in self.records.values())
        write(f"streamproof: {self.counts()} — target {self.target}", bold=True, red=failed)

    @staticmethod
    def _accepted(write: Any, records: list[CaseRecord], width: int) -> None:
        write("")
        write(f"{ACCEPTED} · {len(records)} — verdicts the expectations file expects", bold=True)
        for r in records:
            write(f"  {r['id']:<26} {label(r)}")
            write(_wrapped(r["reason"], width, "    ", "    "))


ACCEPTED = "ACCEPTED"  # a verdict other than PASS that the --expectations file expects

# The order the verdicts are shown in: what harms first. PASS and INFO only with -v.
SHOWN_FIRST = (
    Level.FAIL,
    Level.ERROR,
    Level.NON_STRICT,
    Level.NOT_OFFERED,
    Level.SKIP,
    Level.INFO,
    Level.PASS,
)
QUIET = frozenset({Level.PASS, Level.INFO})
MEANING = {
    Level.FAIL: "a client is harmed (docs/verdicts.md)",
    Level.ERROR: "not judged: the harness failed, or the target did not start",
    Level.NON_STRICT: "what a careful proxy does, not done; no client harmed",
    Level.NOT_OFFERED: "a feature the target does not claim; it failed honestly without it",
    Level.SKIP: "not run",
    Level.INFO: "recorded, not judged",
    Level.PASS: "",
}


def _hide_cases(terminalreporter: pytest.TerminalReporter) -> dict[str, list[Any]]:
    """Take the cases whose verdict this plugin shows out of pytest's stats, for the length
    of the summary, and return what to put back. A case's ERROR stays: its traceback is
    what a person needs to see."""
    hidden = {}
    for key in ("failed", "skipped"):
        reports = terminalreporter.stats.get(key)
        if reports:
            hidden[key] = reports
            terminalreporter.stats[key] = [r for r in reports if not _shown_here(r)]
    return hidden


def _shown_here(report: Any) -> bool:
    found = record_of(report) if isinstance(report, pytest.TestReport) else None
    return found is not None and found["verdict"] != Level.ERROR.value


def _folded(records: list[CaseRecord]) -> list[tuple[CaseRecord, str]]:
    """The variants of a case that got the same reason, as one entry: 4.10[a, b, c]."""
    folded: list[tuple[CaseRecord, list[str]]] = []
    for r in records:
        base, _, variant = r["id"].partition("[")
        last = folded[-1][0] if folded else None
        if (
            last is not None
            and variant
            and last["id"].partition("[")[0] == base
            and (last["reason"], last["accepted"]) == (r["reason"], r["accepted"])
        ):
            folded[-1][1].append(variant.removesuffix("]"))
        else:
            folded.append((r, [variant.removesuffix("]")] if variant else []))
    return [(r, r["id"].partition("[")[0] + (f"[{', '.join(v)}]" if v else "")) for r, v in folded]


def _by_same_reason(
    folded: list[tuple[CaseRecord, str]],
) -> list[list[tuple[CaseRecord, str]]]:
    """The entries grouped by their reason (and acceptance), in the order each first came."""
    groups: dict[tuple[str, str | None], list[tuple[CaseRecord, str]]] = {}
    for r, shown in folded:
        groups.setdefault((r["reason"], r["accepted"]), []).append((r, shown))
    return list(groups.values())


def _by_reason(records: list[CaseRecord]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for r in records:
        grouped.setdefault(r["reason"] or "no reason given", []).append(r["id"])
    return grouped


def _wrapped(text: str, width: int, first: str, rest: str) -> str:
    return textwrap.fill(
        text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )


NOT_STARTED = "could not start: "  # in the reason of every case whose target never started


def never_started(records: Iterable[CaseRecord]) -> bool:
    """No case of the run reached the target: each was skipped, or is an ERROR because the
    target could not start."""
    seen = list(records)
    return any(NOT_STARTED in r["reason"] for r in seen) and all(
        r["verdict"] == Level.SKIP.value
        or (r["verdict"] == Level.ERROR.value and NOT_STARTED in r["reason"])
        for r in seen
    )


def _partial(config: pytest.Config) -> bool:
    """Whether the run chose some cases only: by --case, -k, -m, --deselect, or a file or
    a test named on the command line rather than a folder."""
    chosen = (
        config.getoption("streamproof_cases", None)
        or config.getoption("keyword", None)
        or config.getoption("markexpr", None)
        or config.getoption("deselect", None)
    )
    named = [a for a in config.args if "::" in a or a.endswith(".py")]
    return bool(chosen or named)


def _flat(record: CaseRecord) -> dict[str, str]:
    """The `--verdicts-json` form of a record, as it has always been."""
    return {
        "case": record["id"],
        "title": record["title"],
        "strength": record["strength"],
        "level": record["verdict"],
        "reason": record["reason"],
        "requirement": record["requirement"],
        "source": record["source"],
        "expected": record["expected"],
        "nodeid": record["nodeid"],
    }
