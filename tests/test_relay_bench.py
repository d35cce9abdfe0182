"""The relay bench's client (`bench/relay_client.py`) against a scripted server on
127.0.0.1:0: it opens a keep-alive connection again when the server closed it between two
responses, as HTTP clients do, and still counts a close in the middle of a response as a
failed stream. Nothing here waits on time: each server answers or closes as scripted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from bench.relay_client import HTTPFailure, Lane, Response, Route

EVENTS = (b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', b"data: [DONE]\n\n")


def answer(*, close: bool = False, cut: bool = False) -> bytes:
    """A chunked event stream of EVENTS; `close` says `Connection: close`; `cut` stops in
    the middle of the second event."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    head += b"connection: close\r\n\r\n" if close else b"\r\n"
    if cut:
        return head + b"%x\r\n%s\r\n" % (len(EVENTS[0]), EVENTS[0]) + b"f\r\ndata: {"
    body = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in EVENTS)
    return head + body + b"0\r\n\r\n"


async def read_request(reader: asyncio.StreamReader) -> bool:
    """One request read whole; False when the client hung up instead."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    length = next(
        int(line.partition(b":")[2])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return True


# What the server does with the n-th request of a connection (from 1): the bytes to write,
# then whether to close the connection.
Script = Callable[[int], tuple[bytes, bool]]


@asynccontextmanager
async def server(script: Script) -> AsyncIterator[tuple[int, list[int]]]:
    """A server on 127.0.0.1:0 that follows `script` on every connection; yields its port and
    the number of requests each connection read, by connection. On the way out it waits for
    every connection to end (the client hangs up, or the script closed it)."""
    connections: list[int] = []
    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        connections.append(0)
        me = len(connections) - 1
        try:
            while await read_request(reader):
                connections[me] += 1
                data, close = script(connections[me])
                writer.write(data)
                await writer.drain()
                if close:
                    break
        finally:
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield listening.sockets[0].getsockname()[1], connections
    finally:
        await asyncio.gather(*handlers)
        listening.close()
        await listening.wait_closed()


async def streams(script: Script, count: int) -> tuple[list[Response | str], list[int], int]:
    """`count` streams one after another on one lane: each response (or its failure's
    message), the server's requests per connection, and the lane's reconnects."""
    got: list[Response | str] = []
    async with server(script) as (port, connections):
        lane = await Lane(Route("direct", port)).open()
        request = lane.route.request("streamproof.chunks-2")
        try:
            for _ in range(count):
                try:
                    got.append(await lane.fetch(request))
                except HTTPFailure as exc:
                    got.append(str(exc))
        finally:
            lane.close()
    return got, list(connections), lane.reconnects


def whole(response: Response | str) -> bool:
    return (
        isinstance(response, Response)
        and response.done
        and response.status == 200
        and response.events == len(EVENTS)
    )


def test_a_connection_closed_after_connection_close_is_opened_again() -> None:
    # nginx's way: the 1,000th response of a connection says `Connection: close` (here the
    # 3rd), then the server closes its side.
    got, connections, reconnects = asyncio.run(streams(lambda n: (answer(close=n == 3), n == 3), 7))
    assert all(whole(response) for response in got)
    assert connections == [3, 3, 1]
    assert reconnects == 2


def test_a_request_on_a_connection_closed_without_notice_is_sent_again() -> None:
    # The server reads the 3rd request of a connection, then closes without a byte of an
    # answer (a keep-alive timeout racing the request): the request goes again, once, on a
    # new connection, and no stream fails.
    got, connections, reconnects = asyncio.run(
        streams(lambda n: (b"", True) if n == 3 else (answer(), False), 4)
    )
    assert all(whole(response) for response in got)
    assert connections == [3, 2]  # the 3rd request of the first again, as the next one's 1st
    assert reconnects == 1


def test_a_close_in_the_middle_of_a_response_is_a_failure() -> None:
    got, connections, reconnects = asyncio.run(streams(lambda n: (answer(cut=n == 2), n == 2), 3))
    assert whole(got[0])
    assert whole(got[2])
    assert isinstance(got[1], str)
    assert "connection closed" in got[1]
    assert connections == [2, 1]  # the failed stream is not sent again
    assert reconnects == 1  # the next stream, on a new connection


def test_a_first_request_that_gets_no_answer_is_a_failure() -> None:
    # A new connection that closes before answering is no stale keep-alive connection:
    # nothing is sent again.
    got, connections, reconnects = asyncio.run(streams(lambda n: (b"", True), 1))
    assert isinstance(got[0], str)
    assert "connection closed" in got[0]
    assert connections == [1]
    assert reconnects == 0
