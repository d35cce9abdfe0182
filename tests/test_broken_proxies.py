"""Proof that the harness can fail: every case fails against a proxy that has its bug.

`broken_proxy.py` is a plain pass-through with one bug per flag. Each run below is a real
`pytest suites/ --target-cmd …` in a subprocess against that real proxy process, read back
through `--verdicts-json`, exactly as a user would run it. For every bug, the cases that
target it must say FAIL (NON-STRICT for a SHOULD), and the reference proxy must pass every
one of them. A last test checks that no case in `suites/` is left without a bug that
makes it fail: a case that cannot fail is worse than none.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamproof.fake_providers import FakeProvider
from streamproof.harness.options import case_id, selects

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"
BROKEN = ROOT / "tests" / "broken_proxy.py"
BROKEN_REFERENCE = ROOT / "tests" / "broken_reference.py"

FAIL, NON_STRICT, NOT_OFFERED = "FAIL", "NON-STRICT", "NOT-OFFERED"
SPLITS_BY_BYTES = [f"2.1[{p}]" for p in ("chop-1", "chop-2", "chop-3", "chop-7")]

# bug → the verdict that each case it targets must give. A key selects as `--case` does:
# "2.13" is every variant of 2.13, "2.11[run-events]" just that one.
CAUGHT_BY: dict[str, dict[str, str]] = {
    "none": {
        "1.8": NON_STRICT,  # no X-Accel-Buffering
        "3.2": NON_STRICT,  # bad payloads forwarded as they came
        "3.4[event]": NON_STRICT,  # upstream errors forwarded in their own shapes
        "3.4[flat]": NON_STRICT,
        "3.4[finish]": NON_STRICT,
        "3.6": NON_STRICT,  # an unterminated [DONE] passed on unterminated
        # Retries are not claimed (no --target-offers retries): judged on failing honestly.
        "5.4": NOT_OFFERED,  # the 429 passed on, with its Retry-After
        "5.21": NOT_OFFERED,  # a reset after the 200 it relayed is reported, not retried
        "5.22": NON_STRICT,  # the half event before a reset passed on, no error event
        "5.10": NON_STRICT,  # a malformed line passed on
        "5.11": NON_STRICT,  # no [DONE] added after a finish_reason
        "4.4": NON_STRICT,  # usage passed on where the provider put it
        "4.6": NON_STRICT,
        "4.7": NON_STRICT,  # usage the client did not ask for passed on
        "4.9": NON_STRICT,  # no estimate when the provider reports nothing
        "4.10": NON_STRICT,
        "4.13": NON_STRICT,  # stream_options passed on to a provider that rejects it
    },
    "ignore-disconnect": {"5.13": FAIL},
    "replay": {"5.5": FAIL, "5.9": FAIL},
    # The client saw the error before the [DONE]: a SHOULD, not a harm.
    "done-after-error": {"5.6": NON_STRICT},
    "invent-finish": {"5.7": FAIL},
    # What an SDK takes for a whole answer: the seed's "stream cuts off mid-response".
    "clean-end": {"3.8": FAIL, "3.9": FAIL, "5.7": FAIL, "5.8": FAIL, "5.42": FAIL},
    "swallow-error": {"3.3": FAIL, "3.4": FAIL},
    "hang-before-headers": {"5.15": FAIL, "5.16": FAIL, "5.38": FAIL, "5.39": FAIL},
    "drop-retry-after": {"5.4": FAIL, "5.37": FAIL},
    "buffer": {"1.4": NON_STRICT, "1.6": FAIL, "1.7": FAIL, "1.12": FAIL},
    "keep-reading": {"5.12": FAIL},
    # Run claiming retries (BUG_OFFERS): a feature claimed and not delivered is a FAIL.
    "no-retry": {"5.1": FAIL, "5.2": FAIL, "5.3": FAIL, "5.18": FAIL, "7.2": FAIL},
    "resume-after-commit": {"5.20[reset]": FAIL, "5.20[reset-inside-an-event]": FAIL},
    "500-all": {
        "5.1": FAIL,
        "5.15": FAIL,
        "5.17": FAIL,  # the premise: the upstream was never asked
        "5.18": FAIL,
        "5.20": FAIL,  # no attempt at all, where one was due
        "5.23": FAIL,
    },
    "total-only": {"5.9": FAIL},
    "unbounded-retries": {"5.19": FAIL},
    # Before the headers its failure is Starlette's plain-text 500: a 5xx, the client knows.
    "commit-early": {
        "5.14": FAIL,
        "5.15": NON_STRICT,
        "5.16": NON_STRICT,
        "5.17": NON_STRICT,
        "7.6": FAIL,
    },
    "json-as-text": {"7.5": FAIL},
    "retry-4xx": {"7.7": NON_STRICT},
    "text-plain": {"1.1": FAIL},
    "gzip": {"1.5": NON_STRICT},
    "plain-data": {"1.2": FAIL, "1.10": FAIL, "2.1[one-write-per-event]": FAIL, "2.3": FAIL},
    "latin1-charset": {"1.9": FAIL},
    "new-ids": {"1.11": NON_STRICT},
    "batch": {"1.12": FAIL},
    "unterminated-done": {"1.3": FAIL, "1.13": FAIL},
    "bare-error": {"1.14": FAIL, "5.6": FAIL},  # the error event never ends: a clean end
    "double-done": {"1.3": FAIL, "2.1[one-write-per-event]": FAIL},
    "decode-per-read": {
        "2.1[split-inside-utf8]": FAIL,
        **dict.fromkeys(SPLITS_BY_BYTES, FAIL),
        "2.11[cjk-split-utf8]": FAIL,
        "2.11[emoji-split-utf8]": FAIL,
        "2.12": FAIL,
    },
    "lf-only": {
        "2.1[cr-only]": FAIL,
        "2.1[cr-only-chop-1]": FAIL,
        "2.1[crlf]": FAIL,
        "2.1[split-inside-crlf]": FAIL,
    },
    # Not 2.2: whether 500 events share reads is up to TCP, and a verdict must not be.
    "one-event-per-read": {
        "2.1[all-events-in-one-write]": FAIL,
        "2.1[chop-64]": FAIL,
        "2.19": FAIL,
    },
    "max-events": {"2.2": FAIL},
    # Every answer loses its finish_reason: each answer case must see it.
    "drop-finish": {
        "2.3": FAIL,
        **{f"2.{n}": FAIL for n in range(5, 19)},
        "3.5": FAIL,
    },
    "fixed-timeout": {"2.4": FAIL, "5.23": FAIL},
    "naive-framer": {"2.5": FAIL, "2.7": FAIL, "2.8": FAIL, "2.10": FAIL},
    "every-line-is-data": {"2.6": FAIL, "2.9": FAIL},
    "sanitize-text": {
        f"2.11[{kind}-events]": FAIL
        for kind in ("combining", "control", "emoji", "rtl", "whitespace")
    },
    "truncate-long": {"2.11[run-events]": FAIL, "2.13": FAIL},
    "drop-contentless": {"2.15": FAIL, "3.4[object]": FAIL},  # the {"error": ...} event dropped
    "drop-tool-calls": {"2.16": FAIL},
    "first-choice-only": {"2.17": FAIL},
    "skip-bad-events": {"3.1": FAIL},
    # The answer after the empty event never reaches the client: content lost.
    "empty-data-is-error": {"3.7": FAIL},
    "drop-usage": {case: FAIL for case in ("4.1", "4.2", "4.3", "4.5", "4.8", "4.11")},
    "sum-cumulative": {"4.5": FAIL},
    # Per-chunk counting is right for plain words and wrong where tokens span deltas.
    "estimate-per-chunk": {
        "4.10[cjk-chop-1]": NON_STRICT,
        "4.10[emoji-split-utf8]": NON_STRICT,
        "4.10[whitespace]": NON_STRICT,
        "4.10[tool-call]": NON_STRICT,
        "4.12[usage-none]": FAIL,
    },
    # Its estimate is right for plain words, so only a zero, a non-streamed answer and the
    # two modes side by side give it away.
    "replace-usage": {"4.8": FAIL, "4.11": FAIL, "4.12[usage-final]": FAIL},
    "null-content": {"7.1": FAIL, "7.2": FAIL},
    "crash-on-bad-input": {"7.3": FAIL, "7.4": FAIL},
    "deep-json-500": {"7.3[nested-100k-deep]": FAIL},
}
# The same for the typed streams (groups 9 and 10, run with the offers `messages` and
# `responses`) and chat's reasoning (2.20, 4.16), merged into CAUGHT_BY below.
TYPED_SPLITS = ("chop-1", "chop-2", "split-inside-utf8")  # a per-read decoder's
TYPED_EOLS = ("crlf", "split-inside-crlf", "cr-only", "cr-only-chop-1")  # an LF-only framer's
TYPED_CAUGHT_BY: dict[str, dict[str, str]] = {
    "none": {
        "9.13": NON_STRICT,  # a malformed payload passed on as it came
        "10.12": NON_STRICT,
        "9.20": NOT_OFFERED,  # the 429 passed on, with its Retry-After
        "10.19": NOT_OFFERED,
    },
    "ignore-disconnect": {"9.18": FAIL, "10.17": FAIL},
    "invent-finish": {"9.14[close]": FAIL, "10.13[close]": FAIL},  # an end never sent
    "clean-end": {
        f"{case}[{cut}]": FAIL
        for case in ("9.14", "10.13")
        for cut in ("close", "close-inside-an-event")
    },
    "swallow-error": {
        **{f"9.{case}[{cut}]": FAIL for case in (14, 15) for cut in ("reset", "event")},
        **{f"10.{case}[{cut}]": FAIL for case in (13, 14) for cut in ("reset", "event")},
        "10.13[failed]": FAIL,
    },
    "hang-before-headers": {"9.21[reset]": FAIL, "9.23": FAIL, "10.20[reset]": FAIL, "10.22": FAIL},
    "drop-retry-after": {"9.20": FAIL, "10.19": FAIL},
    "keep-reading": {"9.17": FAIL, "10.16": FAIL},
    "no-retry": {"9.19": FAIL, "10.18": FAIL},
    "total-only": {"9.16": FAIL, "9.23": FAIL, "10.15": FAIL, "10.22": FAIL},
    "commit-early": {"9.21[500]": FAIL, "9.22": FAIL, "10.20[500]": FAIL, "10.21": FAIL},
    "new-ids": {"9.3": NON_STRICT, "10.3": NON_STRICT},
    "decode-per-read": {
        **{f"{case}[{split}]": FAIL for case in ("9.1", "10.1") for split in TYPED_SPLITS},
        **{
            f"{case}[{text}]": FAIL
            for case in ("9.10", "10.9")
            for text in ("emoji-split-utf8", "cjk-chop-1")
        },
    },
    "lf-only": {f"{case}[{eol}]": FAIL for case in ("9.1", "10.1") for eol in TYPED_EOLS},
    "one-event-per-read": {
        "9.1[all-events-in-one-write]": FAIL,
        "10.1[all-events-in-one-write]": FAIL,
    },
    "max-events": {"9.8": FAIL, "10.7": FAIL},
    # The stop_reason of message_delta; the reason of an incomplete response.
    "drop-finish": {"9.9": FAIL, "10.8[max_output_tokens]": FAIL, "10.8[content_filter]": FAIL},
    "sanitize-text": {
        f"{case}[{kind}]": FAIL for case in ("9.10", "10.9") for kind in ("combining", "control")
    },
    "drop-tool-calls": {"9.6": FAIL, "10.5": FAIL},
    # And the half event a reset leaves, with the error event that ends it.
    "skip-bad-events": {
        "9.12": FAIL,
        "10.11": FAIL,
        "9.14[reset-inside-an-event]": FAIL,
        "10.13[reset-inside-an-event]": FAIL,
    },
    # The API's end never dispatched: the SDK reads no end (a truncation, every answer).
    "unterminated-done": {"9.1": FAIL, "9.4": FAIL, "9.9": FAIL, "10.1": FAIL, "10.8": FAIL},
    "drop-usage": {"4.16": FAIL, "9.11": FAIL, "9.24": FAIL, "10.10": FAIL, "10.23": FAIL},
    "sum-cumulative": {"9.24": FAIL},  # Anthropic's cumulative output_tokens summed
    "null-content": {"2.20[whole]": FAIL},
    # The anthropic SDK reads nothing without the lines; the openai SDK reads the payloads.
    "drop-event-lines": {"9.2": FAIL, "10.2": NON_STRICT},
    # Certain only where the ping shares its read with the text: all in one write.
    "drop-ping-reads": {"9.4[all-events-in-one-write]": FAIL},
    "drop-signatures": {"9.5": FAIL},
    # Not 2.20[whole]: a whole answer is relayed as it came.
    "merge-reasoning": {
        **{f"2.20[{split}]": FAIL for split in ("events", "chop-1", "split-utf8", "tools")},
        "4.16[streamed]": FAIL,
        "9.7": FAIL,
        "10.4": FAIL,
        "10.6": FAIL,
    },
    # The SDK sees the error (an `event: error`; an `error` member), in another shape.
    "error-shape": {
        f"{case}[{cut}]": NON_STRICT for case in ("9.15", "10.14") for cut in ("reset", "close")
    },
    # An untyped error the anthropic SDK skips: a clean end. The openai SDK raises on it.
    "chat-errors": {
        **{f"{case}[{cut}]": FAIL for case in ("9.14", "9.15") for cut in ("reset", "close")},
        "9.21[reset]": NON_STRICT,  # a 502 in chat's shape: the right class, another body
        "10.14[reset]": NON_STRICT,
        "10.14[close]": NON_STRICT,
    },
}
CAUGHT_BY = {
    bug: {**CAUGHT_BY.get(bug, {}), **TYPED_CAUGHT_BY.get(bug, {})}
    for bug in sorted(CAUGHT_BY.keys() | TYPED_CAUGHT_BY.keys())
}
# The same for `broken_reference.py`: the reference proxy with one bug, run with every offer
# (fallback chains, health report, metrics, log, alerts, /api/chat).
REFERENCE_CAUGHT_BY: dict[str, dict[str, str]] = {
    "no-fallback": {"5.24": FAIL, "5.25": FAIL, "5.26": FAIL, "5.27": FAIL},
    "count-as-success": {
        **{
            f"5.28[{kind}]": FAIL
            for kind in ("reset", "stall", "truncated", "malformed", "error-event", "http-500")
        },
        "5.31": FAIL,
        "5.32": FAIL,
    },
    "metrics-drift": {"5.29": FAIL},
    "log-no-class": {"5.30[reset]": FAIL, "5.30[http-500]": FAIL},
    "log-twice": {"5.30": FAIL},
    "chunks-off-by-one": {"5.28": FAIL},
    "alerts-off-by-one": {"5.31": FAIL, "5.32": FAIL, "5.33": FAIL},
    "empty-rate-zero": {"5.32": FAIL},
    "no-partial-usage": {"4.14": FAIL, "4.15": FAIL},
    "api-chat-done-after-error": {"5.35": FAIL},
    "api-chat-raw": {"5.34": FAIL},
    "errors-as-200": {"5.14": FAIL, "5.36": FAIL},
    "feed-broadcast-churn": {"6.7": FAIL},
    "feed-seq-skip": {"6.4": FAIL, "6.6": FAIL},
    "feed-drop-under-load": {"6.4": FAIL, "6.6": FAIL},
    "feed-unbounded": {"6.8": FAIL},
    "feed-one-sender": {"6.8": FAIL},
    "feed-closes-on-bad-message": {"6.3": FAIL},
    "feed-no-init": {"6.1": FAIL},
    "feed-pong-without-id": {"6.2": FAIL},
    "feed-ignores-key": {"6.10": FAIL},
    "feed-leaks-key": {"6.6": FAIL, "6.10": FAIL},
    "feed-ends-as-success": {"6.5": FAIL, "6.6": FAIL},
    "feed-no-size-limit": {"6.9": FAIL},
    "feed-abrupt-shutdown": {"6.9": FAIL},
    "page-send-twice": {"6.11": FAIL},
    "page-rows-twice": {"6.11": FAIL},
    "tls-no-verify": {"5.41": FAIL},
    "tls-one-timer": {"5.40[stall]": FAIL},
    "tls-handshake-fatal": {"5.40[reset]": FAIL},
    "tls-stale-pool": {"5.43": FAIL},
    "tls-record-eof": {"5.44": FAIL},
    # The reference proxy's own Messages and Responses relay, each with one bug.
    "typed-fake-end": {"9.14[reset]": FAIL, "9.16": FAIL, "10.13[reset]": FAIL, "10.15": FAIL},
    "typed-no-event-lines": {"9.1": FAIL, "9.2": FAIL, "10.2": NON_STRICT},
    "typed-sum-usage": {"9.24": FAIL},
    "typed-lose-after-ping": {"9.1": FAIL, "9.4": FAIL},
    "typed-drop-signature": {"9.5": FAIL, "9.7": FAIL},
    "typed-error-chat-shape": {"9.14[reset]": FAIL, "9.16": FAIL},
    "reasoning-into-content": {"2.20[events]": FAIL, "4.16[streamed]": FAIL},
}
# Options a bug's run needs beyond the defaults. tls-one-timer leaves a stalled handshake to
# the first-byte timer: 2 s of it, against the connect timer's 0.25 s, leaves no doubt which
# one fired (with the default 0.5 s the stall would end at the connect timer's tolerance).
REFERENCE_OPTIONS: dict[str, tuple[str, ...]] = {
    "tls-one-timer": ("--target-timeouts", "connect=0.25,first_byte=2,idle=0.3,total=5"),
}
# The cases that run only over TLS (--upstream-tls): a run that selects one is made so.
TLS_CASES = {"5.40", "5.41", "5.42", "5.43", "5.44"}
# 6.11 drives headless Chromium: where there is none, it is skipped, and so are these.
BROWSER_CASES = {"6.11"}
NO_BROWSER = "no chromium on PATH or no Playwright: 6.11 is skipped here"
HAS_BROWSER = bool(shutil.which("chromium")) and importlib.util.find_spec("playwright") is not None
# The pass-through's own timers (an httpx read timeout of 0.3 s), declared as a user would.
TIMEOUTS = ("--target-timeouts", "connect=0.25,first_byte=0.5,idle=0.3,total=5")
# The live cases (group 8), run with --live against stand-ins for the three providers. A
# "provider:BUG" is the fake provider behind the pass-through with that bug, so the provider
# itself is broken (the direct routes must see it, the bundled proxy may cover for it); a
# "proxy:BUG" is a good stand-in reached through the pass-through with that bug as the target.
LIVE_CAUGHT_BY: dict[str, dict[str, str]] = {
    f"{where}:{bug}": {f"{case}[{name}-{route}]": level for name in ("kimi", "nvidia", "mistral")}
    for where, route in (("provider", "direct"), ("proxy", "proxy"))
    for bug, case, level in (
        ("text-plain", "8.1", FAIL),
        ("drop-usage", "8.2", NON_STRICT),
        ("null-content", "8.3", FAIL),
    )
}
ALL_CAUGHT_BY = [*CAUGHT_BY.values(), *REFERENCE_CAUGHT_BY.values(), *LIVE_CAUGHT_BY.values()]
# Trimmed of plugins these runs do not use, each run starts half a second sooner.
LEAN = ("-p", "no:html", "-p", "no:metadata", "-p", "no:hypothesispytest", "-p", "no:xdist")


def _verdicts(pytester: pytest.Pytester, cases: list[str], *options: str) -> dict[str, str]:
    out = pytester.path / "verdicts.json"
    selection = [arg for case in cases for arg in ("--case", case)]
    # A subprocess, as a user runs it (an inline run would share this process's modules).
    result = pytester.runpytest_subprocess(
        str(SUITES), *selection, "--verdicts-json", str(out), *LEAN, *options
    )
    assert out.exists(), result.stdout.str()
    return {v["case"]: v["level"] for v in json.loads(out.read_text())}


def _tls(cases: dict[str, str]) -> tuple[str, ...]:
    """`--upstream-tls` when one of `cases` runs only over TLS."""
    return ("--upstream-tls",) if any(case.split("[")[0] in TLS_CASES for case in cases) else ()


def _levels(verdicts: dict[str, str], expected: dict[str, str]) -> dict[str, set[str]]:
    """The verdicts each selector got (every variant it selects)."""
    return {
        selector: {level for case, level in verdicts.items() if selects(selector, case)}
        for selector in expected
    }


# What a bug's proxy claims to offer (--target-offers): the Messages and Responses APIs it
# serves, and retries where the bug is in them (a feature claimed and not delivered).
TYPED_OFFERS = "messages,responses"
BUG_OFFERS = {"no-retry": "retries", "unbounded-retries": "retries"}


@pytest.mark.parametrize("bug", sorted(CAUGHT_BY))
def test_broken_proxy_caught(pytester: pytest.Pytester, bug: str) -> None:
    command = _command(bug)
    expected = CAUGHT_BY[bug]
    offers = ("--target-offers", ",".join(filter(None, (TYPED_OFFERS, BUG_OFFERS.get(bug)))))
    tls = _tls(expected)
    verdicts = _verdicts(
        pytester, sorted(expected), "--target-cmd", command, *TIMEOUTS, *offers, *tls
    )
    assert _levels(verdicts, expected) == {case: {level} for case, level in expected.items()}


@pytest.mark.parametrize(
    "bug",
    [
        pytest.param(
            bug,
            marks=pytest.mark.skipif(
                not HAS_BROWSER and set(cases) <= BROWSER_CASES, reason=NO_BROWSER
            ),
        )
        for bug, cases in sorted(REFERENCE_CAUGHT_BY.items())
    ],
)
def test_broken_reference_caught(pytester: pytest.Pytester, bug: str) -> None:
    command = f"{sys.executable} {BROKEN_REFERENCE} --bug {bug} --config {{config}} --fd {{fd}}"
    expected = REFERENCE_CAUGHT_BY[bug]
    verdicts = _verdicts(
        pytester,
        sorted(expected),
        "--target-cmd",
        command,
        "--target-offers",
        "all",
        *_tls(expected),
        *REFERENCE_OPTIONS.get(bug, ()),
    )
    assert _levels(verdicts, expected) == {case: {level} for case, level in expected.items()}


@contextlib.contextmanager
def _standin(bug: str | None) -> Iterator[str]:
    """A base URL standing in for a real provider: the fake, or the fake behind a bug."""
    with FakeProvider() as fake:
        if bug is None:
            yield fake.base_url
            return
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            argv = [sys.executable, str(BROKEN), "--upstream", fake.base_url, "--bug", bug]
            proxy = subprocess.Popen(
                [*argv, "--fd", str(listener.fileno())],
                pass_fds=[listener.fileno()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)


def _live(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    base_url: str,
    cases: list[str],
    *options: str,
) -> dict[str, str]:
    for name in ("KIMI", "NVIDIA", "MISTRAL"):
        monkeypatch.setenv(f"{name}_API_KEY", f"sk-standin-{name.lower()}")
        monkeypatch.setenv(f"{name}_BASE_URL", base_url)
    return _verdicts(pytester, cases, "--live", *options)


def _command(bug: str) -> str:
    return f"{sys.executable} {BROKEN} --upstream {{upstream}} --fd {{fd}} --bug {bug}"


def test_live_cases_pass_against_a_standin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI's path through --live: every provider, directly and through the bundled proxy."""
    with _standin(None) as base_url:
        verdicts = _live(pytester, monkeypatch, base_url, ["8"])
    assert len(verdicts) == 18
    assert set(verdicts.values()) == {"PASS"}


