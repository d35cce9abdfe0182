"""The plugin: options, verdict levels, exit policy and reports, through pytester."""

from __future__ import annotations

import json

import pytest

from streamproof.harness.targets import UNDECLARED, Timeouts

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
    raise RuntimeError("a MUST failure stops the case at once")

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
"""


@pytest.fixture(autouse=True)
def _ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def _run(
    pytester: pytest.Pytester, *args: str
) -> tuple[pytest.RunResult, dict[str, dict[str, str]]]:
    pytester.makepyfile(test_cases=CASES)
    out = pytester.path / "verdicts.json"
    result = pytester.runpytest("--verdicts-json", str(out), "-p", "no:cacheprovider", *args)
    verdicts = {v["case"]: v for v in json.loads(out.read_text())}
    return result, verdicts


def test_plugin_verdict_levels(pytester: pytest.Pytester) -> None:
    result, verdicts = _run(pytester)
    levels = {case: v["level"] for case, v in verdicts.items()}
    assert levels == {
        "9.1": "PASS",
        "9.2": "FAIL",
        "9.3": "NON-STRICT",
        "9.4": "INFO",
        "9.5": "SKIP",
        "9.6": "ERROR",
        "9.7[one]": "PASS",
        "9.7[two]": "FAIL",
    }
    assert verdicts["9.2"]["reason"] == "expected holds, observed it broke"
    assert verdicts["9.5"]["reason"] == "the target offers no /ws"
    assert "KeyError" in verdicts["9.6"]["reason"]
    result.assert_outcomes(passed=4, failed=3, skipped=1)


def test_plugin_fail_on_non_strict_fails_should_breaches(pytester: pytest.Pytester) -> None:
    result, verdicts = _run(pytester, "--fail-on", "non-strict")
    assert verdicts["9.3"]["level"] == "NON-STRICT"
    result.assert_outcomes(passed=3, failed=4, skipped=1)


def test_plugin_bad_fail_on_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("--fail-on", "sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--fail-on takes fail or non-strict, not 'sometimes'*"])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--target-offers", "health,websocket", "*unknown offer 'websocket' (accepted: all,*"),
        ("--target-timeouts", "idle=30,stall=2", "*unknown timeout 'stall' (accepted: connect,*"),
        (
            "--target-timeouts",
            "idle=soon",
            "*idle takes a number of seconds or 'none', not 'soon'*",
        ),
        ("--target-timeouts", "total=-1", "*total takes a positive number of seconds*"),
        (
            "--target-cmd",
            "my-proxy --port {prot}",
            "*--target-cmd: {prot} is not a placeholder (they are {python} {upstream} *",
        ),
        (
            "--target-cmd",
            "my-proxy --listen 8080",
            "*--target-cmd: it has neither {port} nor {fd}*",
        ),
    ],
)
def test_plugin_bad_target_option_is_a_usage_error(
    pytester: pytest.Pytester, option: str, value: str, message: str
) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest(option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_plugin_timeouts_declared_or_bounded() -> None:
    assert Timeouts.parse("idle=30, total=600") == Timeouts(idle=30.0, total=600.0)
    assert Timeouts.parse("") == Timeouts()
    assert not UNDECLARED.declared


def test_plugin_terminal_summary_lists_verdicts(pytester: pytest.Pytester) -> None:
    result, _ = _run(pytester)
    result.stdout.fnmatch_lines(
        [
            "*streamproof verdicts*",
            "FAIL · 2 — a client is harmed*",
            "  9.2 * MUST * case 9.2",
            "    expected holds, observed it broke",
            "ERROR · 1 — *",
            "NON-STRICT · 1 — *",
            "  9.3 * SHOULD case 9.3",
            "    expected should hold, observed it did not",
            "SKIP · 1 — not run",
            "streamproof: 8 cases: 2 PASS, 1 NON-STRICT, 2 FAIL, 1 INFO, 1 SKIP, 1 ERROR — *",
        ]
    )


def test_plugin_report_header_names_the_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("--target-cmd", "my-proxy --port {port}")
    result.stdout.fnmatch_lines(["streamproof: target command 'my-proxy --port {port}'*"])


def test_plugin_html_report_has_verdict_columns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    report = pytester.path / "report.html"
    pytester.runpytest("--html", str(report), "--self-contained-html", "-p", "no:cacheprovider")
    page = report.read_text()
    assert "col-verdict" in page
    assert "NON-STRICT" in page
    assert "Requirement" in page
    # NON-STRICT is an outcome of its own, with its filter box, taken from "Passed".
    assert "const possibleFilters = ['non-strict', 'not-offered', " in page
    assert '<span class="non-strict">1 Non-strict,</span>' in page
    assert '<span class="passed">3 Passed,</span>' in page  # 2 PASS, 1 INFO
    assert "&quot;result&quot;: &quot;Non-strict&quot;" in page


@pytest.mark.parametrize(
    ("selectors", "message"),
    [
        pytest.param(
            ["9.70"], ["--case 9.70: no such case*", "  group 9: 9.1, 9.2, *"], id="no-prefix-match"
        ),
        pytest.param(
            ["99.9"], ["--case 99.9: no such case*", "  groups: 9 (7 cases)"], id="no-group"
        ),
        pytest.param(["9.1", "9.99"], ["--case 9.99: no such case*"], id="one-of-two"),
        pytest.param(
            ["9.7[three]"],
            [
                "--case 9.7[[]three]: no such case*",
                "  9.7 has the variants: 9.7[[]one], 9.7[[]two]",
            ],
            id="variant",
        ),
        pytest.param(["abc"], ["*--case takes a case id (5.5)*not 'abc'"], id="malformed"),
        pytest.param(["9.7[]"], ["*--case takes a case id*not '9.7[[]]'"], id="empty-variant"),
    ],
)
@pytest.mark.parametrize("workers", [0, 2])
def test_plugin_case_option_selecting_nothing_is_a_usage_error(
    pytester: pytest.Pytester, selectors: list[str], message: list[str], workers: int
) -> None:
    pytester.makepyfile(test_cases=CASES)
    xdist = ["-p", "xdist", "-n", str(workers)] if workers else []
    args = [arg for selector in selectors for arg in ("--case", selector)]
    result = pytester.runpytest_subprocess(*xdist, *args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + message[0].lstrip("*"), *message[1:]])
    result.stdout.no_fnmatch_line("*passed*")


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        pytest.param(["9.2"], {"9.2"}, id="one-case"),
        pytest.param(["9.7"], {"9.7[one]", "9.7[two]"}, id="every-variant"),
        pytest.param(["9.7[two]"], {"9.7[two]"}, id="one-variant"),
        pytest.param(["9"], {f"9.{n}" for n in range(1, 7)} | {"9.7[one]", "9.7[two]"}, id="group"),
        pytest.param(["9.1", "9.3"], {"9.1", "9.3"}, id="repeated"),
    ],
)
def test_plugin_case_option_selects_cases(
    pytester: pytest.Pytester, selectors: list[str], expected: set[str]
) -> None:
    pytester.makepyfile(test_cases=CASES)
    out = pytester.path / "verdicts.json"
    args = [arg for selector in selectors for arg in ("--case", selector)]
    pytester.runpytest(*args, "--verdicts-json", str(out), "-p", "no:cacheprovider")
    ran = {v["case"] for v in json.loads(out.read_text())} if out.exists() else set()
    assert ran == expected


ONE_CASE = """
import pytest
from streamproof.harness import Strength, case
from streamproof.harness.verdict import Finding

