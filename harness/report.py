"""The conformance report: every target's latest run in one matrix, and a page per case.

    python -m streamproof.harness.report [--report-dir reports] [--drop TARGET] [RESULTS.json ...]

From `results.json` files (`harness.results`) it writes, in the report directory:

    index.html                          the matrix: a row per case, a column per target,
                                        each cell the verdict, linking to the case's page
    index.json                          the same matrix as data
    targets/<target>/results.json       each target's latest run: the matrix's source
    targets/<target>/cases/<case>.html  per case and target: the claim, the verdict, and
                                        both sides' wire logs aligned in time, with their
                                        timeline pictures (`harness.timeline`)

A run replaces its target's `results.json` (and pages) and leaves the other targets'
alone, so the matrix compares the bundled proxy, LiteLLM and any other target, each by its
latest run. A partial run (`--case`, `-k`, a file) is merged into its target's latest run
instead, and the column says which cases came later; a run whose target never started is
not published at all; `--drop TARGET` removes a column. At the end of a session the
plugin publishes the run (`publish`); the command line stores the files it is given, if
any, then rebuilds every page (`rebuild`).

A target's folder is its *slug*, made from its label: its name, or for a `--target-cmd`
(whose name is the command) the command without its placeholders. The label in lower
case, every run of characters but letters, digits, `.` and `_` made one `-`, a long one
cut to its first and last 20 characters: "reference proxy" → `reference-proxy`, "litellm"
→ `litellm`, "{python} tests/broken_proxy.py --upstream {upstream} --fd {fd} --bug
replay" → `tests-broken_proxy.py-bug-replay-13558084`. Unless the name is plain lower-case
words (at most 40 characters, between them a space or `-`), the first 8 hex digits of its
SHA-256 follow, so two targets share a folder only when their names differ in nothing but
a space for a `-`. A case's page is named the same way from its id (`2.1[chop-1]` →
`2.1-chop-1.html`).

The pages (`harness.pages`) are self-contained (inline CSS, inline SVG, no script), work
from `file://` and when served, and escape everything: the wire carries arbitrary bytes.
Every text, the stored results too, passes through `harness.wire.redact` on its way out,
so nothing that looks like a key is ever written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamproof.harness import pages
from streamproof.harness.pages import LEVELS
from streamproof.harness.results import RESULTS_JSON, sort_key, version, write_json, write_text
from streamproof.harness.wire import redacted

INDEX_HTML = "index.html"
INDEX_JSON = "index.json"
DOCS = "docs"
TARGETS = "targets"
GROUPS = {
    1: "SSE framing",
    2: "Chunk integrity",
    3: "Malformed upstream SSE",
    4: "Token-count parity",
    5: "Recovery",
    6: "WebSocket live channel",
    7: "API surface",
    8: "Live providers",
    9: "Anthropic Messages",
    10: "OpenAI Responses",
}
SLUG_CHARS = 40
REFERENCE_LABEL = "reference proxy"  # the bundled proxy's name in a run (harness.options)

Run = dict[str, Any]  # one results.json
Matrix = dict[str, Any]  # index.json


# --- names -------------------------------------------------------------------------------


def slug(name: str, shown: str | None = None) -> str:
    """A folder or file name for `name` (read from `shown`, if given): readable, and the
    same for two names only when they differ in nothing but a space for a `-`."""
    text = name if shown is None else shown
    readable = re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-._")
    if len(readable) > SLUG_CHARS:  # the end of a command often says the most
        readable = f"{readable[: SLUG_CHARS // 2]}--{readable[-SLUG_CHARS // 2 :]}"
    plain = re.fullmatch(r"[a-z0-9._]+(?:[ -][a-z0-9._]+)*", name) is not None
    if text == name and plain and len(name) <= SLUG_CHARS:
        return readable
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest


def case_slug(case_id: str) -> str:
    """`2.1[chop-1]` → `2.1-chop-1`; an id with other characters gets a digest too."""
    number, bracket, variant = case_id.partition("[")
    if bracket and variant.endswith("]") and not re.search(r"[\[\] ]", variant[:-1]):
        return slug(f"{number}-{variant[:-1]}")
    return slug(case_id)


def target_slug(run: Run) -> str:
    target = run["target"]
    return slug(str(target.get("name") or "unnamed target"), label(target))


def label(target: Mapping[str, Any]) -> str:
    """A target's name as shown: its name, or for a command that has none but itself, the
    command without its placeholders (`tests/broken_proxy.py --bug replay`)."""
    name = str(target.get("name") or "unnamed target")
    if name != target.get("command"):
        return name
    return " ".join(re.sub(r"(?:--?[\w-]+[ =])?\{\w+\}", " ", name).split()) or name


def group_name(number: int) -> str:
    return GROUPS.get(number, f"group {number}")


def description(target: Mapping[str, Any]) -> str:
    """What the target is, in words: its own description, else what its command says."""
    if target.get("description"):
        return str(target["description"])
    command = target.get("command")
    if not command:
        return "streamproof's bundled reference proxy"
    if str(command).startswith("url "):
        return f"the proxy running at {str(command)[4:]}"
    return f"started with: {command}"


# --- files -------------------------------------------------------------------------------


def load(path: Path) -> Run:
    run: Run = json.loads(path.read_text(encoding="utf-8"))
    if not (
        isinstance(run, dict)
        and isinstance(run.get("target"), dict)
        and isinstance(run.get("cases"), list)
    ):
        raise ValueError(f"{path}: not a streamproof results.json")
    return run


def store(run: Run, report_dir: Path) -> Path:
    """Keep `run` as its target's latest; return the target's folder."""
    folder = report_dir / TARGETS / target_slug(run)
    write_json(folder / RESULTS_JSON, redacted(run))
    return folder


def runs(report_dir: Path) -> tuple[list[Run], list[str]]:
    """Every target's latest run, the bundled proxy first, then by name; and what could
    not be read, in words (the matrix says so rather than fail for another target's file)."""
    found, unreadable = [], []
    for path in sorted((report_dir / TARGETS).glob(f"*/{RESULTS_JSON}")):
        try:
            found.append(load(path))
        except (OSError, ValueError) as exc:
            unreadable.append(f"{path.relative_to(report_dir)}: {exc}")
    found.sort(key=lambda r: (bool(r["target"].get("command")), target_slug(r)))
    return found, unreadable


def publish(run: Run, report_dir: Path) -> Path:
    """Keep `run` as its target's latest, write its pages, rebuild the matrix. A partial
    run (some cases only) is merged into the target's latest run, if it has one."""
    if run.get("partial"):
        run = merged(run, report_dir / TARGETS / target_slug(run) / RESULTS_JSON)
    copy_docs(report_dir)
    write_pages(run, store(run, report_dir))
    return write_index(report_dir, *runs(report_dir))


def merged(partial: Run, latest: Path) -> Run:
    """`partial`'s cases put over those of the run kept in `latest`: its other cases stay,
    and the run says which cases came later, and when (`merged`)."""
    try:
        base = load(latest)
    except (OSError, ValueError):
        return partial  # nothing to merge into: the partial run stands alone, marked so
    ids = [str(r["id"]) for r in partial["cases"]]
    cases = {str(r["id"]): r for r in base["cases"]} | {str(r["id"]): r for r in partial["cases"]}
    entry: dict[str, Any] = {"finished": partial.get("finished"), "cases": ids}
    for key in ("timers", "offers"):  # the later run's own, where they differ
        if partial["target"].get(key) != base["target"].get(key):
            entry[key] = partial["target"].get(key)
    later = [*base.get("merged", []), entry]
    counts = Counter(str(r.get("verdict")) for r in cases.values())
    return {
        **base,
        "target": base["target"],  # its timers and offers are those of most of the cases
        "streamproof": partial.get("streamproof"),
        "partial": bool(base.get("partial")),
        "merged": later,
        "counts": {level: counts[level] for level in LEVELS},
        "cases": sorted(cases.values(), key=lambda r: sort_key(str(r["id"]))),
    }


def drop(report_dir: Path, name: str) -> list[str]:
    """Remove the targets whose folder or label is `name` from the report; their labels."""
    gone = []
    for folder in sorted((report_dir / TARGETS).glob("*/")):
        try:
            shown = label(load(folder / RESULTS_JSON)["target"])
        except (OSError, ValueError):
            shown = folder.name
        if name in (folder.name, shown):
            shutil.rmtree(folder)
            gone.append(shown)
    return gone


def rebuild(report_dir: Path) -> Path:
    """Write every target's pages and the matrix again, from the targets' results."""
    found, unreadable = runs(report_dir)
    copy_docs(report_dir)
    for run in found:
        write_pages(run, report_dir / TARGETS / target_slug(run))
    return write_index(report_dir, found, unreadable)


def copy_docs(report_dir: Path) -> None:
    """The pages of docs/ that cases cite, beside the report, so that its links work
    wherever the report is read (a CI artifact too): from the installed package, or the
    repository."""
    # Beside harness/: the repository's docs/, or the installed streamproof/docs.
    source = Path(__file__).resolve().parent.parent / DOCS
    for page in sorted(source.glob("*.md")):
        target = report_dir / DOCS / page.name
        text = page.read_text(encoding="utf-8")
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            write_text(target, text)


def soak_stem(key: str) -> str:
    """Where the soak of the target whose folder is `key` (`bench/soak.py`) writes, beside
    the matrix: `soak.json` and `soak.html` for the bundled proxy, `soak-<key>.*` else."""
    return "soak" if key == slug(REFERENCE_LABEL) else f"soak-{key}"


def _soak_of(report_dir: Path, key: str) -> dict[str, Any] | None:
    """The soak report of a target, for its card: where, and what it found."""
    stem = soak_stem(key)
    try:
        document = json.loads((report_dir / f"{stem}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or not (report_dir / f"{stem}.html").is_file():
        return None
    return {
        "page": f"{stem}.html",
        "ok": bool(document.get("ok")),
        "streams": document.get("streams"),
        "violations": document.get("violation_count"),
        "notes": document.get("note_count"),
    }


def write_index(report_dir: Path, found: Sequence[Run], unreadable: Sequence[str]) -> Path:
    table = matrix(found, unreadable)
    for column in table["targets"]:
        column["soak"] = _soak_of(report_dir, column["slug"])
    write_json(report_dir / INDEX_JSON, table)
    path = report_dir / INDEX_HTML
    write_text(path, pages.index_html(table))
    return path


def write_pages(run: Run, folder: Path) -> None:
    """One page per case of `run`; pages of cases the run no longer has are removed."""
    cases = folder / "cases"
    written = set()
    for record in run["cases"]:
        name = case_slug(record["id"])
        group = record.get("group", 0)
        page = pages.case_html(
            run,
            record,
            target=label(run["target"]),
            about=description(run["target"]),
            group=f"{group} · {group_name(group)}",
            back=f"../../../{INDEX_HTML}#c-{name}",
            log=_log_of(folder, record),
            docs=f"../../../{DOCS}" if (folder.parent.parent / DOCS).is_dir() else None,
        )
        write_text(cases / f"{name}.html", page)
        written.add(f"{name}.html")
    for stale in cases.glob("*.html"):
        if stale.name not in written:
            stale.unlink(missing_ok=True)


def log_folder(report_dir: Path, target: Mapping[str, Any]) -> Path:
    """Where a target's output is kept (`ProcessTarget.keep_log`): beside its results."""
    return (
        report_dir
        / TARGETS
        / slug(str(target.get("name") or "unnamed target"), label(target))
        / "logs"
    )


def _log_of(folder: Path, record: Mapping[str, Any]) -> str | None:
    """The link from a case's page to the output of the target process that served it."""
    worker = record.get("worker")
    name = f"target-{worker}.log" if worker else "target.log"
    return f"../logs/{name}" if (folder / "logs" / name).is_file() else None


# --- the matrix --------------------------------------------------------------------------


def matrix(targets: Sequence[Run], unreadable: Sequence[str] = ()) -> Matrix:
    """The JSON twin of index.html: the targets, then the cases by group, a cell each."""
    cases: dict[str, dict[str, Any]] = {}
    columns = []
    for run in targets:
        key = target_slug(run)
        counts = Counter(str(r.get("verdict")) for r in run["cases"])
        columns.append(
            {
                "slug": key,
                "name": run["target"].get("name"),
                "label": label(run["target"]),
                "command": run["target"].get("command"),
                "description": description(run["target"]),
                "streamproof": run.get("streamproof"),
                "started": run.get("started"),
                "finished": run.get("finished"),
                "duration_s": run.get("duration_s"),
                "counts": {level: counts[level] for level in LEVELS},
                "results": f"{TARGETS}/{key}/{RESULTS_JSON}",
                "offers": run["target"].get("offers"),
                "timers": run["target"].get("timers"),
                "partial": bool(run.get("partial")),
                "merged": run.get("merged", []),
                "failed": _failed_by_group(run, key),
            }
        )
        for record in run["cases"]:
            case = cases.setdefault(
                record["id"],
                {
                    "id": record["id"],
                    "slug": case_slug(record["id"]),
                    "title": record.get("title", ""),
                    "strength": record.get("strength", ""),
                    "group": record.get("group", 0),
                    "verdicts": {},
                },
            )
            case["verdicts"][key] = {
                "verdict": record.get("verdict"),
                "accepted": record.get("accepted"),
                "reason": record.get("reason", ""),
                "content": record.get("content"),
                "ending": record.get("ending"),
                "page": f"{TARGETS}/{key}/cases/{case['slug']}.html",
            }
    groups: dict[int, list[dict[str, Any]]] = {}
    for case in sorted(cases.values(), key=lambda c: sort_key(c["id"])):
        groups.setdefault(int(case.pop("group")), []).append(case)
    return {
        "streamproof": version(),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "levels": list(LEVELS),
        "targets": columns,
        "unreadable": list(unreadable),
        "groups": [
            {"group": number, "name": group_name(number), "cases": members}
            for number, members in sorted(groups.items())
        ],
    }


def _failed_by_group(run: Run, key: str) -> list[dict[str, Any]]:
    """A target's FAILs (and ERRORs), by group: what its summary lists first."""
    groups: dict[int, list[dict[str, str]]] = {}
    for record in sorted(run["cases"], key=lambda r: sort_key(str(r["id"]))):
        if record.get("verdict") in ("FAIL", "ERROR") and record.get("accepted") is None:
            groups.setdefault(int(record.get("group", 0)), []).append(
                {
                    "id": str(record["id"]),
                    "verdict": str(record["verdict"]),
                    "title": str(record.get("title", "")),
                    "page": f"{TARGETS}/{key}/cases/{case_slug(str(record['id']))}.html",
                }
            )
    return [
        {"group": number, "name": group_name(number), "cases": cases}
        for number, cases in sorted(groups.items())
    ]


# --- the command line --------------------------------------------------------------------


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streamproof.harness.report",
        description="Rebuild the conformance report (index.html, index.json, a page per "
        "case and target) from every target's latest results.json.",
    )
    parser.add_argument(
        "results",
        nargs="*",
        type=Path,
        metavar="RESULTS.json",
        help="runs to add first, each as its target's latest (a run's results.json)",
    )
    parser.add_argument("--report-dir", type=Path, default=Path("reports"), metavar="DIR")
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="TARGET",
        help="remove this target's column (its name as shown, or its folder under "
        "targets/); may be repeated",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    for name in args.drop:
        gone = drop(args.report_dir, name)
        if not gone:
            known = ", ".join(sorted(p.name for p in (args.report_dir / TARGETS).glob("*/")))
            parser.error(f"--drop {name}: no such target in {args.report_dir} ({known or 'none'})")
        print(f"dropped: {', '.join(gone)}")
    try:
        for path in args.results:
            store(load(path), args.report_dir)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if not (args.report_dir / TARGETS).is_dir():
        parser.error(f"no results in {args.report_dir / TARGETS}: run pytest suites/ first")
    index = rebuild(args.report_dir)
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
