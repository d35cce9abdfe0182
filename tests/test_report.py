"""The conformance report: the wire log a case keeps, the matrix, the pages, the command.

Most tests build `results.json` files by hand (two targets, every verdict, hostile bytes)
and read back what `harness.report` wrote; one runs two real cases against the bundled
proxy in a subprocess and reads the report that run left.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from streamproof.fake_providers.journal import KEPT_BYTES, Attempt
from streamproof.harness import pages, report, timeline, wire
from streamproof.harness.report import case_slug, label, slug
from streamproof.harness.transcript import Arrival, Transcript, Transport
from streamproof.harness.wire import KEPT_EXCHANGES, KEPT_ROWS, ROW_BYTES, Gap, capture, visible

ROOT = Path(__file__).resolve().parent.parent
T0 = 1000.0  # a perf_counter reading: when the client sent the request
SECRET = "sk-live-Zx8Qm2Lr9Tb4"
HOSTILE = "</script><b>bold</b>\x00<!-- &amp; -->"
CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'


class Seen:
    """An exchange as `judge.saw` takes it: a transcript and the journal's attempts."""

    def __init__(self, transcript: Transcript, attempts: list[Attempt]) -> None:
        self.transcript = transcript
        self.attempts = attempts


def attempt(number: int = 1, at: float = 0.002, **fields: Any) -> Attempt:
    return Attempt(number, T0 + at, "POST", "/v1/chat/completions", {}, {}, **fields)


def exchange(
    reads: list[tuple[float, bytes]],
    writes: list[tuple[float, bytes]] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    transport: Transport = Transport.EOF,
    ending: str = "clean",
) -> Seen:
    """Reads and writes at seconds after T0; the upstream's writes default to the reads."""
    transcript = Transcript(
        request={"model": "streamproof.id-abc.chunks-2", "stream": True},
        sent_at=T0,
        status=status,
        headers=headers or {"content-type": "text/event-stream"},
        headers_at=T0 + 0.004,
        chunks=[Arrival(T0 + at, data) for at, data in reads],
        transport=transport,
        ended_at=T0 + (reads[-1][0] if reads else 0.005) + 0.001,
    )
    upstream = attempt(status=200, ending=ending)
    for at, data in reads if writes is None else writes:
        upstream.wrote(T0 + at - 0.001, data)
    upstream.ended_at = T0 + 0.05
    return Seen(transcript, [upstream])


def record(
    case_id: str,
    verdict: str,
    *,
    reason: str = "it held",
    strength: str = "MUST",
    accepted: str | None = None,
    seen: list[Seen] | None = None,
) -> dict[str, Any]:
    logs = [capture(x) for x in seen or []]
    return {
        "id": case_id,
        "title": f"title of {case_id}",
        "group": int(case_id.split(".")[0]),
        "strength": strength,
        "verdict": verdict,
        "reason": reason,
        "duration_s": 0.01,
        "requirement": f"requirement of {case_id}",
        "source": "WHATWG HTML §9.2.6",
        "expected": f"expected of {case_id}",
        "nodeid": f"suites/test_x.py::test_{case_id}",
        "accepted": accepted,
        "content": "whole" if seen else None,
        "ending": "done" if seen else None,
        "wire": wire.bounded(logs),
    }


