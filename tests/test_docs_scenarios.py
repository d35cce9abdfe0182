"""docs/scenarios.md is true: each curl example, run against
`python -m streamproof.fake_providers` on a free port, prints what the page shows, and the
fake prints the lines the page shows for it.

The requests go out with httpx (the same method, URL, headers and body as the curl command;
`tests/curl_examples.py` renders what curl would print). The fake is the real command line,
one process for the module: every example has ids of its own, so the order the examples
run in (or the worker they run on) changes nothing.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from streamproof.fake_providers.faults import FAULTS
from streamproof.fake_providers.scenario import (
    CONTENT_TOKENS,
    EOL_NAMES,
    FORMATS,
    USAGE_DIALECTS,
    USAGE_TOKENS,
    Scenario,
    ScenarioError,
)
from tests import curl_examples
from tests.curl_examples import Example

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "scenarios.md"
EXAMPLES = curl_examples.examples(DOC.read_text(encoding="utf-8"))
WAIT = 30.0  # for the fake's start and for a line it prints; never reached when all is well


def _example_id(example: Example) -> str:
    for model in example.models:
        found = re.search(r"\.id-([A-Za-z0-9]+)", model)
        if found:
            return found.group(1)
    return f"line-{example.line}"


class Lines:
    """The lines a process writes to a pipe, collected by a thread, waited on by tests."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        with pipe:  # closed here, at its end
            for line in pipe:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()

    def closed(self, timeout: float = WAIT) -> list[str]:
        """Every line, once the pipe is closed (the process ended) or the timeout passed."""
        self._thread.join(timeout)
        with self._changed:
            return list(self.lines)

    def wait_for(self, wanted: Callable[[list[str]], bool], timeout: float = WAIT) -> list[str]:
        """The lines so far, once `wanted(lines)` holds (or the timeout passed)."""
        with self._changed:
            self._changed.wait_for(lambda: wanted(self.lines), timeout)
            return list(self.lines)


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[str, Lines]]:
    """`python -m streamproof.fake_providers --port 0`: its base URL ($FAKE) and what it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "streamproof.fake_providers", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
    )
    assert process.stdout is not None
    lines = Lines(process.stdout)
    try:
        first = lines.wait_for(bool)
        assert first, f"the fake printed nothing in {WAIT:g} s"
        found = re.search(r"http://127\.0\.0\.1:(\d+)/v1 ", first[0])
        assert found, first[0]
        yield f"http://127.0.0.1:{found.group(1)}", lines
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=WAIT)
        lines.closed()
    assert process.stderr is not None
    errors = process.stderr.read()
    process.stderr.close()
    assert process.returncode == 0, errors
    assert errors == ""


@pytest.mark.parametrize("example", EXAMPLES, ids=[_example_id(e) for e in EXAMPLES])
def test_docs_scenarios_example_prints_what_the_page_shows(example, fake):
    url, lines = fake
    with httpx.Client(trust_env=False) as client:
        printed = curl_examples.run(example, client, {"FAKE": url})
    assert curl_examples.matches(example.shown, printed), (
        f"docs/scenarios.md line {example.line}: the page shows\n{example.shown}\n\n"
        f"but the terminal would show\n{printed}"
    )
    if example.fake is None:
        return
    shown = [line for line in example.fake.splitlines() if line.strip()]
    tags = tuple(f" {model} #" for model in example.models)

    def mine(all_lines: list[str]) -> list[str]:
        return [line for line in all_lines if any(tag in line for tag in tags)]

    printed_lines = mine(lines.wait_for(lambda got: len(mine(got)) >= len(shown)))
    assert curl_examples.matches(example.fake, "\n".join(printed_lines)), (
        f"docs/scenarios.md line {example.line}: the page shows the fake printing\n"
        f"{example.fake}\n\nbut it printed\n" + "\n".join(printed_lines)
    )


def test_docs_scenarios_examples_have_ids_of_their_own():
    """Each example's requests name ids no other example uses, so that attempt numbers (and
    so chunk ids and `first-K`) do not depend on which examples ran before."""
    owner: dict[str, int] = {}
    for example in EXAMPLES:
        for model in example.models:
            try:
                scenario = Scenario.parse(model)
            except ScenarioError:
                continue  # refused before it is counted: no id
            assert scenario.nonce, f"line {example.line}: {model} has no id- token"
            assert owner.setdefault(scenario.nonce, example.line) == example.line, (
                f"line {example.line}: id-{scenario.nonce} is also used at line "
                f"{owner[scenario.nonce]}"
            )


def test_docs_scenarios_show_what_the_issue_asks_for():
    """The examples the page exists for are there, and run: a normal stream, a reset, a
    stall, slow chunks, a split, malformed SSE, a 429 with Retry-After, fail-then-succeed,
    dialects."""
    tokens = {token for e in EXAMPLES for model in e.models for token in model.split(".")}
    names = {token.split("-")[0] for token in tokens}
    for name in (
        "reset_after",
        "reset_before_headers",
        "stall_after",
        "slow",
        "chop",
        "split_utf8",
        "split_eol",
        "malformed",
        "nonobject",
        "upstream_error",
        "cut_inside",
        "first",
        "bom",
        "multiline",
        "fields",
        "comments",
        "nospace",
        "empty_data",
        "unterminated",
        "tools",
        "choices",
        "reject_stream_options",
    ):
        assert name in names, f"no example in docs/scenarios.md uses {name}"
    for token in ("status-429-2", "eol-crlf", "eol-cr", "usage-inchoice", "text-emoji"):
        assert token in tokens, f"no example in docs/scenarios.md uses {token}"


def test_docs_scenarios_name_every_token():
    """A token the code accepts and the page does not name is a page out of date."""
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z][a-z0-9_]*)(?:-[A-Za-z0-9_-]*)?`", text))
    tokens = {
        "id",
        "via",
        "chunks",
        "first",
        "eol",
        *FAULTS,
        *CONTENT_TOKENS,
        *FORMATS,
        *USAGE_TOKENS,
    }
    assert tokens <= named, f"not named in docs/scenarios.md: {sorted(tokens - named)}"
    for eol in EOL_NAMES:
        assert f"`eol-{eol}`" in text
    for dialect in USAGE_DIALECTS:
        assert f"`usage-{dialect}`" in text


def test_docs_scenarios_a_wrong_output_is_caught(fake):
    """The check can fail: the output of an example that prints the same every time (the
    models list), with one character changed, or a line left out without `…`, does not
    match what the fake prints."""
    url, _ = fake
    (example,) = [e for e in EXAMPLES if e.runs[0].url == "$FAKE/v1/models"]
    with httpx.Client(trust_env=False) as client:
        printed = curl_examples.run(example, client, {"FAKE": url})
    assert curl_examples.matches(example.shown, printed)
    assert not curl_examples.matches(example.shown.replace("fake", "fakf"), printed)
    assert not curl_examples.matches("", printed)
    assert not curl_examples.matches(example.shown + "\n{}", printed)
