"""The fake provider over TLS, and its TLS faults, seen on the wire by ssl sockets.

One TLS fake serves the module. Each test speaks HTTP/1.1 by hand over a Python ssl socket
(or a plain TCP socket carrying a ClientHello made by an `SSLObject`), so what it asserts
is what a proxy's socket sees: a verified or refused handshake, a reset or silence in it, a
clean close (`close_notify`, which Python reads as b"") or a ragged one (`SSLEOFError` with
`suppress_ragged_eofs=False`), the framing of a body. Nothing here waits on time: socket
timeouts only stop a broken test from hanging.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from streamproof.fake_providers import FakeProvider, Scenario, chat, fingerprint
from streamproof.fake_providers.faults import CloseDelimited, RaggedAfter, Stale, TlsRecords
from streamproof.fake_providers.plan import Ending
from streamproof.fake_providers.server import _RecordSplitter
from streamproof.fake_providers.tls import (
    WRONG_HOST,
    Authority,
    Cert,
    HandshakeReset,
    HandshakeStall,
    parse_handshake_fault,
)
from streamproof.harness.sse import SSEDecoder

TIMEOUT = 5.0  # a safety net for a broken test, never a measure


@pytest.fixture(scope="module")
def authority() -> Iterator[Authority]:
    authority = Authority()
    try:
        yield authority
    finally:
        authority.close()


@pytest.fixture(scope="module")
def provider(authority: Authority) -> Iterator[FakeProvider]:
    with FakeProvider(stall_limit=TIMEOUT, tls=authority) as provider:
        yield provider


@pytest.fixture(scope="module")
def plain() -> Iterator[FakeProvider]:
    with FakeProvider(stall_limit=TIMEOUT) as provider:
        yield provider


def request_bytes(nonce: str, *tokens: str, key: str = "sk-test") -> bytes:
    model = ".".join(["streamproof", f"id-{nonce}", *tokens])
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "Hi."}], "stream": True}
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def tls_socket(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return context.wrap_socket(raw, server_hostname=host, suppress_ragged_eofs=False)


def read_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """Everything until the connection ends, and how: "close_notify" (over TLS; "fin" over
    TCP), "ragged" (TLS closed without close_notify) or "reset"."""
    received = bytearray()
    while True:
        try:
            data = sock.recv(65536)
        except ssl.SSLEOFError:
            return bytes(received), "ragged"
        except ConnectionResetError:
            return bytes(received), "reset"
        if not data:
            return bytes(received), "close_notify" if isinstance(sock, ssl.SSLSocket) else "fin"
        received += data


def split_response(data: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    return headers, body


def unchunk(body: bytes) -> tuple[bytes, bool]:
    """A chunked body's data, and whether its last chunk came."""
    data = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(data), True
        data += rest[:size]
        body = rest[size + 2 :]
    return bytes(data), False


def events(body: bytes) -> list[str]:
    decoder = SSEDecoder()
    return [event.data for event in decoder.feed(body) + decoder.close()]


