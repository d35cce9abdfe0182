"""The plugin's --expectations: accepted verdicts, expectations not met or unused, bad files."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest

CASES = """
import pytest
from streamproof.harness import Strength, case
from streamproof.harness.verdict import Finding

def _case(id, strength=Strength.MUST):
    return case(id, f"case {id}", requirement="r", source="s", expected="e", strength=strength)

@_case("9.1")
def test_must_holds(judge):
    judge.check(Finding(True, "holds", "it held"))

@_case("9.2")
def test_must_broken(judge):
    judge.check(Finding(False, "holds", "it broke"))

@_case("9.3", Strength.SHOULD)
def test_should_broken(judge):
    judge.check(Finding(False, "should hold", "it did not"))

@_case("9.5")
def test_skipped(judge):
    pytest.skip("the target offers no /ws")

@_case("9.7")
@pytest.mark.parametrize("n", [pytest.param(1, id="one"), pytest.param(2, id="two")])
def test_parametrized(judge, n):
    judge.check(Finding(n == 1, "n is one", f"n is {n}"))
"""


@pytest.fixture(autouse=True)
def _ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def _run(
    pytester: pytest.Pytester, expectations: str, *args: str
) -> tuple[pytest.RunResult, dict[str, dict[str, Any]]]:
    pytester.makepyfile(test_cases=CASES)
    (pytester.path / "expected.toml").write_text(expectations, encoding="utf-8")
    result = pytester.runpytest("--expectations", "expected.toml", "--report-dir", "out", *args)
    results = json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))
    return result, {case["id"]: case for case in results["cases"]}


ACCEPT_9_2 = """
["9.2"]
verdict = "FAIL"
reason = "tracked in #12"
"""


def test_expectations_accepted_failure_does_not_fail_the_run(pytester: pytest.Pytester) -> None:
    result, cases = _run(pytester, ACCEPT_9_2, "--case", "9.1", "--case", "9.2")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    assert cases["9.2"]["verdict"] == "FAIL"
    assert cases["9.2"]["accepted"] == "tracked in #12"
    assert cases["9.1"]["accepted"] is None
    result.stdout.fnmatch_lines(
        [
            "ACCEPTED · 1 — *",
            "  9.2 * FAIL (accepted: tracked in #12)",
            "    expected holds, observed it broke",
            "streamproof: 2 cases: 1 PASS, 1 FAIL — *",
        ]
    )
    result.stdout.no_fnmatch_line("*expectations not*")


def test_expectations_accepted_failure_keeps_its_traceback(pytester: pytest.Pytester) -> None:
    result, _ = _run(pytester, ACCEPT_9_2, "--case", "9.2", "-rP")
    result.stdout.fnmatch_lines(
        ["*streamproof: accepted failure*", "*CaseFailed: expected holds, observed it broke*"]
    )


def test_expectations_accepted_failure_in_the_html_cell(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    (pytester.path / "expected.toml").write_text(ACCEPT_9_2, encoding="utf-8")
    report = pytester.path / "report.html"
    pytester.runpytest("--expectations", "expected.toml", "--html", str(report), "--case", "9.2")
    # The table is JSON in an HTML attribute: its cells are escaped twice.
    page = html.unescape(html.unescape(report.read_text(encoding="utf-8")))
    assert ">FAIL (accepted: tracked in #12)</td>" in page


def test_expectations_accepted_non_strict_under_fail_on_non_strict(
    pytester: pytest.Pytester,
) -> None:
    expected = '["9.3"]\nverdict = "NON-STRICT"\nreason = "we keep it"\n'
    result, cases = _run(pytester, expected, "--case", "9.3", "--fail-on", "non-strict")
    assert result.ret == pytest.ExitCode.OK
    assert (cases["9.3"]["verdict"], cases["9.3"]["accepted"]) == ("NON-STRICT", "we keep it")


def test_expectations_not_met_are_listed_and_follow_the_exit_rules(
    pytester: pytest.Pytester,
) -> None:
    expected = """
        ["9.1"]
        verdict = "FAIL"
        reason = "was broken"

        ["9.2"]
        verdict = "NON-STRICT"
        reason = "thought it was a SHOULD"

        ["9.5"]
        verdict = "SKIP"
        reason = "no /ws"
    """
    result, cases = _run(pytester, expected, "--case", "9.1", "--case", "9.2", "--case", "9.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    assert [cases[c]["accepted"] for c in ("9.1", "9.2", "9.5")] == [None, None, "no /ws"]
    result.stdout.fnmatch_lines(
        [
            "expectations not met:",
            "  9.1 expected FAIL, got PASS — remove the expectation?",
            "  9.2 expected NON-STRICT, got FAIL — update the expectation?",
        ]
    )


def test_expectations_unused_are_listed_not_errors(pytester: pytest.Pytester) -> None:
    expected = ACCEPT_9_2 + '["9.99"]\nverdict = "FAIL"\nreason = "gone"\n'
    result, _ = _run(pytester, expected, "--case", "9.1")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["expectations not used (no such case collected): 9.2, 9.99"])


def test_expectations_most_specific_selector_wins(pytester: pytest.Pytester) -> None:
    expected = """
        ["9"]
        verdict = "PASS"
        reason = "group"

        ["9.7"]
        verdict = "FAIL"
        reason = "every variant"

        ["9.7[one]"]
        verdict = "PASS"
        reason = "this variant"
    """
    result, cases = _run(pytester, expected, "--case", "9.1", "--case", "9.7")
    assert {c: case["accepted"] for c, case in cases.items()} == {
        "9.1": "group",
        "9.7[one]": "this variant",
        "9.7[two]": "every variant",
    }
    assert result.ret == pytest.ExitCode.OK


def test_expectations_from_the_ini_file_are_read_beside_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "streamproof_expectations = expected.toml\n"
    )
    pytester.makepyfile(test_cases=CASES)
    (pytester.path / "expected.toml").write_text(ACCEPT_9_2, encoding="utf-8")
    monkeypatch.chdir(pytester.mkdir("elsewhere"))
    result = pytester.runpytest(str(pytester.path / "test_cases.py"), "--case", "9.2")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["  9.2 * FAIL (accepted: tracked in #12)"])


def test_expectations_accepted_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    (pytester.path / "expected.toml").write_text(ACCEPT_9_2, encoding="utf-8")
    result = pytester.runpytest_subprocess(
        "-p",
        "xdist",
        "-n",
        "2",
        "--expectations",
        "expected.toml",
        "--case",
        "9.1",
        "--case",
        "9.2",
    )
    result.stdout.fnmatch_lines(["*2 workers*", "  9.2 * FAIL (accepted: tracked in #12)"])
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('["9.2"\nverdict = 1', "*expected.toml: not valid TOML*", id="not-toml"),
        pytest.param(
            '["9.2"]\nverdict = "FAIL"\nreason = "r"\nseverity = "high"\n',
            '*expected.toml: entry ["9.2"] has unknown key "severity"; accepted: verdict, reason*',
            id="unknown-key",
        ),
        pytest.param(
            '[9.2]\nverdict = "FAIL"\nreason = "r"\n',
            '*entry ["9"] has unknown key "2"*write a case id in quotes (["9.2"])*',
            id="unquoted-id",
        ),
        pytest.param(
            '["9.2"]\nverdict = "BROKEN"\nreason = "r"\n',
            "*entry [\"9.2\"]: verdict 'BROKEN' is not one of PASS, NON-STRICT, FAIL, INFO, "
            "NOT-OFFERED, SKIP*",
            id="not-a-level",
        ),
        pytest.param(
            '["9.2"]\nverdict = "fail"\nreason = "r"\n',
            "*verdict 'fail' is not one of PASS, NON-STRICT, FAIL, INFO, NOT-OFFERED, SKIP*",
            id="lower-case",
        ),
        pytest.param(
            '["9.2"]\nverdict = "ERROR"\nreason = "r"\n',
            '*entry ["9.2"]: ERROR cannot be expected*accepted verdicts: PASS, NON-STRICT, FAIL*',
            id="error",
        ),
        pytest.param(
            '["9.2"]\nverdict = "FAIL"\n',
            '*entry ["9.2"] needs a reason*',
            id="no-reason",
        ),
        pytest.param(
            'verdict = "FAIL"\n',
            '*entry ["verdict"] must be a table with verdict and reason*',
            id="not-a-table",
        ),
    ],
)
def test_expectations_bad_file_is_a_usage_error(
    pytester: pytest.Pytester, text: str, message: str
) -> None:
    pytester.makepyfile(test_cases=CASES)
    (pytester.path / "expected.toml").write_text(text, encoding="utf-8")
    result = pytester.runpytest("--expectations", "expected.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*expectations file {pytester.path / 'expected.toml'}*"])
    result.stderr.fnmatch_lines([message.replace("[", "[[]")])  # `[` is not a character class


def test_expectations_missing_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest("--expectations", "nowhere.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expectations file */nowhere.toml: no such file*"])