def test_live_cases_without_keys_are_skipped(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KIMI", "NVIDIA", "MISTRAL"):
        monkeypatch.delenv(f"{name}_API_KEY", raising=False)
    verdicts = _verdicts(pytester, ["8"], "--live")
    assert set(verdicts.values()) == {"SKIP"}


@pytest.mark.parametrize("broken", sorted(LIVE_CAUGHT_BY))
def test_live_cases_catch_a_broken_provider_or_proxy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    where, bug = broken.split(":")
    expected = LIVE_CAUGHT_BY[broken]
    options = ["--target-cmd", _command(bug)] if where == "proxy" else []
    with _standin(bug if where == "provider" else None) as base_url:
        verdicts = _live(pytester, monkeypatch, base_url, sorted(expected), *options)
    assert _levels(verdicts, expected) == {case: {level} for case, level in expected.items()}


def test_benign_proxy_gets_no_fail(pytester: pytest.Pytester) -> None:
    """Rewriting what the standards leave open is not a failure: every case, no FAIL."""
    command = _command("benign")
    groups = ["1", "2", "3", "5", "7", "9", "10"]
    offers = ("--target-offers", TYPED_OFFERS)
    verdicts = _verdicts(pytester, groups, "--target-cmd", command, *TIMEOUTS, *offers)
    assert verdicts
    assert {case: v for case, v in verdicts.items() if v in ("FAIL", "ERROR")} == {}


def test_reference_proxy_passes_every_targeted_case(pytester: pytest.Pytester) -> None:
    # The live ones pass against their stand-in in test_live_cases_pass_against_a_standin.
    offline = [*CAUGHT_BY.values(), *REFERENCE_CAUGHT_BY.values()]
    targeted = sorted({case for cases in offline for case in cases})
    if not HAS_BROWSER:
        targeted = [case for case in targeted if case not in BROWSER_CASES]
    verdicts = _verdicts(pytester, targeted, "--upstream-tls")
    assert _levels(verdicts, dict.fromkeys(targeted, "PASS")) == {c: {"PASS"} for c in targeted}


def test_every_case_has_a_bug_that_fails_it(pytester: pytest.Pytester) -> None:
    # In process, `harness` is imported already and cannot be rewritten again: say so once.
    quiet = ("-W", "ignore::pytest.PytestAssertRewriteWarning")
    items, _ = pytester.inline_genitems(str(SUITES), *quiet)
    cases = {case for item in items if (case := case_id(item)) is not None}
    assert len(cases) == len(items), "every test in suites/ is a numbered case"
    targeted = {case for expected in ALL_CAUGHT_BY for case in expected}
    uncaught = {case for case in cases if not any(selects(t, case) for t in targeted)}
    assert not uncaught, f"cases no broken proxy fails: {sorted(uncaught)}"


@pytest.mark.parametrize(
    ("script", "exercised"),
    [(BROKEN, {*CAUGHT_BY, "benign"}), (BROKEN_REFERENCE, set(REFERENCE_CAUGHT_BY))],
    ids=["broken_proxy", "broken_reference"],
)
def test_every_bug_of_the_broken_proxies_is_exercised(script: Path, exercised: set[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    )
    bugs = result.stdout.split("--bug {", 1)[1].split("}", 1)[0].split(",")
    assert set(bugs) == exercised