def run(name: str, command: str | None, cases: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {level: sum(c["verdict"] == level for c in cases) for level in pages.LEVELS}
    return {
        "streamproof": "0.1.0",
        "target": {"name": name, "command": command},
        "started": "2025-01-31T09:12:03.418+00:00",
        "finished": "2025-01-31T09:12:11.907+00:00",
        "duration_s": 8.489,
        "counts": counts,
        "cases": cases,
    }


def reference_run() -> dict[str, Any]:
    clean = exchange([(0.010, CHUNK), (0.012, b"data: [DONE]\n\n")])
    return run(
        "reference proxy",
        None,
        [
            record("1.1", "PASS", seen=[clean]),
            record("2.1[chop-1]", "PASS", seen=[clean]),
            record("2.1[split-inside-utf8]", "NON-STRICT", strength="SHOULD", seen=[clean]),
            record("3.1", "FAIL", reason="an error was dressed up as a clean finish"),
            record("4.1", "INFO", strength="INFO"),
            record("5.5", "SKIP", reason="the target offers no health"),
            record("7.1", "ERROR", reason="harness error during setup: KeyError: 'x'"),
        ],
    )


def hostile_run() -> dict[str, Any]:
    """A target whose every text is hostile: markup, NUL, a key in a header and a reason."""
    nasty = HOSTILE.encode() + f" Authorization: Bearer {SECRET}".encode() + b"\xe2\x82\n\n"
    seen = exchange(
        [(0.010, nasty)],
        headers={"x-echo": f"Bearer {SECRET}", "x-html": HOSTILE},
        transport=Transport.RESET,
        ending="reset",
    )
    return run(
        f"mine {HOSTILE}",
        f"my-proxy --key {SECRET} --upstream {{upstream}}",
        [
            record("1.1", "FAIL", reason=f"the proxy said {HOSTILE} with {SECRET}", seen=[seen]),
            record("2.1[chop-1]", "PASS", accepted=f"known {HOSTILE}", seen=[seen]),
            record("6.1", "PASS"),
        ],
    )


@pytest.fixture
def published(tmp_path: Path) -> Path:
    report.publish(reference_run(), tmp_path)
    report.publish(hostile_run(), tmp_path)
    return tmp_path


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.cells: list[tuple[str, str]] = []  # (class, text) of the matrix's verdict cells
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        if tag == "td" and (found.get("class") or "").startswith("v "):
            self._cell = str(found["class"])
            self.cells.append((self._cell, ""))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            cls, text = self.cells[-1]
            self.cells[-1] = (cls, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def written(folder: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file()}


# --- the wire log ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        pytest.param(b"data: x\r\n\r\n", "data: x␍␊␍␊", id="line-ends"),
        pytest.param(b"\x00\x1b\x7f\t", "␀␛␡␉", id="controls"),
        pytest.param("\ufeffa\u00a0b\u2028".encode(), "⟨U+FEFF⟩a⟨U+00A0⟩b⟨U+2028⟩", id="invisible"),
        pytest.param("é€".encode()[:3], "é⟨e2⟩", id="half-a-character"),
        pytest.param(b"\xff\xfe", "⟨ff fe⟩", id="not-utf8"),
        pytest.param("日本 😀".encode(), "日本 😀", id="printable-as-is"),
    ],
)
def test_wire_visible_accounts_for_every_byte(data: bytes, text: str) -> None:
    assert visible(data) == text


def test_wire_redact_replaces_keys_and_bearer_tokens() -> None:
    text = f'Authorization: Bearer {SECRET} and "sk-streamproof-0123abcd" and risk-free'
    assert wire.redact(text) == ('Authorization: Bearer [redacted] and "[redacted]" and risk-free')
    assert wire.redacted({"k": [f"x {SECRET}"], SECRET: 1}) == {
        "k": ["x [redacted]"],
        "[redacted]": 1,
    }


def test_wire_capture_puts_both_sides_on_the_request_time() -> None:
    seen = exchange([(0.010, CHUNK), (0.0125, b"data: [DONE]\n\n")])
    log = capture(seen, "the title")
    client, (upstream,) = log["client"], log["upstream"]
    assert log["title"] == "the title"
    assert log["model"] == "streamproof.id-abc.chunks-2"
    assert client["rows"] == [
        [0, 10.0, 0, len(CHUNK), visible(CHUNK), 0],
        [1, 12.5, len(CHUNK), 14, "data: [DONE]␊␊", 0],
    ]
    assert (client["status"], client["headers_ms"], client["outcome"]) == (200, 4.0, "done")
    assert (client["count"], client["bytes"]) == (2, len(CHUNK) + 14)
    assert upstream["received_ms"] == 2.0
    assert [row[1] for row in upstream["rows"]] == [9.0, 11.5]  # each a ms before its read
    assert [row[4] for row in upstream["rows"]] == [row[4] for row in client["rows"]]
    assert (upstream["ending"], upstream["ended_ms"], upstream["peer_closed_ms"]) == (
        "clean",
        50.0,
        None,
    )


