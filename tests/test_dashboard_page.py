"""The reference proxy's dashboard page in headless Chromium, on a feed the test drives.

The page and its script are served as the proxy serves them (its routes, its static
headers), with the live feed on a `Health` whose requests the test begins and ends itself,
on the server's event loop, and whose wall clock it sets: the numbers the page must show
are known exactly. uvicorn runs on a thread, on a socket bound to 127.0.0.1:0 before it
starts; every wait is on a condition in the page, never on time.

Checked: the alert's text says the figures of the headline next to it, also after more
requests arrive (the seed's page kept the figures of the alert's raise); the chart is drawn
(bars in their colours, the success rate's line, its axes and legend) and says its numbers
in text; the page formats a percentage as the proxy's messages do; and it runs under its
own Content-Security-Policy. Skipped, saying why, without Chromium or Playwright.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from streamproof.proxy.app import dashboard, dashboard_script
from streamproof.proxy.config import FeedConfig, HealthConfig
from streamproof.proxy.feed import Feed, websocket_protocol
from streamproof.proxy.health import Health, Outcome, percent
from tests.test_report_render import decode

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not on PATH (apt-get install -y chromium): the dashboard page "
        "is not checked",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="Playwright is not installed (pip install playwright): no browser to drive",
    ),
]
WAIT_MS = 10_000
POLL_MS = 50
THRESHOLDS = HealthConfig(
    window=20,
    min_requests=10,
    min_success_rate=0.95,
    max_consecutive_failures=0,
    min_chunks_per_stream=0,
)
# The chart's colours (proxy/static/index.html).
BAR_OK, BAR_FAILED, RATE_LINE = (0x4A, 0xC2, 0x6B), (0xE5, 0x53, 0x4B), (0x09, 0x69, 0xDA)
T = TypeVar("T")


class ThreadedServer(uvicorn.Server):
    """uvicorn on its own thread; `ready` is set once it serves, `loop` is its loop."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.loop = asyncio.get_running_loop()
        self.ready.set()


@dataclass
class Board:
    """The served dashboard and the `Health` behind its feed, with a wall clock to set."""

    url: str
    health: Health
    server: ThreadedServer
    now: list[float] = field(default_factory=lambda: [time.time()])

    def on_loop(self, function: Callable[[], T]) -> T:
        """Run `function` on the server's event loop, as the proxy's own code runs."""

        async def call() -> T:
            return function()

        assert self.server.loop is not None
        return asyncio.run_coroutine_threadsafe(call(), self.server.loop).result(WAIT_MS / 1000)

    def finish(self, *outcomes: Outcome) -> None:
        """Begin and end one streamed request per outcome, in order."""

        def run() -> None:
            for outcome in outcomes:
                started = self.health.begin("m", stream=True, endpoint="/v1/chat/completions")
                self.health.end(started, outcome)

        self.on_loop(run)


def ok() -> Outcome:
    return Outcome.success(chunks=6, attempts=1, provider="fake")


def failed() -> Outcome:
    return Outcome.failure(200, "ReadError", "upstream_reset", "fake: reset", chunks=2)


@pytest.fixture
def board() -> Iterator[Board]:
    clock: list[float] = [time.time()]
    health = Health(THRESHOLDS, clock=lambda: clock[0])
    feed = Feed(health, FeedConfig())
    app = Starlette(
        routes=[
            Route("/", dashboard, methods=["GET"]),
            Route("/dashboard.js", dashboard_script, methods=["GET"]),
            WebSocketRoute("/ws", feed),
        ]
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws=websocket_protocol(FeedConfig().send_buffer),
    )
    server = ThreadedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert server.ready.wait(WAIT_MS / 1000), "the dashboard's server did not start"
    host, port = sock.getsockname()
    try:
        yield Board(f"http://{host}:{port}", health, server, clock)
    finally:
        server.should_exit = True
        thread.join(WAIT_MS / 1000)
        sock.close()


@contextlib.contextmanager
def browser_page(csp: bool) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            # Playwright's waits evaluate code, which the page's CSP forbids: lifted for
            # the driver unless the test is about the CSP itself.
            context = browser.new_context(viewport={"width": 1100, "height": 900}, bypass_csp=csp)
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            browser.close()


@pytest.fixture
def page() -> Iterator[Any]:
    with browser_page(csp=True) as page:
        yield page


def wait(page: Any, condition: str, arg: Any = None) -> None:
    """Wait for a JavaScript condition, checked every 50 ms (a headless page that does not
    repaint has no animation frames for Playwright's default polling)."""
    page.wait_for_function(condition, arg=arg, polling=POLL_MS)


def wait_headline(page: Any, rate: str, requests: int) -> None:
    wait(
        page,
        "([rate, window]) => document.getElementById('success-rate').textContent === rate && "
        "document.getElementById('window').textContent.startsWith(window)",
        [rate, f"over the last {requests} requests"],
    )


def shown(page: Any) -> dict[str, Any]:
    """What the page shows in its headline, its alerts and its chart, read at one moment."""
    result: dict[str, Any] = page.evaluate(
        """() => {
            const text = (selector) => [...document.querySelectorAll(selector)]
                .map((element) => element.textContent);
            const counts = (selector) => [...document.querySelectorAll(selector)]
                .reduce((sum, element) => sum + Number(element.dataset.count), 0);
            const chart = document.getElementById('chart');
            return {
                rate: document.getElementById('success-rate').textContent,
                window: document.getElementById('window').textContent,
                status: document.getElementById('status').textContent,
                alerts: text('#alerts li .message'),
                names: text('#alerts li .name'),
                noAlerts: document.getElementById('no-alerts').hidden === false,
                bars: {
                    ok: counts('#chart rect.bar-ok'),
                    failed: counts('#chart rect.bar-failed'),
                    left: counts('#chart rect.bar-left'),
                },
                lines: document.querySelectorAll('#chart polyline.rate').length,
                dots: document.querySelectorAll('#chart circle.rate-dot').length,
                threshold: document.querySelectorAll('#chart line.threshold').length,
                labels: text('#chart text'),
                chartRequests: chart.dataset.requests,
                chartRate: chart.dataset.rate,
                summary: document.getElementById('chart-summary').textContent,
                table: [...document.querySelectorAll('#chart-data tr')]
                    .map((row) => [...row.cells].slice(1).map((c) => c.textContent)),
            };
        }"""
    )
    return result


