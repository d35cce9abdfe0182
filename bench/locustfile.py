"""The chaos soak's load on Locust (`bench/soak_locust.py`): the workers' side.

A worker is Locust's own: `locust -f bench/locustfile.py --worker --master-host HOST
--master-port PORT` (`bench/soak_locust.py` starts them on this machine; on another machine
start them by hand). Each of its users sends one stream at a time, to the target the master
announces as Locust's host: it takes the next index from the worker's feed, draws the
schedule from (seed, index) as the single-process soak does (`soak_schedules.schedule`),
runs it with the same client behaviour over a blocking socket that gevent makes cooperative
(`soak_wire.exchange_blocking`, the same h11 conversation as the asyncio client's), and sends
what it received to the master (the message `soak_stream`), which judges it.

The feed: the master holds the indices; a worker asks for more (`soak_want`, with how many)
when it holds fewer than it has users, and the master answers (`soak_batch`) with the seed
and up to that many indices not yet handed out, or none when every index is out (or
`--max-seconds` has passed): each index runs once, on whichever worker asked first.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # loaded by `locust -f`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent.queue
from locust import User, constant, task
from locust.env import Environment
from locust.exception import StopUser
from locust.rpc.protocol import Message
from locust.runners import WorkerRunner

from bench.soak_client import STREAM_BOUND
from bench.soak_schedules import schedule
from bench.soak_wire import exchange_blocking, to_wire

WANT, BATCH, STREAM = "soak_want", "soak_batch", "soak_stream"  # the messages


class Feed:
    """A worker's indices in hand, topped up from the master in batches: it asks for more
    while, once its waiting users are served, it holds fewer than one per user."""

    def __init__(self, runner: WorkerRunner) -> None:
        self.runner = runner
        self.ready: gevent.queue.Queue[tuple[int, int] | None] = gevent.queue.Queue()
        self.waiting = 0  # users waiting for an index
        self.asked = False  # a `soak_want` is on its way: one at a time
        self.exhausted = False  # the master has handed out every index
        # How the master says to send each stream: the target's headers, and how long a
        # client waits on one (`soak_wire.exchange_blocking`).
        self.headers: dict[str, str] = {}
        self.bound = STREAM_BOUND
        runner.register_message(BATCH, self.on_batch)

    def take(self) -> tuple[int, int] | None:
        """The next (seed, index) to run, waiting for the master's batch; None: no more."""
        self._top_up()
        self.waiting += 1
        try:
            item: tuple[int, int] | None = self.ready.get()
        finally:
            self.waiting -= 1
        if item is None:
            self.ready.put(None)  # for the next user that asks
        return item

    def on_batch(self, environment: Environment, msg: Message, **kwargs: Any) -> None:
        self.asked = False
        seed, indices = msg.data["seed"], msg.data["indices"]
        self.headers, self.bound = dict(msg.data["headers"]), float(msg.data["bound"])
        for index in indices:
            self.ready.put((seed, index))
        if indices:
            self._top_up()
        else:
            self.exhausted = True
            self.ready.put(None)

    def _top_up(self) -> None:
        users = max(1, self.runner.user_count)
        spare = self.ready.qsize() - self.waiting
        if not self.asked and not self.exhausted and spare < users:
            self.asked = True
            self.runner.send_message(WANT, 2 * users - spare)


FEEDS: dict[int, Feed] = {}  # by id(environment): one per worker process


def feed_of(environment: Environment) -> Feed:
    """The worker's feed, made by its first user (before it first asks the master)."""
    feed = FEEDS.get(id(environment))
    if feed is None:
        runner = environment.runner
        if not isinstance(runner, WorkerRunner):
            raise RuntimeError("SoakUser runs on a Locust worker (bench/soak_locust.py)")
        feed = FEEDS[id(environment)] = Feed(runner)
    return feed


class SoakUser(User):
    """One stream at a time, each the schedule of an index the master handed out."""

    wait_time = constant(0)

    @task
    def stream(self) -> None:
        feed = feed_of(self.environment)
        item = feed.take()
        if item is None:
            raise StopUser()
        target = urlsplit(self.host or "")
        host, port = target.hostname or "127.0.0.1", target.port or 80
        s = schedule(*item)
        transcript, left = exchange_blocking(host, port, s, feed.bound, feed.headers)
        runner = self.environment.runner
        assert runner is not None
        runner.send_message(STREAM, to_wire(s, transcript, left))
        self.environment.events.request.fire(  # Locust's own statistics of the load
            request_type="POST",
            name=f"stream ({transcript.transport.value})",
            response_time=1000 * ((transcript.ended_at or transcript.sent_at) - transcript.sent_at),
            response_length=sum(len(a.data) for a in transcript.chunks),
            exception=None,
            context={},
        )
