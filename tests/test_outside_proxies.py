"""Verdicts on proxies written the way other people write them (`tests/outside/`).

The one-bug flags of `broken_proxy.py` prove that each case can fail. These prove the
calibration the other way round (docs/verdicts.md), each through a real `pytest suites/`
run in a subprocess, as a user would run it:

- a correct plain relay with no retries gets no FAIL (what it does not offer is
  NOT-OFFERED, what it could do better NON-STRICT), on chat completions and on the
  Anthropic Messages and OpenAI Responses APIs (groups 9 and 10);
- a dead proxy (500 to everything) and a mute one (headers, then silence) pass nothing, in
  any group, those of the typed APIs too;
- a proxy that hangs its client after an upstream failure fails every case whose upstream
  fails after the commit point (how long its run takes: bench/outside_runs.py);
- a proxy that ends the body cleanly after a failure, one that puts its key in error bodies,
  one with only a total deadline (timers undeclared) and one that rewrites the upstream's
  errors each get the verdicts their harm calls for.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"
OUTSIDE = ROOT / "tests" / "outside"
TIMERS = ("--target-timeouts", "connect=0.25,first_byte=0.5,idle=0.3,total=5")
LEAN = ("-p", "no:html", "-p", "no:metadata", "-p", "no:hypothesispytest", "-p", "no:xdist")
GROUPS = ("1", "2", "3", "4", "5", "7")
TYPED_GROUPS = ("9", "10")  # the Messages and Responses APIs, asked of a target offering them
TYPED = ("--target-offers", "messages,responses")
# Every case whose upstream fails on the wire after the commit point (a reset, a stall, a
# clean close in the middle of the answer).
AFTER_THE_COMMIT = (
    "3.8",
    "5.5",
    "5.6",
    "5.7",
    "5.8",
    "5.9",
    "5.20[close]",
    "5.20[reset]",
    "5.20[reset-inside-an-event]",
    "5.22",
)


def _run(
    pytester: pytest.Pytester,
    proxy: str,
    cases: tuple[str, ...],
    *options: str,
    arguments: tuple[str, ...] = (),
) -> dict[str, Any]:
    out = pytester.path / "verdicts.json"
    command = f"{sys.executable} {OUTSIDE / proxy}.py --upstream {{upstream}} --fd {{fd}}"
    command = " ".join([command, *arguments])
    selection = [arg for case in cases for arg in ("--case", case)]
    result = pytester.runpytest_subprocess(
        str(SUITES),
        *selection,
        "--target-cmd",
        command,
        "--verdicts-json",
        str(out),
        *LEAN,
        *options,
    )
    assert out.exists(), result.stdout.str()
    return {v["case"]: v for v in json.loads(out.read_text())}


def _levels(verdicts: dict[str, Any], level: str) -> dict[str, str]:
    return {case: v["reason"] for case, v in verdicts.items() if v["level"] == level}


# The relay's own timers, as it declares them: its read timeout (1 s) is its first-byte and
# its idle timer (0.3 s would be cut by the fake's time to build a 4 MiB answer on a loaded
# machine: the relay's doing, but not the calibration this proves), and it has no total.
RELAY = ("--idle", "1")
RELAY_TIMERS = ("--target-timeouts", "connect=0.25,first_byte=1,idle=1,total=none")


def test_a_plain_relay_without_retries_gets_no_fail(pytester: pytest.Pytester) -> None:
    groups = (*GROUPS, *TYPED_GROUPS)
    verdicts = _run(pytester, "relay", groups, *RELAY_TIMERS, *TYPED, arguments=RELAY)
    assert _levels(verdicts, "FAIL") == {}
    assert _levels(verdicts, "ERROR") == {}
    typed = {case: v["level"] for case, v in verdicts.items() if case.split(".")[0] in TYPED_GROUPS}
    assert len(typed) > 100
    assert "SKIP" not in typed.values()
    offered = _levels(verdicts, "NOT-OFFERED")
    assert {"5.1", "5.2", "5.3", "7.2", "9.19[reset]", "10.18[reset]"} <= set(offered)
    assert all(reason.startswith("not offered: retries") for reason in offered.values())


@pytest.mark.parametrize("proxy", ["dead", "mute"])
def test_a_dead_or_mute_proxy_passes_nothing(pytester: pytest.Pytester, proxy: str) -> None:
    """The catalogue-wide invariant: whatever the case, a proxy that never relays an
    answer cannot pass it (FAIL, or NON-STRICT where the upstream is down and a 500 is an
    error all the same; the cases that cannot apply to it are SKIP)."""
    verdicts = _run(pytester, proxy, (), *TIMERS)
    assert len(verdicts) > 200
    passed = {
        case: v["level"]
        for case, v in verdicts.items()
        if v["level"] in ("PASS", "INFO", "NOT-OFFERED")
    }
    assert passed == {}
    reasons = " ".join(v["reason"] for v in verdicts.values() if v["level"] == "FAIL")
    assert "premise: the upstream was asked" in reasons


@pytest.mark.parametrize("proxy", ["dead", "mute"])
def test_a_dead_or_mute_proxy_passes_nothing_of_the_typed_apis(
    pytester: pytest.Pytester, proxy: str
) -> None:
    """The same invariant on the Messages and Responses APIs, the target offering them."""
    verdicts = _run(pytester, proxy, TYPED_GROUPS, *TIMERS, *TYPED)
    assert len(verdicts) > 100
    passed = {
        case: v["level"]
        for case, v in verdicts.items()
        if v["level"] in ("PASS", "INFO", "NOT-OFFERED", "SKIP")
    }
    assert passed == {}
    reasons = " ".join(v["reason"] for v in verdicts.values() if v["level"] == "FAIL")
    assert "premise: the upstream was asked" in reasons


def test_a_proxy_that_hangs_after_a_failure_fails_where_it_hangs(
    pytester: pytest.Pytester,
) -> None:
    verdicts = _run(pytester, "hang_after_failure", GROUPS, *TIMERS)
    assert {case: verdicts[case]["level"] for case in AFTER_THE_COMMIT} == dict.fromkeys(
        AFTER_THE_COMMIT, "FAIL"
    )
    held = _levels(verdicts, "FAIL")
    assert "held" in held["5.5"]


def test_a_clean_end_after_a_failure_fails(pytester: pytest.Pytester) -> None:
    cases = ("3.8", "5.5", "5.7", "5.9", "5.20[reset]")
    verdicts = _run(pytester, "clean_end", cases, *TIMERS)
    assert {case: v["level"] for case, v in verdicts.items()} == dict.fromkeys(cases, "FAIL")
    assert "returns the half answer as complete" in verdicts["5.5"]["reason"]


def test_a_key_in_error_bodies_fails(pytester: pytest.Pytester) -> None:
    verdicts = _run(pytester, "key_in_errors", ("5.5", "5.15", "2.2"), *TIMERS)
    assert {case: v["level"] for case, v in verdicts.items()} == {
        "5.5": "FAIL",
        "5.15": "FAIL",
        "2.2": "PASS",  # no error, no key: a clean answer is not a disclosure
    }
    assert "the key the target was given is in the body" in verdicts["5.15"]["reason"]


def test_a_total_deadline_fails_when_no_timer_is_declared(pytester: pytest.Pytester) -> None:
    verdicts = _run(pytester, "total_deadline", ("5.23",))
    assert verdicts["5.23"]["level"] == "FAIL"


def test_rewritten_upstream_errors_are_found(pytester: pytest.Pytester) -> None:
    verdicts = _run(pytester, "rewrite_errors", ("3.4[object]", "5.37", "7.6"), *TIMERS)
    assert {case: v["level"] for case, v in verdicts.items()} == {
        "3.4[object]": "NON-STRICT",  # the message replaced: the client survives it
        "5.37": "FAIL",  # Retry-After lost
        "7.6": "FAIL",  # a 400 became a 502: the client retries what it must fix
    }
