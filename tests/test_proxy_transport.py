"""The providers' transport on real sockets, against a scripted server on 127.0.0.1:0.

Each case's server answers with exact bytes (or resets, or closes), and counts the
connections it accepted and how each ended, so that reuse and closing are seen from the
server's side. Nothing waits on time: the server's handler ends when the client hangs up.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trustme
import uvloop

from streamproof.proxy.providers import _proxy_for
from streamproof.proxy.transport import READ_BATCH, READ_LIMIT, Transport, _Connection

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10, keepalive_expiry=5.0)


def chunked(*pieces: bytes, end: bool = True) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return head + body + (b"0\r\n\r\n" if end else b"")


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


class Server:
    """Answers each request on each connection with `reply`; notes connections and EOFs."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.accepted = 0
        self.hung_up = 0  # connections the client closed
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                try:
                    self.requests.append(await read_request(reader))
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.hung_up += 1
                    self.closed.set()
                    return
                await self.reply(reader, writer)
                if writer.is_closing():
                    return
        finally:
            writer.close()


@asynccontextmanager
async def serving(
    reply: Reply, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, str]]:
    server = Server(reply)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield server, f"{scheme}://127.0.0.1:{port}/v1/chat/completions"
    finally:
        listener.close()


def answer(data: bytes, then: str = "") -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if then == "close":
            writer.close()
        elif then == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    return reply


async def post(http: httpx.AsyncClient, url: str) -> httpx.Response:
    return await http.send(http.build_request("POST", url, content=b'{"a":1}'), stream=True)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=Transport(LIMITS), timeout=httpx.Timeout(1.0))


@pytest.mark.asyncio
async def test_transport_reads_a_chunked_body_and_reuses_the_connection():
    async with serving(answer(chunked(b"data: 1\n\n", b"data: 2\n\n"))) as (server, url):
        async with client() as http:
            for _ in range(3):
                response = await post(http, url)
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream"
                assert b"".join([part async for part in response.aiter_bytes()]) == (
                    b"data: 1\n\ndata: 2\n\n"
                )
                await response.aclose()
        assert server.accepted == 1
    assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert server.requests[0].endswith(b'\r\n\r\n{"a":1}')


@pytest.mark.asyncio
async def test_transport_closes_a_connection_whose_response_was_not_read_to_the_end():
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(chunked(b"data: 1\n\n", end=False))  # and then nothing: a stall
        await writer.drain()

    async with serving(reply) as (server, url):
        async with client() as http:
            response = await post(http, url)
            stream = response.aiter_bytes()
            assert await anext(stream) == b"data: 1\n\n"
            await response.aclose()
            await server.closed.wait()  # the server saw the hang-up
            assert server.hung_up == 1
            response = await post(http, url)  # a new connection
            await response.aclose()
        assert server.accepted == 2


@pytest.mark.asyncio
async def test_transport_hands_over_everything_parsed_since_the_last_read():
    conn = _Connection((b"http", "127.0.0.1", 80))  # no socket: bytes fed by hand
    conn.start()
    conn.data_received(chunked(b"a", b"b", end=False))
    await conn.head()
    conn.data_received(b"1\r\nc\r\n")
    assert await conn.read() == b"a"  # the first read: the first piece alone
    conn.data_received(b"1\r\nd\r\n")
    assert await conn.read() == b"bcd"  # three chunks parsed, one read
    conn.data_received(b"0\r\n\r\n")
    assert await conn.read() == b""
    assert conn.reusable


@pytest.mark.asyncio
async def test_transport_hands_a_backlog_over_in_batches_of_whole_pieces():
    conn = _Connection((b"http", "127.0.0.1", 80))
    conn.start()
    pieces = [bytes([65 + n]) * 1000 for n in range(10)]
    conn.data_received(chunked(*pieces))
    await conn.head()
    reads = []
    while data := await conn.read():
        reads.append(data)
    assert b"".join(reads) == b"".join(pieces)
    assert reads[0] == pieces[0]
    assert reads[1] == b"".join(pieces[1:6])  # READ_BATCH bytes or just over, whole pieces
    assert all(len(data) % 1000 == 0 for data in reads)
    assert READ_BATCH == 4096


@pytest.mark.parametrize(
    ("data", "then", "error"),
    [
        (chunked(b"data: 1\n\n", end=False), "reset", httpx.ReadError),
        (chunked(b"data: 1\n\n", end=False), "close", httpx.RemoteProtocolError),
        (chunked(b"data: 1\n\n", end=False) + b"zz\r\n", "", httpx.RemoteProtocolError),
    ],
    ids=["reset", "close", "malformed"],
)
@pytest.mark.asyncio
async def test_transport_errors_mid_body_are_httpx_errors_after_the_bytes_before(data, then, error):
    async with serving(answer(data, then)) as (_, url):
        async with client() as http:
            response = await post(http, url)
            got: list[bytes] = []

            async def read_all() -> None:
                async for part in response.aiter_bytes():
                    got.append(part)

            with pytest.raises(error):
                await read_all()
            assert b"".join(got) == b"data: 1\n\n"
            await response.aclose()


@pytest.mark.parametrize(
    ("then", "error"),
    [("reset", httpx.ReadError), ("close", httpx.RemoteProtocolError)],
)
@pytest.mark.asyncio
async def test_transport_no_response_is_an_httpx_error(then, error):
    async with serving(answer(b"", then)) as (_, url):
        async with client() as http:
            with pytest.raises(error):
                await post(http, url)