def test_wire_capture_keeps_no_request_header_and_redacts_response_headers() -> None:
    seen = exchange([(0.01, CHUNK)], headers={"x-echo": f"Bearer {SECRET}"})
    log = capture(seen)
    assert log["client"]["headers"] == {"x-echo": "Bearer [redacted]"}
    assert "authorization" not in json.dumps(log).lower()


def test_wire_capture_bounds_rows_and_cuts_big_reads() -> None:
    reads = [(0.001 * n, b"x" * (ROW_BYTES + 100 if n == 0 else 1)) for n in range(1000)]
    log = capture(exchange(reads))
    rows = log["client"]["rows"]
    assert len(rows) == KEPT_ROWS
    assert [row[0] for row in rows] == [*range(150), *range(950, 1000)]
    assert rows[0][3:] == [ROW_BYTES + 100, "x" * ROW_BYTES, 100]  # "… 100 bytes more"
    gaps = [g for g in wire.walk(rows, 1000, log["client"]["bytes"]) if isinstance(g, Gap)]
    assert gaps == [Gap(800, 800, rows[149][1], rows[150][1])]
    activity = log["client"]["activity"]
    assert activity is not None
    assert sum(b[2] for b in activity) == 1000  # every read, those left out too


def test_wire_capture_never_cuts_inside_a_character() -> None:
    data = b"a" * (ROW_BYTES - 1) + "€".encode()
    row = capture(exchange([(0.01, data)]))["client"]["rows"][0]
    assert row[4] == "a" * (ROW_BYTES - 1)
    assert row[5] == 3


def test_wire_upstream_bytes_the_journal_did_not_keep_are_counted() -> None:
    writes = [(0.01, b"y" * KEPT_BYTES), (0.02, b"z" * 10)]
    log = capture(exchange([(0.03, b"y")], writes))
    (upstream,) = log["upstream"]
    assert upstream["not_kept"] == 10
    assert upstream["rows"][1][3:] == [10, "", 10]


def test_wire_bounded_shares_the_rows_between_exchanges() -> None:
    long = exchange([(0.001 * n, b"x") for n in range(150)])
    short = exchange([(0.01, CHUNK)])
    bounded = wire.bounded([capture(long), capture(short), capture(long)])
    assert bounded is not None
    sizes = [len(x["client"]["rows"]) for x in bounded["exchanges"]]
    assert sizes == [99, 1, 100]
    assert sum(sizes) <= KEPT_ROWS
    assert bounded["left_out"] == 0
    assert wire.bounded([]) is None


def test_wire_bounded_keeps_the_first_exchanges_and_the_last() -> None:
    logs = [capture(exchange([(0.01, CHUNK)]), f"x{n}") for n in range(KEPT_EXCHANGES + 4)]
    bounded = wire.bounded(logs)
    assert bounded is not None
    titles = [x["title"] for x in bounded["exchanges"]]
    assert titles == [*(f"x{n}" for n in range(KEPT_EXCHANGES - 1)), f"x{KEPT_EXCHANGES + 3}"]
    assert bounded["left_out"] == 4


# --- names -------------------------------------------------------------------------------


def test_report_slugs_are_readable_and_distinct() -> None:
    assert slug("reference proxy") == "reference-proxy"
    assert slug("litellm") == "litellm"
    names = ["reference proxy", "Reference Proxy", "a/b", "a_b", "x" * 60, "x" * 61, "mine"]
    assert len({slug(name) for name in names}) == len(names)
    assert all(re.fullmatch(r"[a-z0-9._-]+", slug(name)) for name in [*names, HOSTILE, ""])
    assert case_slug("2.1[chop-1]") == "2.1-chop-1"
    assert case_slug("2.18[content_filter]") == "2.18-content_filter"
    assert case_slug("2.1[A b]") != case_slug("2.1[a-b]")