@pytest.fixture
def broken():
    raise KeyError("the fixture broke")

@case("9.1", "case 9.1", requirement="r", source="s", expected="e", strength=Strength.{strength})
def test_case(judge{fixture}):
    {body}
"""
# verdict → (the case's strength, its body, whether it uses the broken fixture)
LEVELS = {
    "PASS": ("MUST", 'judge.check(Finding(True, "holds", "held"))', False),
    "NON-STRICT": ("SHOULD", 'judge.check(Finding(False, "holds", "did not"))', False),
    "FAIL": ("MUST", 'judge.check(Finding(False, "holds", "did not"))', False),
    "INFO": ("INFO", 'judge.check(Finding(False, "behaviour", "recorded"))', False),
    "SKIP": ("MUST", 'pytest.skip("not here")', False),
    "ERROR": ("MUST", 'raise KeyError("oops")', False),
    "ERROR-in-setup": ("MUST", "pass", True),
}
FAILING = {"fail": {"FAIL", "ERROR"}, "non-strict": {"FAIL", "ERROR", "NON-STRICT"}}


@pytest.mark.parametrize("fail_on", ["fail", "non-strict"])
@pytest.mark.parametrize("level", list(LEVELS))
def test_plugin_fail_on_decides_which_verdicts_fail_the_run(
    pytester: pytest.Pytester, fail_on: str, level: str
) -> None:
    strength, body, broken = LEVELS[level]
    source = ONE_CASE.format(strength=strength, body=body, fixture=", broken" if broken else "")
    pytester.makepyfile(test_case=source)
    out = pytester.path / "verdicts.json"
    result = pytester.runpytest("--fail-on", fail_on, "--verdicts-json", str(out))
    [verdict] = json.loads(out.read_text())
    verdict_level = level.removesuffix("-in-setup")
    assert verdict["level"] == verdict_level
    fails = verdict_level in FAILING[fail_on]
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if fails else pytest.ExitCode.OK)


def test_plugin_fail_on_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "streamproof_fail_on = non-strict\n"
    )
    strength, body, _ = LEVELS["NON-STRICT"]
    pytester.makepyfile(test_case=ONE_CASE.format(strength=strength, body=body, fixture=""))
    assert pytester.runpytest().ret == pytest.ExitCode.TESTS_FAILED
    assert pytester.runpytest("--fail-on", "fail").ret == pytest.ExitCode.OK


CATALOGUE = """
from streamproof.harness import Strength, case