@pytest.mark.asyncio
async def test_transport_refused_connection_is_connect_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await post(http, f"http://127.0.0.1:{port}/v1")


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}",  # ends with the connection
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
    ],
    ids=["until-close", "connection-close"],
)
@pytest.mark.asyncio
async def test_transport_does_not_reuse_a_connection_the_server_ends(data):
    async with serving(answer(data, "close")) as (server, url):
        async with client() as http:
            for _ in range(2):
                response = await post(http, url)
                assert await response.aread() == b"{}"
        assert server.accepted == 2


@pytest.mark.asyncio
async def test_transport_pauses_reading_while_much_is_unread():
    body = b"x" * (4 * READ_LIMIT)
    async with serving(answer(chunked(body))) as (server, url):
        async with client() as http:
            response = await post(http, url)
            assert await response.aread() == body
            response = await post(http, url)  # and the connection is fit for another
            assert await response.aread() == body
        assert server.accepted == 1


def test_proxy_for_reads_the_environment(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert _proxy_for("https://api.example.test/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert _proxy_for("https://api.example.test/v1") == "http://127.0.0.1:3128"
    assert _proxy_for("http://127.0.0.1:9/v1") is None
    monkeypatch.setenv("NO_PROXY", "api.example.test")
    assert _proxy_for("https://api.example.test/v1") is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.asyncio
async def test_transport_speaks_tls_and_reuses_the_connection(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    command += ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=str(cert))
    async with serving(answer(chunked(b"data: 1\n\n")), tls=served) as (server, url):
        async with httpx.AsyncClient(transport=Transport(LIMITS, trusted)) as http:
            for _ in range(2):
                response = await post(http, url)
                assert await response.aread() == b"data: 1\n\n"
        assert server.accepted == 1


@pytest.mark.asyncio
async def test_transport_sends_big_and_streamed_request_bodies_whole():
    big = b"x" * 300_000

    async def parts() -> AsyncIterator[bytes]:
        yield b"one,"
        yield b"two"

    async with serving(answer(chunked(b"ok"))) as (server, url):
        async with client() as http:
            for content in (big, parts()):
                request = http.build_request("POST", url, content=content)
                response = await http.send(request, stream=True)
                assert await response.aread() == b"ok"
        assert server.accepted == 1
    assert server.requests[0].endswith(b"\r\n\r\n" + big)
    assert b"content-length: 7\r\n" in server.requests[1].lower()
    assert b"transfer-encoding" not in server.requests[1].lower()
    assert server.requests[1].endswith(b"\r\n\r\none,two")


@pytest.mark.asyncio
async def test_transport_does_not_reuse_a_connection_after_an_error_status():
    # A whole 500 on a keep-alive connection: the next request gets a connection of its own
    # (the soak found a fake that holds such a connection, stalled, after its error).
    data = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}"
    async with serving(answer(data)) as (server, url):
        async with client() as http:
            for _ in range(2):
                response = await post(http, url)
                assert response.status_code == 500
                assert await response.aread() == b"{}"
        assert server.accepted == 2


@pytest.mark.asyncio
async def test_transport_closes_an_idle_connection_at_its_keepalive_expiry():
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10, keepalive_expiry=0.05)
    async with serving(answer(chunked(b"data: 1\n\n"))) as (server, url):
        async with httpx.AsyncClient(transport=Transport(limits)) as http:
            response = await post(http, url)
            await response.aread()  # read to the end: the connection is parked, idle
            async with asyncio.timeout(5):
                await server.closed.wait()  # and closed by the pool when its expiry came
            assert server.hung_up == 1


CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


def _ragged(writer: asyncio.StreamWriter) -> None:
    """Close the TCP connection under TLS without close_notify (no alert, a plain FIN)."""
    writer.transport.abort()


async def _close_delimited_over_tls(then: str) -> bytes | Exception:
    """A close-delimited body over TLS, ended by a clean close (close_notify) or a ragged
    one: what the transport makes of it (its bytes, or the error it raised)."""
    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(served)
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(CLOSE_DELIMITED + b"data: 1\n\n")
        await writer.drain()
        if then == "ragged":
            _ragged(writer)
        else:
            writer.close()  # close_notify, then the FIN

    async with serving(reply, tls=served) as (_, url):
        async with httpx.AsyncClient(transport=Transport(LIMITS, trusted)) as http:
            response = await post(http, url)
            try:
                return await response.aread()
            except httpx.TransportError as exc:
                return exc


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_transport_close_delimited_tls_body_needs_close_notify(loop: str):
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        clean = runner.run(_close_delimited_over_tls("close_notify"))
        ragged = runner.run(_close_delimited_over_tls("ragged"))
    assert clean == b"data: 1\n\n"
    assert isinstance(ragged, httpx.RemoteProtocolError)
    assert "close_notify" in str(ragged)


@pytest.mark.asyncio
async def test_transport_close_delimited_plain_body_ends_at_the_fin():
    async with serving(answer(CLOSE_DELIMITED + b"data: 1\n\n", then="close")) as (_, url):
        async with client() as http:
            response = await post(http, url)
            assert await response.aread() == b"data: 1\n\n"
