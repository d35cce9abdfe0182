"""Proof that the harness can fail: deliberately broken proxies get FAIL on the cases that
target their bug, and the reference proxy passes the same cases.

Each run is a real `pytest suites/…` in a subprocess against a real proxy process, read
back through `--verdicts-json`, exactly as a user would run it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "tests" / "broken_proxy.py"

# Which cases each bug must be caught by; every one of them must be FAIL.
TARGETED = {
    "replay": {
        "5.5": "test_recovery.py::test_reset_mid_stream_not_replayed",
        "5.9": "test_recovery.py::test_stall_mid_stream",
    },
    "done-after-error": {
        "5.5": "test_recovery.py::test_reset_mid_stream_not_replayed",
        "5.9": "test_recovery.py::test_stall_mid_stream",
    },
    "buffer": {"1.6": "test_framing.py::test_chunks_forwarded_as_they_arrive"},
}
# Cases a plain pass-through gets right: the broken proxies must pass these, which shows
# that the failures above come from the bug and not from a proxy that cannot relay at all.
CONTROLS = {
    "2.1[chop-1]": "test_integrity.py::test_content_intact_at_every_split[chop-1]",
    "5.1": "test_recovery.py::test_reset_before_headers_retried",
}


def _verdicts(pytester: pytest.Pytester, nodeids: list[str], *options: str) -> dict[str, str]:
    out = pytester.path / "verdicts.json"
    args = [str(ROOT / "suites" / nodeid) for nodeid in nodeids]
    result = pytester.runpytest_subprocess(
        *args, "--verdicts-json", str(out), "-p", "no:randomly", *options
    )
    assert out.exists(), result.stdout.str()
    return {v["case"]: v["level"] for v in json.loads(out.read_text())}


@pytest.mark.parametrize("bug", sorted(TARGETED))
def test_broken_proxy_caught(pytester: pytest.Pytester, bug: str) -> None:
    command = f"{sys.executable} {BROKEN} --upstream {{upstream}} --fd {{fd}} --bug {bug}"
    cases = {**TARGETED[bug], **CONTROLS}
    verdicts = _verdicts(pytester, sorted(set(cases.values())), "--target-cmd", command)
    assert {case: verdicts.get(case) for case in TARGETED[bug]} == dict.fromkeys(
        TARGETED[bug], "FAIL"
    )
    assert {case: verdicts.get(case) for case in CONTROLS} == dict.fromkeys(CONTROLS, "PASS")


def test_reference_proxy_passes_the_targeted_cases(pytester: pytest.Pytester) -> None:
    cases = {case: nodeid for targeted in TARGETED.values() for case, nodeid in targeted.items()}
    verdicts = _verdicts(pytester, sorted(set(cases.values())))
    assert {case: verdicts.get(case) for case in cases} == dict.fromkeys(cases, "PASS")
