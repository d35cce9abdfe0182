"""The plugin's machine-readable results: results.json, --report-dir, --verdicts-json."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

CASES = """
import pytest
from streamproof.harness import Strength, case
from streamproof.harness.verdict import Finding

def _case(id, strength=Strength.MUST):
    return case(id, f"case {id}", requirement=f"req {id}", source="src", expected=f"exp {id}",
                strength=strength)

@_case("10.1")
def test_later_group(judge):
    judge.check(Finding(True, "holds", "it held"))

@_case("9.1")
def test_must_holds(judge):
    judge.check(Finding(True, "holds", "it held"))

@_case("9.2")
def test_must_broken(judge):
    judge.check(Finding(False, "holds", "it broke"))

@_case("9.3", Strength.SHOULD)
def test_should_broken(judge):
    judge.check(Finding(False, "should hold", "it did not"))

@_case("9.4", Strength.INFO)
def test_info(judge):
    judge.check(Finding(True, "behaviour", "recorded"))

@_case("9.5")
def test_skipped(judge):
    pytest.skip("the target offers no /ws")

@_case("9.6")
def test_harness_error(judge):
    raise KeyError("oops")

@_case("9.7")
@pytest.mark.parametrize("n", [pytest.param(1, id="one"), pytest.param(2, id="two")])
def test_parametrized(judge, n):
    judge.check(Finding(n == 1, "n is one", f"n is {n}"))

def test_not_a_case():
    pass
"""
IDS = ["9.1", "9.2", "9.3", "9.4", "9.5", "9.6", "9.7[one]", "9.7[two]", "10.1"]
CASE_KEYS = [
    "id",
    "title",
    "group",
    "strength",
    "verdict",
    "reason",
    "duration_s",
    "requirement",
    "source",
    "expected",
    "nodeid",
    "accepted",
    "content",
    "ending",
    "wire",
    "worker",
]
REPORT = ["docs", "index.html", "index.json", "results.json", "targets"]  # what a run writes


@pytest.fixture(autouse=True)
def _ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def _results(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_results_json_has_the_documented_shape(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    pytester.runpytest("--report-dir", "out")
    results = _results(pytester.path / "out" / "results.json")
    assert list(results) == [
        "streamproof",
        "target",
        "started",
        "finished",
        "partial",
        "duration_s",
        "counts",
        "cases",
    ]
    assert results["streamproof"] == metadata.version("streamproof")
    assert results["target"] == {
        "name": "reference proxy",
        "command": None,
        "description": "streamproof's bundled reference proxy",
        "offers": [
            "api-chat",
            "config",
            "dashboard",
            "feed",
            "health",
            "messages",
            "metrics",
            "responses",
            "retries",
        ],
        "timers": "connect 0.25 s, first_byte 0.5 s, idle 0.3 s, total 5 s",
    }
    assert results["partial"] is False
    started = datetime.fromisoformat(results["started"])
    finished = datetime.fromisoformat(results["finished"])
    assert started.utcoffset() == finished.utcoffset() == timedelta(0)
    assert started <= finished
    assert 0 <= results["duration_s"]
    assert results["counts"] == {
        "PASS": 3,
        "NON-STRICT": 1,
        "FAIL": 2,
        "INFO": 1,
        "NOT-OFFERED": 0,
        "SKIP": 1,
        "ERROR": 1,
    }
    cases = results["cases"]
    assert [case["id"] for case in cases] == IDS
    assert all(list(case) == CASE_KEYS for case in cases)
    assert all(isinstance(case["duration_s"], float) and case["duration_s"] >= 0 for case in cases)


def test_results_json_case_values(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    pytester.runpytest("--report-dir", "out")
    cases = {case["id"]: case for case in _results(pytester.path / "out" / "results.json")["cases"]}
    should = cases["9.3"]
    del should["duration_s"]
    assert should == {
        "id": "9.3",
        "title": "case 9.3",
        "group": 9,
        "strength": "SHOULD",
        "verdict": "NON-STRICT",
        "reason": "expected should hold, observed it did not",
        "requirement": "req 9.3",
        "source": "src",
        "expected": "exp 9.3",
        "nodeid": "test_cases.py::test_should_broken",
        "accepted": None,
        "content": None,  # the case saw no exchange
        "ending": None,
        "wire": None,
        "worker": None,  # no xdist
    }
    assert {cid: case["group"] for cid, case in cases.items()} == {
        cid: 10 if cid == "10.1" else 9 for cid in IDS
    }
    assert cases["9.4"]["strength"] == "INFO"
    assert cases["9.5"]["reason"] == "the target offers no /ws"
    assert cases["9.6"]["verdict"] == "ERROR"
    assert cases["9.7[two]"]["nodeid"] == "test_cases.py::test_parametrized[two]"


def test_results_json_duration_is_the_call_phase(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    recorder = pytester.inline_run("--report-dir", "out")
    calls = {
        report.nodeid: report.duration
        for report in recorder.getreports("pytest_runtest_logreport")
        if report.when == "call"
    }
    for case in _results(pytester.path / "out" / "results.json")["cases"]:
        assert case["duration_s"] == round(calls[case["nodeid"]], 4)


def test_results_json_report_dir_is_created(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    pytester.runpytest("--report-dir", "a/b/c")
    assert sorted(p.name for p in (pytester.path / "a" / "b" / "c").iterdir()) == REPORT


def test_results_json_defaults_to_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest()
    path = pytester.path / "reports" / "results.json"
    assert len(_results(path)["cases"]) == len(IDS)
    result.stdout.fnmatch_lines([f"results: {path}"])


def test_results_json_report_dir_from_the_ini_file_is_beside_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "streamproof_report_dir = from-ini\n"
    )
    pytester.makepyfile(test_cases=CASES)
    monkeypatch.chdir(pytester.mkdir("elsewhere"))
    pytester.runpytest(str(pytester.path / "test_cases.py"))
    assert (pytester.path / "from-ini" / "results.json").exists()
    assert not (pytester.path / "elsewhere" / "from-ini").exists()


def test_results_json_names_a_command_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    pytester.runpytest("--report-dir", "out", "--target-cmd", "my-proxy --port {port}")
    target = _results(pytester.path / "out" / "results.json")["target"]
    assert target == {
        "name": "my-proxy --port {port}",
        "command": "my-proxy --port {port}",
        "description": None,
        "offers": [],
        "timers": "connect undeclared, first_byte undeclared, idle undeclared, total undeclared",
    }


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-k", "not_a_case"], id="no-case-collected"),
        pytest.param(["--collect-only"], id="collect-only"),
        pytest.param(["--case", "8"], id="all-deselected"),
    ],
)
def test_results_json_needs_a_case_that_ran(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makepyfile(test_cases=CASES)
    pytester.runpytest("--report-dir", "out", *args)
    assert not (pytester.path / "out").exists()


def test_results_json_a_teardown_error_replaces_the_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_teardown="""
        import pytest
        from streamproof.harness import case

        @pytest.fixture
        def breaks_after():
            yield
            raise RuntimeError("teardown broke")

        @case("9.1", "case 9.1", requirement="r", source="s", expected="e")
        def test_teardown(judge, breaks_after):
            pass
        """
    )
    pytester.runpytest("--report-dir", "out")
    results = _results(pytester.path / "out" / "results.json")
    [case] = results["cases"]
    assert case["verdict"] == "ERROR"
    assert "harness error during teardown: RuntimeError: teardown broke" in case["reason"]
    assert results["counts"]["ERROR"] == 1
    assert sum(results["counts"].values()) == 1


def test_results_json_under_xdist_has_every_case(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    out = pytester.path / "verdicts.json"
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "--report-dir", "out", "--verdicts-json", str(out)
    )
    result.stdout.fnmatch_lines(["*2 workers*"])
    result.assert_outcomes(passed=6, failed=3, skipped=1)
    folder = pytester.path / "out"
    assert sorted(p.name for p in folder.iterdir()) == REPORT
    results = _results(folder / "results.json")
    assert [case["id"] for case in results["cases"]] == IDS
    assert sum(results["counts"].values()) == len(IDS)
    assert [v["case"] for v in json.loads(out.read_text())] == IDS


def test_verdicts_json_keeps_its_flat_shape(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    out = pytester.path / "verdicts.json"
    pytester.runpytest("--verdicts-json", str(out), "--report-dir", "out")
    verdicts = json.loads(out.read_text())
    cases = _results(pytester.path / "out" / "results.json")["cases"]
    assert [v["case"] for v in verdicts] == IDS
    assert verdicts[IDS.index("9.3")] == {
        "case": "9.3",
        "title": "case 9.3",
        "strength": "SHOULD",
        "level": "NON-STRICT",
        "reason": "expected should hold, observed it did not",
        "requirement": "req 9.3",
        "source": "src",
        "expected": "exp 9.3",
        "nodeid": "test_cases.py::test_should_broken",
    }
    for verdict, case in zip(verdicts, cases, strict=True):
        assert verdict["level"] == case["verdict"]
        assert verdict["reason"] == case["reason"]


SEEN = """
from streamproof.fake_providers.journal import Attempt
from streamproof.harness import case
from streamproof.harness.transcript import Arrival, Transcript
from streamproof.harness.verdict import Finding