def test_report_a_command_without_a_name_is_labelled_without_its_placeholders() -> None:
    command = "{python} tests/broken_proxy.py --upstream {upstream} --fd {fd} --bug replay"
    target = {"name": command, "command": command}
    assert label(target) == "tests/broken_proxy.py --bug replay"
    assert report.target_slug({"target": target}).startswith("tests-broken_proxy.py-bug-replay-")
    assert label({"name": "litellm", "command": "litellm --port {port}"}) == "litellm"


# --- the matrix and its twin -------------------------------------------------------------


def test_report_publish_lays_out_the_report_dir(published: Path) -> None:
    hostile = report.target_slug(hostile_run())
    assert sorted(p.name for p in (published / "targets").iterdir()) == sorted(
        ["reference-proxy", hostile]
    )
    assert sorted(
        p.name for p in (published / "targets" / "reference-proxy" / "cases").iterdir()
    ) == [
        "1.1.html",
        "2.1-chop-1.html",
        "2.1-split-inside-utf8.html",
        "3.1.html",
        "4.1.html",
        "5.5.html",
        "7.1.html",
    ]
    assert (published / "index.html").is_file()
    assert (published / "index.json").is_file()
    stored = json.loads((published / "targets" / "reference-proxy" / "results.json").read_text())
    assert stored == reference_run()


def test_report_matrix_merges_the_targets_by_group(published: Path) -> None:
    table = json.loads((published / "index.json").read_text())
    assert [t["name"] for t in table["targets"]] == ["reference proxy", f"mine {HOSTILE}"]
    reference, hostile = (t["slug"] for t in table["targets"])
    assert table["targets"][0]["counts"] == dict.fromkeys(pages.LEVELS, 1) | {
        "PASS": 2,
        "NOT-OFFERED": 0,
    }
    assert table["targets"][0]["description"] == "streamproof's bundled reference proxy"
    assert [(g["group"], g["name"]) for g in table["groups"]] == [
        (1, "SSE framing"),
        (2, "Chunk integrity"),
        (3, "Malformed upstream SSE"),
        (4, "Token-count parity"),
        (5, "Recovery"),
        (6, "WebSocket live channel"),
        (7, "API surface"),
    ]
    cases = {c["id"]: c["verdicts"] for g in table["groups"] for c in g["cases"]}
    assert {cid: sorted(v) for cid, v in cases.items()} == {
        "1.1": sorted([reference, hostile]),
        "2.1[chop-1]": sorted([reference, hostile]),
        "2.1[split-inside-utf8]": [reference],
        "3.1": [reference],
        "4.1": [reference],
        "5.5": [reference],
        "6.1": [hostile],
        "7.1": [reference],
    }
    assert cases["1.1"][hostile]["verdict"] == "FAIL"
    assert cases["2.1[chop-1]"][hostile]["accepted"] == f"known {HOSTILE}"
    for verdicts in cases.values():
        for cell in verdicts.values():
            assert (published / cell["page"]).is_file()


def test_report_index_colours_each_cell_and_links_its_page(published: Path) -> None:
    links = parse(published / "index.html")
    cells = [(cls.split()[1], text.strip()) for cls, text in links.cells]
    expected = {
        "PASS": "v-pass",
        "NON-STRICT": "v-nonstrict",
        "FAIL": "v-fail",
        "INFO": "v-info",
        "SKIP": "v-skip",
        "ERROR": "v-error",
    }
    shown = [(cls, text.removesuffix("accepted")) for cls, text in cells]
    assert all(cls == expected[text] for cls, text in shown if cls != "none")
    assert {text for _, text in shown} == {*expected, "—"}
    assert len(cells) == 8 * 2  # 8 case rows, 2 targets: 10 cells with a verdict, 6 not run
    assert cells.count(("none", "—")) == 6
    pages = [h for h in links.hrefs if h.endswith(".html")]
    assert len(set(pages)) == 10  # the cells', and the targets' lists of FAILs
    assert all((published / page).is_file() for page in pages)
    assert all((published / h).is_file() for h in links.hrefs if h.endswith("results.json"))