def clean_events(nonce: str, *tokens: str) -> list[str]:
    model = ".".join(["streamproof", f"id-{nonce}", *tokens])
    scenario = Scenario.parse(model)
    request = {"model": model, "messages": [{"role": "user", "content": "Hi."}], "stream": True}
    return events(chat.answer(request, scenario, f"chatcmpl-{nonce}-1").body)


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS client: what a proxy sends before the server answers."""
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def finished(provider: FakeProvider, nonce: str, count: int = 1) -> list[Any]:
    journal = provider.journal(nonce)
    done = journal.wait_for(
        lambda j: len(j.attempts) >= count and all(a.ending for a in j.attempts), TIMEOUT
    )
    assert done, journal.attempts
    return journal.attempts


# --- the run's CA and its certificates ---------------------------------------------------


def test_authority_writes_its_ca_as_pem_and_removes_it_on_close():
    authority = Authority()
    ca_file = Path(authority.ca_file)
    assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    authority.close()
    assert not ca_file.exists()


def test_a_client_that_trusts_the_ca_file_verifies_the_fake(provider, authority):
    context = ssl.create_default_context(cafile=str(authority.ca_file))
    for host in ("127.0.0.1", "localhost"):
        with tls_socket(provider.port, context, host) as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
    assert provider.base_url.startswith("https://127.0.0.1:")
    assert provider.url_for("b").startswith("https://")


def test_an_unknown_certificate_kind_is_refused(authority):
    with pytest.raises(ValueError, match="unknown_ca, wrong_host, expired"):
        authority.context("self_signed")


# --- the fake over TLS: answers, and how it ends them --------------------------------------


def test_a_streamed_answer_over_tls_is_the_plain_answer_ended_by_its_last_chunk(
    provider, authority
):
    with tls_socket(provider.port, authority.client_context()) as sock:
        sock.sendall(request_bytes("tlsclean", "chunks-3"))
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            data += sock.recv(65536)
    headers, body = split_response(data)
    assert headers["transfer-encoding"] == "chunked"
    assert events(unchunk(body)[0]) == clean_events("tlsclean", "chunks-3")
    (attempt,) = finished(provider, "tlsclean")
    assert attempt.headers["authorization"] == fingerprint("Bearer sk-test")


def test_close_delimited_has_no_length_nor_chunks_and_ends_with_close_notify(provider, authority):
    with tls_socket(provider.port, authority.client_context()) as sock:
        sock.sendall(request_bytes("tlsdelim", "chunks-3", "close_delimited"))
        data, ending = read_to_end(sock)
    headers, body = split_response(data)
    assert headers["connection"] == "close"
    assert "content-length" not in headers
    assert "transfer-encoding" not in headers
    assert events(body) == clean_events("tlsdelim", "chunks-3", "close_delimited")
    assert ending == "close_notify"


def test_ragged_after_2_mid_close_delimited_body_closes_without_close_notify(provider, authority):
    with tls_socket(provider.port, authority.client_context()) as sock:
        sock.sendall(request_bytes("tlsragged", "chunks-5", "close_delimited", "ragged_after-2"))
        data, ending = read_to_end(sock)
    _, body = split_response(data)
    assert (
        events(body)
        == clean_events("tlsragged", "chunks-5", "close_delimited", "ragged_after-2")[:2]
    )
    assert ending == "ragged"
    assert finished(provider, "tlsragged")[0].ending == "ragged"


def test_ragged_after_2_mid_chunked_body_sends_no_last_chunk(provider, authority):
    with tls_socket(provider.port, authority.client_context()) as sock:
        sock.sendall(request_bytes("tlsraggedchunk", "chunks-5", "ragged_after-2"))
        data, ending = read_to_end(sock)
    body, whole = unchunk(split_response(data)[1])
    assert (events(body), whole, ending) == (
        clean_events("tlsraggedchunk", "chunks-5", "ragged_after-2")[:2],
        False,
        "ragged",
    )


def test_ragged_after_the_last_event_completes_the_message_first(provider, authority):
    with tls_socket(provider.port, authority.client_context()) as sock:
        sock.sendall(request_bytes("tlsraggedend", "chunks-3", "ragged_after-99"))
        data, ending = read_to_end(sock)
    body, whole = unchunk(split_response(data)[1])
    assert (events(body), whole, ending) == (
        clean_events("tlsraggedend", "chunks-3", "ragged_after-99"),
        True,
        "ragged",
    )
    assert finished(provider, "tlsraggedend")[0].ending == "ragged_end"


def test_ragged_after_over_plain_http_is_a_fin(plain):
    with socket.create_connection(("127.0.0.1", plain.port), timeout=TIMEOUT) as sock:
        sock.sendall(request_bytes("plainragged", "chunks-5", "close_delimited", "ragged_after-2"))
        data, ending = read_to_end(sock)
    assert (
        events(split_response(data)[1])
        == clean_events("plainragged", "chunks-5", "close_delimited", "ragged_after-2")[:2]
    )
    assert ending == "fin"


def test_tls_records_changes_nothing_in_what_is_received(provider, authority):
    with tls_socket(provider.port, authority.client_context()) as sock:
        sock.sendall(request_bytes("tlsrecords", "chunks-3", "tls_records-1"))
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            data += sock.recv(65536)
    assert events(unchunk(split_response(data)[1])[0]) == clean_events(
        "tlsrecords", "chunks-3", "tls_records-1"
    )


class _Tcp:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


@pytest.mark.asyncio
async def test_record_splitter_writes_what_tls_gives_in_pieces_of_b_bytes_then_restores():
    tcp = _Tcp()
    original = tcp.write
    protocol = type("Protocol", (), {"_transport": tcp})()
    writer: Any = type("Writer", (), {"transport": type("T", (), {"_ssl_protocol": protocol})()})()
    splitter = _RecordSplitter(writer, 7)
    tcp.write(b"r" * 20)  # what the TLS layer hands the socket: held
    assert tcp.writes == []
    await splitter.release()
    assert tcp.writes == [b"r" * 7, b"r" * 7, b"r" * 6]
    tcp.write(b"tail")  # held again until restored
    splitter.restore()
    assert tcp.writes[-1] == b"tail"
    assert tcp.write == original


def test_tls_records_over_plain_http_changes_nothing():
    plan = chat.answer(
        {"model": "streamproof", "messages": [], "stream": True},
        Scenario.parse("streamproof.chunks-2"),
        "chatcmpl-x-1",
    )
    assert TlsRecords(5).apply(plan).records == 5
    with pytest.raises(ValueError, match="at least 1 byte"):
        TlsRecords(0)
    assert CloseDelimited().apply(plan).close_delimited
    assert RaggedAfter(1).apply(plan).ending is Ending.RAGGED
    assert RaggedAfter(len(plan.frames)).apply(plan).ending is Ending.RAGGED_END


# --- a pooled connection the server closed -------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_stale_serves_a_new_connection_and_closes_a_kept_alive_one(provider, authority, how):
    nonce = f"tlsstale{how}"
    with tls_socket(provider.port, authority.client_context()) as sock:
        sock.sendall(request_bytes(nonce, "chunks-2", f"stale-{how}"))
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            data += sock.recv(65536)
        assert split_response(data)[0].get("connection") != "close"
        sock.sendall(request_bytes(nonce, "chunks-2", f"stale-{how}"))
        if how == "close":
            assert read_to_end(sock) == (b"", "close_notify")
        else:  # read below TLS (Python's ssl reports a reset as an EOF)
            with socket.socket(fileno=os.dup(sock.fileno())) as raw:
                raw.settimeout(TIMEOUT)
                assert read_to_end(raw) == (b"", "reset")
    first, second = finished(provider, nonce, 2)
    assert first.ending == "clean"
    assert second.ending == f"stale_{how}"
    assert Stale(how).apply(
        chat.answer(
            {"model": "streamproof", "messages": [], "stream": True},
            Scenario.parse("streamproof"),
            "chatcmpl-x-1",
        )
    ).stale is (Ending.CLEAN if how == "close" else Ending.RESET)


def test_stale_over_plain_http_closes_with_a_fin(plain):
    with socket.create_connection(("127.0.0.1", plain.port), timeout=TIMEOUT) as sock:
        for _ in range(2):
            sock.sendall(request_bytes("plainstale", "chunks-2", "stale-close"))
        data, ending = read_to_end(sock)
    assert data.count(b"HTTP/1.1 200") == 1
    assert ending == "fin"


# --- the doors: handshakes that misbehave ---------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("unknown_ca", "unable to get local issuer certificate"),
        ("wrong_host", "mismatch"),
        ("expired", "certificate has expired"),
    ],
)
def test_a_certificate_door_is_refused_by_a_verifying_client(provider, authority, kind, message):
    door = provider.door(Cert(kind))
    with pytest.raises(ssl.SSLCertVerificationError, match=message):
        tls_socket(door.port, authority.client_context())
    assert (door.handshakes, door.completed) == (1, 0)
    assert door.base_url == f"https://127.0.0.1:{door.port}/v1"


def test_a_client_that_does_not_verify_is_served_and_journaled_with_its_key(provider):
    door = provider.door(Cert("wrong_host"))
    careless = ssl.create_default_context()
    careless.check_hostname = False
    careless.verify_mode = ssl.CERT_NONE
    with tls_socket(door.port, careless) as sock:
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert names.value.get_values_for_type(x509.DNSName) == [WRONG_HOST]
        sock.sendall(request_bytes("tlscareless", "chunks-2", key="sk-secret"))
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            data += sock.recv(65536)
    (attempt,) = finished(provider, "tlscareless")
    assert attempt.headers["authorization"] == fingerprint("Bearer sk-secret")
    assert door.completed == 1


def test_handshake_reset_1_resets_the_first_handshake_then_serves(provider, authority):
    door = provider.door(HandshakeReset(first=1))
    context = authority.client_context()
    with socket.create_connection(("127.0.0.1", door.port), timeout=TIMEOUT) as raw:
        raw.sendall(client_hello(context))
        assert read_to_end(raw) == (b"", "reset")
    with tls_socket(door.port, context) as sock:
        sock.sendall(request_bytes("tlsreset", "chunks-2"))
        data = b""
        while not data.endswith(b"0\r\n\r\n"):  # served: the fake counted the handshake
            data += sock.recv(65536)
    assert (door.handshakes, door.completed) == (2, 1)


def test_handshake_stall_1_says_nothing_after_the_client_hello_and_stays_open(provider, authority):
    door = provider.door(HandshakeStall(first=1))
    context = authority.client_context()
    with socket.create_connection(("127.0.0.1", door.port), timeout=TIMEOUT) as raw:
        raw.sendall(client_hello(context))
        # A second connection, made after it, is served whole: the first one's ClientHello
        # has long been read when its silence is looked at.
        with tls_socket(door.port, context) as sock:
            sock.sendall(request_bytes("tlsstall", "chunks-2"))
            data = b""
            while not data.endswith(b"0\r\n\r\n"):
                data += sock.recv(65536)
        raw.setblocking(False)  # (with a timeout, recv would wait for it first)
        with pytest.raises(BlockingIOError):
            raw.recv(1, socket.MSG_PEEK)  # open, and silent
        assert door.stalls == []  # not given up yet
    assert len(door.wait_stalls(1, TIMEOUT)) == 1  # the client closed it: measured
    assert door.handshakes == 2
    assert door.completed == 1


def test_a_door_needs_a_tls_fake(plain):
    with pytest.raises(ValueError, match="TLS"):
        plain.door(HandshakeStall())


@pytest.mark.parametrize(
    ("token", "fault"),
    [
        ("handshake_reset", HandshakeReset()),
        ("handshake_reset-2", HandshakeReset(first=2)),
        ("handshake_stall-1", HandshakeStall(first=1)),
        ("cert-expired", Cert("expired")),
    ],
)
def test_handshake_fault_tokens_parse_and_print_back(token, fault):
    assert parse_handshake_fault(token) == fault
    assert fault.token == token


@pytest.mark.parametrize(
    "token",
    ["handshake_jam", "cert", "cert-self_signed", "handshake_stall-1-2", "handshake_stall-x"],
)
def test_bad_handshake_fault_tokens_are_refused(token):
    with pytest.raises(ValueError, match=r"no handshake fault|takes"):
        parse_handshake_fault(token)


def test_faults_fire_as_their_count_says():
    assert [HandshakeStall(first=2).faults(n) for n in (1, 2, 3)] == [True, True, False]
    assert HandshakeReset().faults(100)
    assert not Cert("expired").faults(1)