class Seen:
    def __init__(self, n):
        t0 = 100.0
        self.transcript = Transcript(
            request={"model": f"m{n}", "stream": True}, sent_at=t0, status=200,
            chunks=[Arrival(t0 + 0.01, b"data: [DONE]\\n\\n")], ended_at=t0 + 0.02,
        )
        attempt = Attempt(1, t0 + 0.001, "POST", "/v1/chat/completions", {}, {}, status=200)
        attempt.wrote(t0 + 0.005, b"data: [DONE]\\n\\n")
        self.attempts = [attempt]

    def describe(self):
        return "seen"

    def axes(self):
        return ("whole", "done")

    def harms(self):
        return []

@case("9.1", "case 9.1", requirement="r", source="s", expected="e")
def test_saw_two(judge):
    judge.saw(Seen(1), "first")
    judge.saw(Seen(2), "second")
    judge.check(Finding(True, "holds", "it held"))

@case("9.2", "case 9.2", requirement="r", source="s", expected="e")
def test_saw_none(judge):
    judge.check(Finding(True, "holds", "it held"))
"""


def test_results_json_carries_the_wire_of_every_exchange_seen_under_xdist(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_seen=SEEN)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "--report-dir", "out")
    result.assert_outcomes(passed=2)
    saw, none = _results(pytester.path / "out" / "results.json")["cases"]
    assert none["wire"] is None
    assert saw["wire"]["left_out"] == 0
    first, second = saw["wire"]["exchanges"]
    assert (first["title"], first["model"], second["model"]) == ("first", "m1", "m2")
    assert first["client"]["rows"] == [[0, 10.0, 0, 14, "data: [DONE]␊␊", 0]]
    assert first["upstream"][0]["rows"] == [[0, 5.0, 0, 14, "data: [DONE]␊␊", 0]]
    text = (pytester.path / "out" / "results.json").read_text(encoding="utf-8")
    assert '[0, 10.0, 0, 14, "data: [DONE]␊␊", 0]' in text  # a row is one line of the file
    assert (pytester.path / "out" / "targets" / "reference-proxy" / "cases" / "9.1.html").exists()