def test_report_index_shows_each_target_its_counts_and_the_legend(published: Path) -> None:
    page = (published / "index.html").read_text()
    assert html.escape("streamproof's bundled reference proxy") in page
    assert "started with: my-proxy --key [redacted] --upstream {upstream}" in page
    assert "streamproof 0.1.0" in page
    assert "2 PASS" in page
    assert "1 ERROR" in page
    for meaning in [
        "a client is harmed, whatever the case's strength",
        "a careful proxy would do better",
        "not run",
    ]:
        assert meaning in page


# --- the pages ---------------------------------------------------------------------------


def test_report_case_page_has_the_claim_the_verdict_and_both_wire_logs(published: Path) -> None:
    page = (published / "targets" / "reference-proxy" / "cases" / "2.1-chop-1.html").read_text()
    for text in [
        "title of 2.1[chop-1]",
        "requirement of 2.1[chop-1]",
        "WHATWG HTML §9.2.6",
        "expected of 2.1[chop-1]",
        "it held",
        "MUST",
        "content <b>whole</b> · ending <b>done</b>",
        'class="verdict v-pass"',
        "<svg",
        'class="tick up"',
        'class="tick client"',
        "status 200 and headers",
        f"read 1 · {len(CHUNK)} B",
        f"#1 write 1 · {len(CHUNK)} B",
        "data: [DONE]<i>\\n</i>",
        'href="../../../index.html#c-2.1-chop-1"',
    ]:
        assert text in page, text
    assert "<script" not in page.lower()  # no script, no link out of the page
    assert set(re.findall(r"https?://[^\s\"'<]+", page)) == {"http://www.w3.org/2000/svg"}


def test_report_case_page_without_an_exchange_says_so(published: Path) -> None:
    page = (published / "targets" / "reference-proxy" / "cases" / "5.5.html").read_text()
    assert "This case recorded no exchange on the wire." in page
    assert 'class="verdict v-skip"' in page
    assert "the target offers no health" in page


def test_report_case_page_marks_a_reset(published: Path) -> None:
    folder = published / "targets" / report.target_slug(hostile_run()) / "cases"
    page = (folder / "1.1.html").read_text()
    assert 'class="reset"' in page  # the client's stream broke: a red cross
    assert "stream ended: reset, transport reset" in page
    assert "<i>⟨e2 82⟩</i>" in page


def test_report_escapes_every_hostile_byte(published: Path) -> None:
    for path, text in written(published).items():
        assert "\x00" not in text, path
        if path.suffix == ".json":
            json.loads(text)  # data: the text as it was, JSON-escaped
        else:
            assert "</script><b>" not in text, path
    folder = published / "targets" / report.target_slug(hostile_run()) / "cases"
    page = (folder / "1.1.html").read_text()
    assert page.count("&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;<i>\\0</i>&lt;!--") == 2  # wire
    assert "&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;␀&lt;!-- &amp;amp; --&gt;" in page  # reason
    index = (published / "index.html").read_text()
    assert "mine &lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;␀" in index


def test_report_never_writes_a_key(published: Path) -> None:
    for path, text in written(published).items():
        assert SECRET not in text, path
    folder = published / "targets" / report.target_slug(hostile_run()) / "cases"
    page = (folder / "1.1.html").read_text()
    assert "Authorization: Bearer [redacted]" in page  # the wire
    assert "x-echo</th><td>Bearer [redacted]" in page  # a response header


