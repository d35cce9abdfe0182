"""Dead addresses over real sockets: refused at once, or never answered.

A Blackhole's claim is a negative one (no connect ever completes), so these tests give each
connect a short timeout and demand that it runs out, never that it takes some given time.
The Blackhole's SYNs are dropped until the client would retry after a whole second, so a
0.3 s timeout that runs out is the Blackhole's doing, not a slow machine's.
"""

from __future__ import annotations

import errno
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from streamproof.fake_providers import Blackhole, RefusingAddress

TIMEOUT = 5.0  # for what must succeed; nothing here should come near it
CONNECT_TIMEOUT = 0.3  # for what must never connect

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="a Blackhole relies on Linux dropping SYNs to a full queue"
)


def connect_error(port: int) -> type[BaseException] | None:
    """What a plain connect to 127.0.0.1:`port` raises within CONNECT_TIMEOUT, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        return type(exc)


def impatient_client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT))


DEAD = [  # the two kinds of dead address, by their constructors
    pytest.param(RefusingAddress, id="refusing"),
    pytest.param(Blackhole, id="blackhole", marks=linux_only),
]


# --- both --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", DEAD)
def test_dead_address_has_an_ephemeral_port_and_a_base_url(make):
    with make() as dead:
        assert dead.host == "127.0.0.1"
        assert 0 < dead.port < 65536
        assert dead.base_url == f"http://127.0.0.1:{dead.port}/v1"
        assert str(dead.port) in repr(dead)


@pytest.mark.parametrize("make", DEAD)
def test_dead_address_holds_its_port(make):
    with make() as dead, socket.socket() as other, pytest.raises(OSError, match="in use") as raised:
        other.bind(("127.0.0.1", dead.port))
    assert raised.value.errno == errno.EADDRINUSE


@pytest.mark.parametrize("make", DEAD)
def test_dead_address_close_twice_is_harmless(make):
    dead = make()
    dead.close()
    dead.close()


# --- RefusingAddress ---------------------------------------------------------------------


def test_refusing_address_refuses_every_connect():
    with RefusingAddress() as dead:
        assert [connect_error(dead.port) for _ in range(5)] == [ConnectionRefusedError] * 5


def test_refusing_address_is_an_httpx_connect_error_not_a_timeout():
    with RefusingAddress() as dead, impatient_client() as client:
        with pytest.raises(httpx.ConnectError):  # ConnectTimeout is not a ConnectError
            client.post(f"{dead.base_url}/chat/completions", json={"model": "streamproof"})


# --- Blackhole ---------------------------------------------------------------------------


@linux_only
def test_blackhole_connect_times_out_time_after_time():
    with Blackhole() as dead:
        assert [connect_error(dead.port) for _ in range(3)] == [TimeoutError] * 3


@linux_only
def test_blackhole_connect_times_out_for_several_clients_at_once():
    with Blackhole() as dead, ThreadPoolExecutor(max_workers=8) as pool:
        errors = list(pool.map(connect_error, [dead.port] * 8))
    assert errors == [TimeoutError] * 8


@linux_only
def test_blackhole_is_an_httpx_connect_timeout():
    with Blackhole() as dead, impatient_client() as client:
        with pytest.raises(httpx.ConnectTimeout):
            client.post(f"{dead.base_url}/chat/completions", json={"model": "streamproof"})


@linux_only
def test_blackholes_do_not_share_ports():
    with Blackhole() as first, Blackhole() as second, RefusingAddress() as third:
        assert len({first.port, second.port, third.port}) == 3