def test_dashboard_alert_says_the_headline_figures_as_requests_arrive(
    board: Board, page: Any
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(board.url + "/")
    wait(page, "() => window.streamproofFeed && window.streamproofFeed.seq >= 1")

    # A minute ago: 12 requests, every third one failing; the alert is raised at the 10th
    # (7 of 10) and must follow to 8 of 12.
    board.now[0] = time.time() - 60
    board.finish(*[ok(), ok(), failed()] * 4)
    wait_headline(page, "66.7 %", 12)
    first = shown(page)
    assert first["alerts"] == ["success rate 66.7 % is below 95.0 % over the last 12 requests"]
    assert first["names"] == ["low_success_rate"]
    assert first["status"] == "status: degraded · 1 consecutive failure"

    # Now: 4 more, 2 failing: 10 of 16. The seed's page still said 70.0 % of 10 here.
    board.now[0] = time.time()
    board.finish(ok(), failed(), ok(), failed())
    wait_headline(page, "62.5 %", 16)
    second = shown(page)
    assert second["alerts"] == ["success rate 62.5 % is below 95.0 % over the last 16 requests"]
    assert second["window"] == "over the last 16 requests (window 20)"

    # The chart: two buckets, a minute apart, with the rate after each.
    assert second["bars"] == {"ok": 10, "failed": 6, "left": 0}
    assert second["table"] == [["8", "4", "0", "56", "66.7 %"], ["2", "2", "0", "16", "62.5 %"]]
    assert (second["lines"], second["dots"], second["threshold"]) == (1, 2, 1)
    for label in ("requests / 5 s", "success rate", "now", "\u22122 min", "100 %"):
        assert label in second["labels"], label
    assert page.text_content("#legend-threshold") == "alert below 95.0 %"
    assert (second["chartRequests"], second["chartRate"]) == ("16", "0.625")
    assert "16 requests ended in the last 120 s" in second["summary"]
    assert "10 ok, 6 failed, 0 left by the client; 72 chunks" in second["summary"]
    assert second["summary"].endswith(
        "Success rate now 62.5 % over the last 16 requests; the alert is below 95.0 %."
    )
    image = decode(page.locator("#chart").screenshot())
    assert not image.blank()
    for colour in (BAR_OK, BAR_FAILED, RATE_LINE):
        assert image.has(colour, tolerance=8, pixels=12), colour

    # The window (20) fills with successes: the alert clears with the rate back at 100 %.
    board.finish(*[ok()] * 20)
    wait_headline(page, "100.0 %", 20)
    cleared = shown(page)
    assert (cleared["alerts"], cleared["noAlerts"]) == ([], True)
    assert cleared["status"] == "status: ok"
    assert cleared["bars"] == {"ok": 30, "failed": 6, "left": 0}
    assert not errors, errors


def test_dashboard_chart_draws_what_it_is_sent_on_connect(board: Board, page: Any) -> None:
    """A page opened later draws the history from the report's timeline, with the rate as
    it stood before the oldest bucket shown."""
    board.now[0] = time.time() - 300  # forgotten by the chart, but not its rate
    board.finish(ok(), failed())
    board.now[0] = time.time() - 30
    board.finish(ok(), Outcome.cancelled(200, chunks=1))
    board.now[0] = time.time()
    page.goto(board.url + "/")
    wait(page, "() => document.getElementById('chart').dataset.requests === '2'")
    state = shown(page)
    assert state["bars"] == {"ok": 1, "failed": 0, "left": 1}
    assert state["table"] == [["1", "0", "1", "7", "66.7 %"]]
    assert state["rate"] == "66.7 %"
    assert state["chartRate"] == str(2 / 3)
    assert state["noAlerts"]  # 3 requests: fewer than min_requests


def test_dashboard_page_writes_a_percentage_as_the_proxy_does(board: Board, page: Any) -> None:
    page.goto(board.url + "/")
    wait(page, "() => window.streamproofFeed && window.streamproofFeed.seq >= 1")
    fractions = [k / n for n in range(1, 65) for k in range(n + 1)]
    written = page.evaluate("(fractions) => fractions.map(percent)", fractions)
    differ = [
        (f, w, percent(f)) for f, w in zip(fractions, written, strict=True) if w != percent(f)
    ]
    assert not differ, differ[:5]


def test_dashboard_runs_under_its_own_content_security_policy(board: Board) -> None:
    """No driver exemption: the chart is built with the DOM alone, nothing the CSP refuses."""
    with browser_page(csp=False) as page:
        refused: list[str] = []
        page.on(
            "console",
            lambda message: (
                refused.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        board.finish(ok(), failed())
        page.goto(board.url + "/")
        page.wait_for_selector("#chart rect.bar-failed", state="attached")
        page.wait_for_selector("#chart polyline.rate", state="attached")
        assert page.text_content("#success-rate") == "50.0 %"
        assert not refused, refused
        assert not errors, errors