def test_report_a_run_replaces_its_target_and_keeps_the_others(published: Path) -> None:
    again = reference_run()
    again["cases"] = again["cases"][:1]
    report.publish(again, published)
    assert [p.name for p in (published / "targets" / "reference-proxy" / "cases").iterdir()] == [
        "1.1.html"
    ]
    table = json.loads((published / "index.json").read_text())
    assert [sum(t["counts"].values()) for t in table["targets"]] == [1, 3]


def test_report_says_which_targets_results_it_could_not_read(published: Path) -> None:
    broken = published / "targets" / "broken" / "results.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    report.rebuild(published)
    table = json.loads((published / "index.json").read_text())
    assert len(table["targets"]) == 2
    assert [line.split(":")[0] for line in table["unreadable"]] == ["targets/broken/results.json"]
    assert "Not shown: targets/broken/results.json" in (published / "index.html").read_text()


# --- the command line --------------------------------------------------------------------


def test_report_cli_adds_results_files_and_rebuilds(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(reference_run()))
    second.write_text(json.dumps(hostile_run()))
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamproof.harness.report",
            "--report-dir",
            str(out),
            str(first),
            str(second),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"report: {out / 'index.html'}\n"
    assert len(json.loads((out / "index.json").read_text())["targets"]) == 2
    (out / "index.html").unlink()
    assert report.main(["--report-dir", str(out)]) == 0
    assert (out / "index.html").is_file()


def test_report_cli_without_results_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        report.main(["--report-dir", str(tmp_path / "empty")])
    assert stopped.value.code == 2
    assert "no results in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main(["--report-dir", str(tmp_path), str(tmp_path / "missing.json")])


# --- a real run --------------------------------------------------------------------------