@case("10.1", "ten one", requirement="r", source="s", expected="e")
def test_ten_one(): pass

@case("9.10", "nine ten", requirement="r", source="s", expected="e", strength=Strength.INFO)
def test_nine_ten(): pass

@case("9.2", "nine two", requirement="r", source="s", expected="e", strength=Strength.SHOULD)
def test_nine_two(): pass

def test_not_a_case(): pass
"""


@pytest.mark.parametrize("quiet", [pytest.param([], id="verbose"), pytest.param(["-q"], id="q")])
def test_plugin_collect_only_lists_the_catalogue(
    pytester: pytest.Pytester, quiet: list[str]
) -> None:
    pytester.makepyfile(test_catalogue=CATALOGUE)
    result = pytester.runpytest("--collect-only", *quiet)
    assert result.ret == pytest.ExitCode.OK
    normal = "test_catalogue.py::test_ten_one" if quiet else "*<Function test_ten_one>"
    result.stdout.fnmatch_lines(
        [
            normal,
            "*streamproof catalogue*",
            "9.2 * SHOULD nine two",
            "9.10 * INFO   nine ten",
            "10.1 * MUST   ten one",
            "3 cases — group 9: 2, group 10: 1",
        ]
    )
    result.stdout.no_fnmatch_line("*streamproof verdicts*")
    assert not (pytester.path / "reports").exists()


def test_plugin_collect_only_catalogue_follows_the_case_selection(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_catalogue=CATALOGUE)
    result = pytester.runpytest("--collect-only", "-q", "--case", "9")
    result.stdout.fnmatch_lines(["*streamproof catalogue*", "2 cases — group 9: 2"])
    result.stdout.no_fnmatch_line("10.1 *")


def test_plugin_without_collect_only_has_no_catalogue(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_catalogue=CATALOGUE)
    result = pytester.runpytest()
    result.stdout.no_fnmatch_line("*streamproof catalogue*")


def test_timeouts_left_out_are_undeclared_never_filled_in() -> None:
    timeouts = Timeouts.parse("idle=2")
    assert timeouts == Timeouts(idle=2.0)
    assert timeouts.declares("idle")
    assert not timeouts.declares("total")
    assert timeouts.bound("total") == 10.0  # judged by its bound, not the bundled proxy's 5 s
    assert "total undeclared" in timeouts.describe()


def test_timeouts_none_is_a_timer_the_target_does_not_have() -> None:
    timeouts = Timeouts.parse("idle=none,first_byte=2")
    assert not timeouts.declares("idle")
    assert timeouts.bound("idle") == 5.0
    assert "idle none" in timeouts.describe()
    assert timeouts.declared


MISSED_PREMISE = """
import pytest
from streamproof.fake_providers import FakeProvider
from streamproof.harness import case, checks
from streamproof.harness.client import StreamClient
from streamproof.harness.sut import SystemUnderTest
from streamproof.harness.targets import Timeouts
from streamproof.harness.upstream import scenario
from streamproof.harness.verdict import Finding


@pytest.fixture
def sut():
    with FakeProvider() as fake:
        client = StreamClient(f"http://{fake.host}:{fake.port}")
        try:
            yield SystemUnderTest("the fake itself", client, fake, Timeouts())
        finally:
            client.close()


def _faked(sut):
    x = sut.messages(scenario("chunks-4"))
    x.attempts[0].body["stream"] = False  # as a gateway that asked for a whole answer
    return x


@case("9.1", "a", requirement="r", source="s", expected="e")
def test_a_must_check_before_the_exchange_is_shown(sut, judge):
    x = _faked(sut)
    judge.check(checks.header_is(x.transcript, "x-never", "1"))


@case("9.2", "b", requirement="r", source="s", expected="e")
def test_a_harm_before_the_exchange_is_shown(sut, judge):
    _faked(sut)
    judge.check(Finding(False, "no harm", "a harm", harm=True))


@case("9.3", "c", requirement="r", source="s", expected="e")
def test_a_must_check_of_an_exchange_asked_as_sent(sut, judge):
    x = sut.messages(scenario("chunks-4"))
    judge.check(checks.header_is(x.transcript, "x-never", "1"))
"""


def test_plugin_a_missed_premise_found_after_a_must_failure(pytester: pytest.Pytester) -> None:
    """A case that failed a MUST finding before it showed its exchange is NON-STRICT when
    that exchange missed its premise through no harm (a faked stream); a harm, or an
    exchange asked as sent, keeps it a FAIL."""
    pytester.makepyfile(test_cases=MISSED_PREMISE)
    out = pytester.path / "verdicts.json"
    pytester.runpytest("--verdicts-json", str(out), "-p", "no:cacheprovider")
    verdicts = {v["case"]: v for v in json.loads(out.read_text())}
    assert {case: v["level"] for case, v in verdicts.items()} == {
        "9.1": "NON-STRICT",
        "9.2": "FAIL",
        "9.3": "FAIL",
    }
    assert verdicts["9.1"]["reason"].startswith(
        "expected premise: the upstream asked to stream, as the client asked"
    )
