"""Group 6, continued — the dashboard page, in a real browser.

Headless Chromium (Debian's `chromium`) loads the target's dashboard through a relay the
case can cut (`harness.cutter`): a stream runs and the page must show it; the connection is
cut, and the page must say it is reconnecting; it is restored, and the page must come back
without duplicating anything: the seed's page re-registered its send handler on every
reconnect, so its messages went out more than once (docs/failures.md).

The page is the reference proxy's (it exposes what it has seen as `window.streamproofFeed`);
a target that does not offer it has this case skipped, and so does a machine without
Chromium or Playwright, saying which. Screenshots go to `<report dir>/dashboard/`.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamproof.harness import Finding, Judge, SystemUnderTest, case
from streamproof.harness.cutter import Cutter
from streamproof.harness.upstream import ResetAfter, Scenario

WAIT_MS = 10_000  # the bound on anything the page should show (its backoff starts at 0.5 s)
POLL_MS = 50
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh headless Chromium page (Playwright driving Debian's chromium)."""
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("Playwright is not installed (pip install playwright): no browser to drive")
    if CHROMIUM is None:
        pytest.skip("Chromium is not on PATH (apt-get install -y chromium): no browser to drive")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            # The page's CSP forbids eval, which Playwright's waits use: lifted for the
            # driver only (the page's own script never needs it).
            context = browser.new_context(viewport={"width": 1100, "height": 760}, bypass_csp=True)
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            browser.close()


def _rows(page: Any, model: str) -> int:
    return int(page.locator(f'#streams tr[data-model="{model}"]').count())


def _wait(page: Any, condition: str, arg: Any = None) -> None:
    """Wait for a JavaScript condition, checked every 50 ms: Playwright's default is to
    check on animation frames, which a headless page that does not repaint never has."""
    page.wait_for_function(condition, arg=arg, polling=POLL_MS)


def _wait_row(page: Any, model: str, result: str) -> None:
    selector = f'#streams tr[data-model="{model}"][data-result="{result}"]'
    _wait(page, "(selector) => document.querySelector(selector) !== null", selector)


@case(
    "6.11",
    "The dashboard shows streams live, and reconnects without doing anything twice",
    requirement="A dashboard page at / shows live success rate, active streams, recent streams "
    "with their outcome, failures by error class and alerts; it reconnects with backoff after "
    "a drop without duplicating its handlers, and shows that it is reconnecting.",
    source="docs/failures.md: the page's client re-registered its send handler on every reconnect",
    expected="in headless Chromium: a stream's row appears with its result; after a cut the "
    "page says it is reconnecting; after the restore it reconnects, shows each stream once, "
    "one click on Ping sends one ping and gets one pong, and every seq came in order",
)
def test_dashboard_in_a_browser(
    sut: SystemUnderTest, judge: Judge, page: Any, report_dir: Path
) -> None:
    sut.needs("feed", "dashboard")
    shots = report_dir / "dashboard"
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    with Cutter(sut.base_url) as cutter:
        page.goto(cutter.url + "/")
        _wait(page, "() => window.streamproofFeed && window.streamproofFeed.seq >= 1")
        ok = sut.chat(Scenario(chunks=6))
        failed = sut.chat(Scenario(chunks=6, faults=(ResetAfter(3),)))
        _wait_row(page, ok.scenario.model, "success")
        _wait_row(page, failed.scenario.model, "failure")
        page.screenshot(path=str(shots / "1-live.png"))

        cutter.cut()
        _wait(page, "() => document.getElementById('connection').dataset.state === 'reconnecting'")
        reconnecting = page.text_content("#connection")
        page.screenshot(path=str(shots / "2-reconnecting.png"))
        cutter.restore()
        _wait(
            page,
            "() => window.streamproofFeed.connection >= 2 && window.streamproofFeed.seq >= 1 && "
            "document.getElementById('connection').dataset.state === 'connected'",
        )
        page.click("#ping")
        _wait(page, "() => window.streamproofFeed.pongs >= 1")
        # Any second pong was queued before this stream began: once its row is there, the
        # page has had every pong it will get.
        after = sut.chat(Scenario(chunks=6))
        _wait_row(page, after.scenario.model, "success")
        feed = page.evaluate("({...window.streamproofFeed})")
        rows = {x.scenario.model: _rows(page, x.scenario.model) for x in (ok, failed, after)}
        page.screenshot(path=str(shots / "3-reconnected.png"), full_page=True)
    judge.attach(
        "the page",
        f"feed state: {feed}\nrows per stream: {rows}\nwhile cut: {reconnecting!r}\n"
        f"connections relayed {cutter.relayed}, refused while cut {cutter.refused}\n"
        f"screenshots: {', '.join(sorted(p.name for p in shots.glob('*.png')))} in {shots}"
        + (f"\npage errors: {errors}" if errors else ""),
    )
    judge.check(
        Finding(
            all(count == 1 for count in rows.values()),
            "each stream is shown once, before and after the reconnect",
            f"rows per stream: {list(rows.values())}",
        ),
        Finding(
            "reconnecting" in (reconnecting or ""),
            "the page says it is reconnecting",
            f"while cut it said {reconnecting!r}",
        ),
        Finding(
            feed["connection"] >= 2 and (feed["pings"], feed["pongs"]) == (1, 1),
            "one click, one ping, one pong, on the new connection",
            f"connection {feed['connection']}: {feed['pings']} pings sent, {feed['pongs']} pongs",
        ),
        Finding(
            feed["seqErrors"] == 0 and feed["messages"] == feed["seq"],
            "every message handled once, in seq order",
            f"{feed['messages']} messages handled for seq {feed['seq']}, "
            f"{feed['seqErrors']} seq errors",
        ),
        Finding(not errors, "no script error on the page", f"{len(errors)} errors: {errors[:2]}"),
    )
