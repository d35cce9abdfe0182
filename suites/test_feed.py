"""Group 6 — the WebSocket live channel: what a watcher of the proxy is told.

The seed is a proxy *dashboard*: people watch their streams live over `ws://HOST/ws`
(`{"type": "ping"}` answered by `{"type": "pong"}`). Its guide lists the failures people
hit — abnormal closures (1006), messages that are corrupted or not JSON — and its real
implementation broke when clients connected or left during a broadcast (docs/failures.md).

The protocol is the reference proxy's (docs/reference-proxy.md, "The live feed"); a target
that does not offer the feed has these cases skipped. Events are matched to streams by model: every
scenario's model name carries a fresh nonce.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from streamproof.harness import Exchange, Finding, Judge, SystemUnderTest, case, checks
from streamproof.harness.feed import AsyncFeed, FeedConnection, Message, Received, Refused
from streamproof.harness.targets import FEED_QUEUE, PROXY_KEY_VARIABLE
from streamproof.harness.transcript import Outcome
from streamproof.harness.upstream import (
    CloseAfter,
    Malformed,
    ResetAfter,
    Scenario,
    Slow,
    StallAfter,
    Status,
    UpstreamError,
)

FEED = "streamproof policy: the live feed (the seed dashboard's ws://localhost:8000/ws, done right)"
SEED = "the seed's guide, WebSocket Connection Issues"
WAIT = 5.0  # seconds: the bound on a message that should come at once


def _is(kind: str) -> Callable[[Message], bool]:
    return lambda message: message.get("type") == kind


def _ended_all(models: set[str]) -> Callable[[Message], bool]:
    """A predicate for `until`: true once a stream_ended came for every model."""
    left = set(models)

    def done(message: Message) -> bool:
        stream = message.get("stream")
        if message.get("type") == "stream_ended" and isinstance(stream, dict):
            left.discard(stream.get("model"))
        return not left

    return done


@contextmanager
def _watching(sut: SystemUnderTest, judge: Judge) -> Iterator[FeedConnection]:
    """A feed client that has had its `init`; what it received goes into the report."""
    with sut.feed() as feed:
        try:
            feed.until(_is("init"), WAIT)
            yield feed
        finally:
            judge.attach("feed", feed.received.describe())


def _answered(exchanges: list[Exchange]) -> Finding:
    done = sum(1 for x in exchanges if x.transcript.outcome is Outcome.DONE)
    return Finding(
        done == len(exchanges),
        "every stream was answered to its end",
        f"{done} of {len(exchanges)} ended with [DONE]",
    )


def _run_streams(sut: SystemUnderTest, count: int, scenario: Scenario, workers: int = 8) -> Any:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: sut.chat(scenario), range(count)))


@case(
    "6.1",
    "On connect, the feed sends its snapshot first",
    requirement="On connect an `init` snapshot (health report, recent streams); every server "
    "message is one JSON object with a `seq` that starts at 1.",
    source=FEED,
    expected="the first message is init, seq 1, with the health report and its recent streams",
)
def test_init_snapshot(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed")
    with sut.feed() as feed:
        first = feed.until(lambda message: True, WAIT)
        judge.attach("feed", feed.received.describe())
    judge.check(checks.is_init(first), checks.frames_are_json_objects(feed.received))


@case(
    "6.2",
    "A ping is answered by a pong",
    requirement='`{"type": "ping"}` is answered by `{"type": "pong"}` (the seed: "Send: '
    '{"type": "ping"} — Should receive: {"type": "pong"}"), with the ping\'s id, next in seq.',
    source=SEED,
    expected="three pings (ids 1, 'two', 3.5), three pongs with the same ids, seq gap-free",
)
def test_ping_pong(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed")
    findings = []
    with _watching(sut, judge) as feed:
        for ping_id in (1, "two", 3.5):
            feed.send({"type": "ping", "id": ping_id})
            reply = feed.until(lambda m: m.get("type") in ("pong", "error"), WAIT)
            findings.append(checks.pong_answers(reply, ping_id, len(feed.received.messages)))
    judge.check(*findings, checks.seq_gap_free(feed.received))


BAD_MESSAGES = [
    pytest.param("ping", id="not-json"),
    pytest.param('{"type": "ping"', id="cut-json"),
    pytest.param("[1, 2]", id="array"),
    pytest.param('"ping"', id="string"),
    pytest.param('{"id": 1}', id="no-type"),
    pytest.param('{"type": 5}', id="type-not-a-string"),
    pytest.param('{"type": "subscribe"}', id="unknown-type"),
    pytest.param(b"\x00\x01binary", id="binary"),
    pytest.param("[" * 60_000, id="nested-60k-deep"),
]


@case(
    "6.3",
    "A bad message gets an error reply, and the connection stays open",
    requirement="Invalid JSON or an unknown type gets an `error` message and the connection "
    "stays open (the seed's guide: messages that arrive corrupted or not as JSON).",
    source=FEED,
    expected="an error message with a code; a ping after it is answered on the same connection",
)
@pytest.mark.parametrize("bad", BAD_MESSAGES)
def test_bad_message(sut: SystemUnderTest, judge: Judge, bad: str | bytes) -> None:
    sut.needs("feed")
    with _watching(sut, judge) as feed:
        feed.send(bad)
        reply = feed.until(lambda m: m.get("type") in ("error", "pong"), WAIT)
        feed.send({"type": "ping", "id": "after"})
        pong = feed.until(_is("pong"), WAIT)
    judge.check(
        checks.error_reply(reply),
        checks.still_open(feed.received, pong is not None),
        checks.seq_gap_free(feed.received),
    )


STREAMS = 150  # 300 events


@case(
    "6.4",
    "seq has no gap across hundreds of events",
    requirement="Every server message has a `seq` that increases by one per connection, so "
    "a client can prove it missed nothing — also under load.",
    source=FEED,
    expected=f"{STREAMS} streams, 8 at a time: one start and one end each, seq 1..N in order",
)
def test_seq_gap_free(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed")
    with _watching(sut, judge) as feed:
        exchanges = _run_streams(sut, STREAMS, Scenario(chunks=3))
        models = {x.scenario.model for x in exchanges}
        feed.until(_ended_all(models), WAIT)
    judge.check(
        _answered(exchanges),
        checks.frames_are_json_objects(feed.received),
        checks.seq_gap_free(feed.received),
        checks.stream_events(feed.received.messages, models),
    )


OUTCOMES = [
    Scenario(chunks=5),
    Scenario(chunks=6, faults=(ResetAfter(3),)),
    Scenario(chunks=6, faults=(StallAfter(3),)),
    Scenario(chunks=6, faults=(CloseAfter(3),)),
    Scenario(chunks=6, faults=(Malformed(3),)),
    Scenario(chunks=6, faults=(UpstreamError(3, "object"),)),
    Scenario(chunks=6, faults=(Status(400),)),
    Scenario(chunks=6, faults=(Status(500),)),
]


@case(
    "6.5",
    "Each stream's events say what really happened to it",
    requirement="Events for a stream's start and end (outcome, error class, chunks, tokens, "
    "duration), matching what the client saw.",
    source=FEED,
    expected="for a success, a reset, a stall, a truncation, malformed data, an error event, a "
    "400, a 500, a non-streaming answer and a client that leaves: one start, one end, "
    "and the end's result, status and chunks are the client's",
)
def test_events_match_outcomes(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed")
    with _watching(sut, judge) as feed:
        exchanges = [sut.chat(scenario) for scenario in OUTCOMES]
        exchanges.append(sut.chat(Scenario(chunks=4), stream=False))
        exchanges.append(sut.chat(Scenario(chunks=40, faults=(Slow(20),)), leave_after_events=3))
        models = {x.scenario.model for x in exchanges}
        feed.until(_ended_all(models), WAIT)
    for x in exchanges:
        judge.attach(x.scenario.model, x.transcript.summary())
    judge.check(
        checks.stream_events(feed.received.messages, models),
        checks.events_agree(feed.received.messages, exchanges),
    )


@case(
    "6.6",
    "Every stream of the run had its events, and no key was ever sent",
    requirement="An event for every stream the other suites ran, matching its real outcome; "
    "no secret ever appears in a message.",
    source=FEED,
    expected="a client connected since the session began got, for every stream the proxy "
    "dispatched, one start and one end that agrees with its client; seq gap-free; no key",
)
@pytest.mark.after_the_others
def test_every_stream_of_the_run(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed")
    recorder = sut.recorder
    if recorder is None:
        judge.check(Finding(False, "a feed client connected since the start", sut.recorder_error))
        return
    # A few streams of its own, so that the case never judges nothing.
    for scenario in OUTCOMES[:3]:
        sut.chat(scenario)
    # The streams the proxy dispatched (the upstream saw them); a request it refused
    # itself (a 4xx for a bad body) is not a stream.
    exchanges = [x for x in sut.exchanges if x.attempts]
    models = {x.scenario.model for x in exchanges}
    recorder.wait_for(lambda messages: not _missing(messages, models), WAIT)
    received = recorder.received
    judge.attach("feed", received.describe())
    judge.check(
        checks.frames_are_json_objects(received),
        checks.seq_gap_free(received),
        checks.stream_events(recorder.messages(), models),
        checks.events_agree(recorder.messages(), exchanges),
        checks.no_secret(received.raw, sut.secrets),
    )


def _missing(messages: list[Message], models: set[str]) -> set[str]:
    return models - set(checks.ended_events(messages))


STEADY = 8  # clients connected throughout
CHURNERS = 4  # concurrent loops of clients that come and go, until the streams end
MIN_CHURN_ROUNDS = 10  # connections per loop at least
CHURN_STREAMS = 40


@case(
    "6.7",
    "Clients that come and go do not disturb the broadcast",
    requirement="A broadcast is safe while clients connect and leave (the seed's broadcast "
    "iterated a set that changed under it).",
    source="docs/failures.md: WebSocket broadcast iterated a set that changed under it",
    expected=f"{STEADY} steady clients each get every event of {CHURN_STREAMS} streams exactly "
    f"once, seq gap-free, while {CHURNERS} loops of other clients connect and leave "
    "(cleanly, by reset, or right after the handshake) for as long as the streams last",
)
def test_churn(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed")
    steady, churned, exchanges = asyncio.run(_churn(sut))
    models = {x.scenario.model for x in exchanges}
    events = [len(client.messages) for client in steady]
    judge.attach(
        "figures",
        f"{STEADY} steady clients, {len(churned)} churned connections, {len(exchanges)} streams; "
        f"messages per steady client: {min(events)}..{max(events)}; churned clients got "
        f"{sum(len(c.messages) for c in churned)} messages in all",
    )
    findings = [
        _answered(exchanges),
        Finding(
            len(churned) >= CHURNERS * MIN_CHURN_ROUNDS,
            "clients came and went during the streams",
            f"{len(churned)} connections came and went; each steady client got "
            f"{min(events)}..{max(events)} messages",
        ),
    ]
    for number, client in enumerate(steady, start=1):
        for finding in (
            checks.frames_are_json_objects(client),
            checks.seq_gap_free(client),
            checks.stream_events(client.messages, models),
        ):
            check = f"steady client {number}: {finding.check}"
            findings.append(Finding(finding.ok, check, finding.observed))
    gaps = [c for c in churned if not checks.seq_gap_free(c).ok]
    findings.append(
        Finding(
            not gaps,
            "every churned client's messages are gap-free",
            f"{len(churned) - len(gaps)} of {len(churned)} gap-free"
            + (f"; e.g. {checks.seq_gap_free(gaps[0]).observed}" if gaps else ""),
        )
    )
    judge.check(*findings)


async def _churn(sut: SystemUnderTest) -> tuple[list[Received], list[Received], list[Exchange]]:
    steady = [await AsyncFeed(sut.base_url, sut.headers).open() for _ in range(STEADY)]
    for client in steady:
        await client.until(_is("init"), WAIT)
    # From here on the steady clients' frames wait in their connections' queues (the
    # client reads them off the socket as they come) until the streams are done.
    loop = asyncio.get_running_loop()
    churned: list[Received] = []
    streaming = True

    async def churn(way: int) -> None:
        round_ = 0
        while streaming or round_ < MIN_CHURN_ROUNDS:
            client = await AsyncFeed(sut.base_url, sut.headers).open()
            churned.append(client.received)
            leave = (way + round_) % 3
            round_ += 1
            if leave == 0:  # right after the handshake, reading nothing
                await client.close()
                continue
            await client.until(_is("init"), WAIT)
            if leave == 1:
                await client.close()
            else:  # after one more message, if one comes soon, by a TCP reset
                await client.until(lambda m: True, 0.05)
                client.abort()

    with ThreadPoolExecutor(8) as pool:
        streams = [
            loop.run_in_executor(pool, sut.chat, Scenario(chunks=8, faults=(Slow(5),)))
            for _ in range(CHURN_STREAMS)
        ]
        churning = asyncio.gather(*(churn(way) for way in range(CHURNERS)))
        exchanges = list(await asyncio.gather(*streams))
        streaming = False
        await churning
    models = {x.scenario.model for x in exchanges}
    for client in steady:
        await client.until(_ended_all(models), WAIT)
        await client.close()
    return [c.received for c in steady], churned, exchanges


STALL_STREAMS = 250  # 500 events: the reference proxy drops the stalled client at about 235


@case(
    "6.8",
    "A client that stops reading slows nobody, and is dropped",
    requirement="A slow client has a bounded queue and is dropped (with a close code and "
    "reason) rather than slowing streams or other clients.",
    source=FEED,
    expected=f"while one client reads nothing, {STALL_STREAMS} streams all end and a second "
    "client gets every event; the stalled client, reading at last, finds a gap-free prefix of the "
    "events, then a close with 1008 and a reason (with the harness's config: it held at "
    f"most {FEED_QUEUE} messages more than its buffers)",
)
def test_stalled_reader(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed")
    stalled = sut.stalled_feed()
    try:
        with _watching(sut, judge) as healthy:
            exchanges = _run_streams(sut, STALL_STREAMS, Scenario(chunks=2))
            models = {x.scenario.model for x in exchanges}
            healthy.until(_ended_all(models), WAIT)
        stalled.read_all(WAIT)
    finally:
        stalled.close()
    judge.attach("stalled client", stalled.received.describe())
    reading = checks.stream_events(healthy.received.messages, models)
    findings = [
        _answered(exchanges),
        Finding(reading.ok, f"the client that reads: {reading.check}", reading.observed),
        checks.seq_gap_free(stalled.received),
    ]
    if "config" in sut.offers:
        findings.append(
            checks.closed_with(stalled.received, (1008,), "a client too slow for its queue")
        )
    judge.check(*findings)


@case(
    "6.9",
    "Close codes say why",
    requirement="The close codes used: a message too big is closed with 1009; a proxy that "
    "shuts down closes with 1001 or 1012, never by dropping the connection (1006).",
    source="RFC 6455, 7.4.1",
    expected="a 1 MiB message: 1009; the proxy stopped: 1001 or 1012",
)
def test_close_codes(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed")
    with _watching(sut, judge) as feed:
        feed.send("x" * (1 << 20))
        feed.drain(WAIT)
    findings = [checks.closed_with(feed.received, (1009,), "message too big", reason=False)]
    with sut.fresh() as fresh:
        watcher = fresh.feed()
        watcher.until(_is("init"), WAIT)
    # The block stopped the fresh proxy (SIGTERM, then it shuts down gracefully).
    watcher.drain(WAIT)
    watcher.close()
    judge.attach("at shutdown", watcher.received.describe())
    findings.append(
        checks.closed_with(watcher.received, (1001, 1012), "shutting down", reason=False)
    )
    judge.check(*findings)


@case(
    "6.10",
    "The feed wants the proxy's key, and never sends one",
    requirement="The proxy key is required when one is configured; no secret ever appears "
    "in a message.",
    source=FEED,
    expected="no key: auth_required, then 1008 on a wrong key; a wrong key in the handshake: "
    "refused (401); the key in the handshake or in an auth message: init; no key in any message",
)
def test_feed_key(sut: SystemUnderTest, judge: Judge) -> None:
    sut.needs("feed", "config")
    # Fresh for the case, unless set by the user (e.g. to plant a canary key).
    key = os.environ.get(PROXY_KEY_VARIABLE) or "sk-proxy-" + secrets.token_hex(16)
    findings = []
    with sut.fresh(proxy_key=key) as keyed:
        received: list[Received] = []
        # The handshake without a key, then a wrong key in the auth message.
        no_auth = FeedConnection(keyed.base_url)
        first = no_auth.until(lambda m: True, WAIT)
        no_auth.send({"type": "auth", "key": "wrong-" + key})
        no_auth.drain(WAIT)
        received.append(no_auth.received)
        findings.append(
            Finding(
                (first or {}).get("type") == "auth_required",
                "without a key, the feed asks for one",
                f"first message: {first}",
            )
        )
        findings.append(checks.closed_with(no_auth.received, (1008,), "a wrong key"))
        # A wrong key in the handshake.
        try:
            FeedConnection(keyed.base_url, headers={"Authorization": "Bearer nope"}).close()
            refused = "upgraded"
        except Refused as exc:
            refused = f"HTTP {exc.status}"
        findings.append(
            Finding(refused in ("HTTP 401", "HTTP 403"), "a wrong key is refused", refused)
        )
        # The right key, in the auth message and in the handshake.
        by_message = FeedConnection(keyed.base_url)
        by_message.until(_is("auth_required"), WAIT)
        by_message.send({"type": "auth", "key": key})
        init = by_message.until(_is("init"), WAIT)
        by_message.close()
        received.append(by_message.received)
        findings.append(
            Finding(
                init is not None,
                "the key in an auth message opens the feed",
                by_message.received.describe(3),
            )
        )
        with keyed.feed() as by_header:  # the SUT's headers carry the key
            init = by_header.until(lambda m: True, WAIT)
            keyed.chat(Scenario(chunks=3))
            by_header.until(_is("stream_ended"), WAIT)
        received.append(by_header.received)
        findings.append(checks.is_init(init))
    for number, r in enumerate(received, start=1):
        judge.attach(f"client {number}", r.describe())
    findings.append(checks.no_secret((t for r in received for t in r.raw), [key, *sut.secrets]))
    judge.check(*findings)