def test_report_from_a_real_run_of_two_cases(tmp_path: Path) -> None:
    out = tmp_path / "report"
    command = [sys.executable, "-m", "pytest", "suites/", "--case", "5.5", "--case", "1.1"]
    done = subprocess.run(
        [*command, "--report-dir", str(out), "-p", "no:xdist", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"report: {out / 'index.html'}" in done.stdout
    links = parse(out / "index.html")
    assert [text.strip() for _, text in links.cells] == ["PASS", "PASS"]
    results = json.loads((out / "results.json").read_text())
    assert json.loads((out / "targets" / "reference-proxy" / "results.json").read_text()) == results
    by_id = {case["id"]: case for case in results["cases"]}
    exchanges = by_id["5.5"]["wire"]["exchanges"]
    (x,) = exchanges
    assert x["client"]["rows"]
    assert x["upstream"][0]["rows"]
    assert x["upstream"][0]["faults"] == ["reset_after-4"]
    assert x["upstream"][0]["ending"] == "reset"
    page = (out / "targets" / "reference-proxy" / "cases" / "5.5.html").read_text()
    legend = timeline.legend().count('class="tick up"')
    assert page.count('class="tick up"') - legend == len(x["upstream"][0]["rows"])
    legend_client = timeline.legend().count('class="tick client"')
    assert page.count('class="tick client"') - legend_client == len(x["client"]["rows"])
    assert "#1 ended: reset" in page
    for path, text in written(out).items():
        assert "sk-streamproof-" not in text, path


# --- what the matrix shows first, partial runs, dropped targets ---------------------------


def test_report_a_partial_run_merges_into_the_targets_last_run(tmp_path: Path) -> None:
    report.publish(reference_run(), tmp_path)
    later = run("reference proxy", None, [record("3.1", "PASS"), record("9.9", "PASS")])
    later["partial"] = True
    later["finished"] = "2025-02-01T10:00:00.000+00:00"
    report.publish(later, tmp_path)
    kept = json.loads((tmp_path / "targets" / "reference-proxy" / "results.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in kept["cases"]}
    assert verdicts["3.1"] == "PASS"  # the later run's verdict
    assert verdicts["5.5"] == "SKIP"
    assert "9.9" in verdicts
    assert kept["merged"] == [{"finished": later["finished"], "cases": ["3.1", "9.9"]}]
    assert kept["counts"]["FAIL"] == 0
    assert kept["counts"]["PASS"] == 4
    index = (tmp_path / "index.html").read_text()
    assert "partial: 3.1, 9.9 from 1 later run" in index


def test_report_a_partial_run_without_a_base_stands_alone_marked(tmp_path: Path) -> None:
    alone = run("mine", "mine --port {port}", [record("3.1", "FAIL")])
    alone["partial"] = True
    report.publish(alone, tmp_path)
    assert "a partial run: only some cases were run" in (tmp_path / "index.html").read_text()


def test_report_lists_each_targets_fails_by_group_and_hides_settled_rows(tmp_path: Path) -> None:
    report.publish(reference_run(), tmp_path)
    table = json.loads((tmp_path / "index.json").read_text())
    [column] = table["targets"]
    assert column["failed"] == [
        {
            "group": 3,
            "name": "Malformed upstream SSE",
            "cases": [
                {
                    "id": "3.1",
                    "verdict": "FAIL",
                    "title": "title of 3.1",
                    "page": "targets/reference-proxy/cases/3.1.html",
                }
            ],
        },
        {
            "group": 7,
            "name": "API surface",
            "cases": [
                {
                    "id": "7.1",
                    "verdict": "ERROR",
                    "title": "title of 7.1",
                    "page": "targets/reference-proxy/cases/7.1.html",
                }
            ],
        },
    ]
    index = (tmp_path / "index.html").read_text()
    settled = re.findall(r'<tr id="c-([^"]+)" class="settled">', index)
    assert settled == ["1.1", "2.1-chop-1", "4.1"]  # PASS and INFO rows fold away
    assert '<input type="checkbox" id="only-open" checked>' in index
    assert "#only-open:checked~table.matrix tr.settled{display:none}" in index


def test_report_drop_removes_a_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report.publish(reference_run(), tmp_path)
    report.publish(run("mine", "mine --port {port}", [record("1.1", "FAIL")]), tmp_path)
    assert report.main(["--report-dir", str(tmp_path), "--drop", "mine"]) == 0
    assert "dropped: mine" in capsys.readouterr().out
    table = json.loads((tmp_path / "index.json").read_text())
    assert [t["label"] for t in table["targets"]] == ["reference proxy"]
    with pytest.raises(SystemExit):
        report.main(["--report-dir", str(tmp_path), "--drop", "nobody"])
    assert "--drop nobody: no such target" in capsys.readouterr().err


def test_report_case_pages_link_the_docs_they_cite_to_copies_beside_the_report(
    tmp_path: Path,
) -> None:
    cited = record("5.7", "FAIL", reason="truncated")
    cited["source"] = "streamproof policy: the commit point (docs/design.md)"
    report.publish(run("reference proxy", None, [cited]), tmp_path)
    page = tmp_path / "targets" / "reference-proxy" / "cases" / "5.7.html"
    links = parse(page)
    [doc] = [h for h in links.hrefs if h.endswith(".md")]
    assert doc == "../../../docs/design.md"
    assert (page.parent / doc).resolve().is_file()
    assert (tmp_path / "docs" / "verdicts.md").is_file()  # the matrix's legend links it
    assert 'href="docs/verdicts.md"' in (tmp_path / "index.html").read_text()


def test_report_card_links_the_targets_soak(published: Path) -> None:
    """A soak written beside the matrix (`bench/soak.py`) is linked from its target's card,
    with what it found; a target without one has no link."""
    assert report.soak_stem("reference-proxy") == "soak"
    assert report.soak_stem("nginx") == "soak-nginx"
    (published / "soak.json").write_text(
        json.dumps({"ok": False, "streams": 1000, "violation_count": 3, "note_count": 0})
    )
    (published / "soak.html").write_text("<!doctype html>")
    report.rebuild(published)
    page = (published / "index.html").read_text()
    assert page.count('<p class="soak">') == 1
    assert '<a href="soak.html">chaos soak</a>: 1000 streams, 3 violations' in page
