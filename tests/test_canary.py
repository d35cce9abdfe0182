"""No key ever reaches a report, a log or an artifact: proved with canary keys.

One run plants a distinctive key everywhere a key can enter — the key the proxy sends
upstream (also in a target header, from `{api_key}`), the target's own `Authorization`
header, a live provider's key (its stand-in is
the fake provider) and the proxy's own key (case 6.10 starts a proxy that wants it) — over
cases that pass, fail and error out, and then reads every file the run left behind, and its
output, looking for them.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from streamproof.fake_providers import FakeProvider

ROOT = Path(__file__).resolve().parent.parent
CASES: tuple[str, ...] = ("1.1", "2.1[chop-1]", "5.5", "5.6", "5.14", "5.28[reset]", "5.29", "5.30")
CASES += ("6.6", "6.10", "7.3", "8.1")


def test_canary_keys_appear_nowhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {
        "upstream": f"sk-canary-upstream-{secrets.token_hex(8)}",
        "target": f"sk-canary-target-{secrets.token_hex(8)}",
        "provider": f"sk-canary-provider-{secrets.token_hex(8)}",
        "proxy": f"sk-canary-proxy-{secrets.token_hex(8)}",  # 6.10 gives it to a proxy
    }
    monkeypatch.setenv("STREAMPROOF_PROXY_KEY", canaries["proxy"])
    monkeypatch.setenv("STREAMPROOF_UPSTREAM_KEY", canaries["upstream"])
    monkeypatch.setenv("KIMI_API_KEY", canaries["provider"])
    for name in ("NVIDIA", "MISTRAL"):
        monkeypatch.delenv(f"{name}_API_KEY", raising=False)
    reports = pytester.path / "reports"
    with FakeProvider() as standin:
        monkeypatch.setenv("KIMI_BASE_URL", standin.base_url)
        selection = [arg for case in CASES for arg in ("--case", case)]
        result = pytester.runpytest_subprocess(
            str(ROOT / "suites"),
            *selection,
            "--live",
            "--target-header",
            f"Authorization: Bearer {canaries['target']}",
            "--target-header",  # a header filled from a placeholder when the target starts
            "X-Upstream-Key: {api_key}",
            "--report-dir",
            str(reports),
            "--html",
            str(reports / "conformance.html"),
            "--self-contained-html",
            "--junitxml",
            str(reports / "junit.xml"),
            "-p",
            "no:xdist",
        )
    files = [path for path in pytester.path.rglob("*") if path.is_file()]
    assert len([f for f in files if f.is_relative_to(reports)]) >= 4, "the run left its reports"
    output = result.stdout.str() + result.stderr.str()
    for where, canary in canaries.items():
        assert canary not in output, f"the {where} key is in the run's output"
        for path in files:
            assert canary.encode() not in path.read_bytes(), f"the {where} key is in {path}"
