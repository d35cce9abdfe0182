"""The official `openai` SDK as a real client, through every post-commit fault.

The verdict rule (docs/verdicts.md) says FAIL means a client is harmed, judged as the SDK
would experience the exchange. So the SDK itself is the judge of the judges here: it streams
each fault through a proxy, and where it returns normally (no exception) with less than the
whole answer, its caller was handed half an answer as if it were whole. Then:

- the reference proxy and a correct plain relay must never let that happen;
- for a proxy that does let it happen (`tests/outside/clean_end.py`), the case of the suites
  that sends the same fault must say FAIL.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx2  # the openai SDK's own HTTP client
import openai
import pytest

from streamproof.fake_providers import FakeProvider
from streamproof.fake_providers.chat import DEFAULT_MESSAGES, expected
from streamproof.harness.targets import BUNDLED, REFERENCE_TIMEOUTS, ProcessTarget
from streamproof.harness.upstream import (
    CloseAfter,
    CutInside,
    Malformed,
    ResetAfter,
    ResetInside,
    Scenario,
    StallAfter,
    UpstreamError,
)

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ROOT / "tests" / "outside"
TIMERS = "connect=0.25,first_byte=0.5,idle=0.3,total=5"

# Each post-commit fault, and the case of the suites that sends the same one.
FAULTS = {
    "reset": (Scenario(chunks=8, faults=(ResetAfter(4),)), "5.5"),
    "reset-inside-an-event": (
        Scenario(chunks=8, faults=(ResetInside(4),)),
        "5.20[reset-inside-an-event]",
    ),
    "close": (Scenario(chunks=8, faults=(CloseAfter(4),)), "5.7"),
    "cut-inside-an-event": (Scenario(chunks=8, faults=(CutInside(4),)), "3.8"),
    "stall": (Scenario(chunks=8, faults=(StallAfter(4),)), "5.9"),
    "malformed": (Scenario(chunks=8, faults=(Malformed(4),)), "5.10"),
    "error-object": (Scenario(chunks=8, faults=(UpstreamError(4, "object"),)), "3.3[object]"),
    "error-flat": (Scenario(chunks=8, faults=(UpstreamError(4, "flat"),)), "3.3[flat]"),
    "error-event": (Scenario(chunks=8, faults=(UpstreamError(4, "event"),)), "3.3[event]"),
    "error-finish": (Scenario(chunks=8, faults=(UpstreamError(4, "finish"),)), "3.3[finish]"),
}
PROXIES = {
    "reference": BUNDLED,
    "relay": f"{{python}} {OUTSIDE / 'relay.py'} --upstream {{upstream}} --fd {{fd}}",
    "clean_end": f"{{python}} {OUTSIDE / 'clean_end.py'} --upstream {{upstream}} --fd {{fd}}",
}


@dataclass(frozen=True)
class Experience:
    """What the SDK's caller got: an exception, or an answer it takes for a whole one."""

    raised: str | None
    content: str
    finish_reasons: tuple[str | None, ...]

    def whole(self, scenario: Scenario) -> bool:
        return self.content == expected(scenario).text

    def handed_half(self, scenario: Scenario) -> bool:
        """The SDK returned normally with less than the whole answer, and no finish_reason
        "error" told its caller so."""
        told = self.raised is not None or "error" in self.finish_reasons
        return not told and not self.whole(scenario)


def stream_with_sdk(base_url: str, scenario: Scenario) -> Experience:
    scenario = replace(scenario, nonce=secrets.token_hex(6))
    client = openai.OpenAI(
        base_url=f"{base_url}/v1",
        api_key="sk-sdk-client",
        max_retries=0,  # what reached the client first, not what a retry made of it
        timeout=5.0,
        http_client=openai.DefaultHttpx2Client(trust_env=False),  # loopback: no env proxy
    )
    messages: Any = list(DEFAULT_MESSAGES)
    parts: list[str] = []
    reasons: list[str | None] = []
    try:
        stream = client.chat.completions.create(
            model=scenario.model, messages=messages, stream=True
        )
        for chunk in stream:
            # As a caller reads it: the SDK yields a payload that is not an object as it
            # is (a list, a number, None), and the caller's `.choices` raises.
            for choice in chunk.choices or []:
                if choice.index == 0 and choice.delta and choice.delta.content:
                    parts.append(choice.delta.content)
                if choice.finish_reason is not None:
                    reasons.append(choice.finish_reason)
    except (openai.OpenAIError, httpx2.HTTPError, ValueError, AttributeError, TypeError) as exc:
        # An API error, a broken transfer, or a payload the SDK could not read: the caller
        # knows something went wrong.
        return Experience(type(exc).__name__, "".join(parts), tuple(reasons))
    finally:
        client.close()
    return Experience(None, "".join(parts), tuple(reasons))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="module", params=sorted(PROXIES))
def proxy(
    request: pytest.FixtureRequest, fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    name = str(request.param)
    target = ProcessTarget(
        PROXIES[name],
        fake.base_url,
        tmp_path_factory.mktemp(name),
        timeouts=REFERENCE_TIMEOUTS,
        readiness="/health",
    )
    target.start()
    try:
        yield name, target.base_url
    finally:
        target.stop()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_sdk_is_never_handed_half_an_answer_as_whole(proxy: tuple[str, str], fault: str) -> None:
    name, base_url = proxy
    scenario, _ = FAULTS[fault]
    if name == "clean_end":
        pytest.skip("clean_end.py hands the SDK half answers: judged against the suites below")
    seen = stream_with_sdk(base_url, scenario)
    assert not seen.handed_half(scenario), (
        f"{name}: the SDK returned {len(seen.content)} chars as a whole answer"
    )


def test_suites_fail_every_fault_the_sdk_takes_for_a_whole_answer(
    pytester: pytest.Pytester, fake: FakeProvider
) -> None:
    """Through clean_end.py, whatever the SDK took for a whole answer is FAIL in the suites,
    and the SDK took at least one (or this test proves nothing)."""
    target = ProcessTarget(PROXIES["clean_end"], fake.base_url, pytester.mkdir("target"))
    target.start()
    try:
        halves = {
            fault: case
            for fault, (scenario, case) in FAULTS.items()
            if stream_with_sdk(target.base_url, scenario).handed_half(scenario)
        }
    finally:
        target.stop()
    assert halves, "clean_end.py should hand the SDK half an answer for some fault"
    out = pytester.path / "verdicts.json"
    selection = [arg for case in sorted(set(halves.values())) for arg in ("--case", case)]
    pytester.runpytest_subprocess(
        str(ROOT / "suites"),
        *selection,
        "--target-cmd",
        PROXIES["clean_end"].replace("{python}", sys.executable),
        "--target-timeouts",
        TIMERS,
        "--verdicts-json",
        str(out),
        "-p",
        "no:xdist",
    )
    verdicts = {v["case"]: v["level"] for v in json.loads(out.read_text())}
    assert {fault: verdicts.get(case) for fault, case in halves.items()} == dict.fromkeys(
        halves, "FAIL"
    )
