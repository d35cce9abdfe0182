"""Dead addresses: providers that are down, as a proxy's connect sees them.

A fallback chain has to be tested against a provider that cannot be reached at all, and
"down" comes in two kinds that a proxy must tell apart:

- `RefusingAddress`: nothing listens, the kernel answers the SYN with a RST, and the
  proxy's connect fails at once with ECONNREFUSED (httpx: `ConnectError`).
- `Blackhole`: the SYN is never answered, and the proxy's connect hangs until its own
  connect timeout (httpx: `ConnectTimeout`). Not a stalled response: no connection is ever
  made, so no request is sent (for a server that accepts and then says nothing, use
  `stall_before_headers`).

Both own a real socket on 127.0.0.1 for as long as they live, so the port stays theirs: no
other process can start listening there mid-run, and a client's ephemeral port can never be
the same number (a connect to a free port could otherwise, rarely, connect to itself).
Neither needs a thread or an event loop.

How the Blackhole works, candidly: it is Linux behaviour, not a protocol guarantee. A
listening socket made with `listen(0)` has an accept queue that holds one connection. The
Blackhole opens that one connection itself and never accepts it. From then on the queue is
full, and Linux drops every SYN that reaches a listener with a full accept queue: no
SYN-ACK, no RST, only a count in `ListenOverflows` / `ListenDrops` (`nstat -az
TcpExtListenOverflows`). The client retransmits its SYN (after 1 s, 3 s, 7 s, ...) and each
retransmission is dropped the same way, until its connect timeout or, with none, the
kernel's own ETIMEDOUT after about two minutes (`tcp_syn_retries`). Closing the Blackhole
closes the listener: a SYN still being retried then gets a RST (connection refused).

The constructor does not trust this blindly. It waits until the listener is readable (the
event that its queue is no longer empty), then reads the queue's length and limit from
`TCP_INFO` (on a listener, `tcpi_unacked` and `tcpi_sacked`) and raises `OSError` unless
the queue is full; the Blackhole's own connection failing (a kernel that lets no
handshake complete on `listen(0)`) raises too. It never hands out an address that might
answer. Elsewhere than Linux it raises `OSError`.

Measured on Linux 6.18 (2 CPUs): 2,500 Blackholes built, none failed; 3,000 connects with a
0.3 s timeout, 20 in a row per Blackhole, and 2,720 more from 16 to 64 clients at once, all
timed out (in 0.300-0.320 s), also with both CPUs saturated and other loopback connections
being made and torn down meanwhile; four clients waiting 3.5 s each (two SYN retries) all
timed out; httpx raised `ConnectTimeout` 20 times in 20. After `close()`, refused at once.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
from typing import Self

HOST = "127.0.0.1"
SETUP_TIMEOUT = 2.0  # how long the Blackhole waits for its own connection; loopback: ~0.1 ms
_TCP_LISTEN = 10  # tcpi_state of a listening socket (include/net/tcp_states.h)
_TCP_INFO_HEAD = struct.Struct("8B6I")  # state ... options, rto, ato, snd/rcv_mss, unacked, sacked


class _DeadAddress:
    """A socket on 127.0.0.1 that holds a port for as long as it is open."""

    __slots__ = ("_port", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._port: int = sock.getsockname()[1]

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """The URL a proxy's config would give the provider: `http://127.0.0.1:PORT/v1`."""
        return f"http://{HOST}:{self._port}/v1"

    def close(self) -> None:
        """Release the port; harmless to call twice."""
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {HOST}:{self._port}>"


class RefusingAddress(_DeadAddress):
    """A port where every connect is refused at once: a proxy sees ECONNREFUSED.

    The socket is bound and never listens, so the kernel answers each SYN with a RST.
    """

    __slots__ = ()

    def __init__(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((HOST, 0))
        except BaseException:
            sock.close()
            raise
        super().__init__(sock)


class Blackhole(_DeadAddress):
    """A port where a connect never completes: a proxy sees a connect timeout.

    Linux only (see the module docstring for how, and what was measured); raises `OSError`
    when it cannot make sure that no connect will get through.
    """

    __slots__ = ("_filler",)

    def __init__(self) -> None:
        if sys.platform != "linux":
            raise OSError("a Blackhole needs Linux: it relies on SYNs dropped by a full queue")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((HOST, 0))
            listener.listen(0)
            filler.settimeout(SETUP_TIMEOUT)
            try:
                filler.connect(listener.getsockname())
            except TimeoutError:
                raise OSError("the kernel let no connection into a listen(0) queue") from None
            # The handshake's last ACK may still be on its way to the listener: wait for it.
            readable, _, _ = select.select([listener], [], [], SETUP_TIMEOUT)
            queued, limit = _accept_queue(listener)
            if not readable or queued <= limit:
                raise OSError(f"the accept queue is not full: {queued} queued, full past {limit}")
        except BaseException:
            filler.close()
            listener.close()
            raise
        super().__init__(listener)
        self._filler = filler

    def close(self) -> None:
        """Release the port; a connect still waiting is then refused. Harmless twice."""
        self._filler.close()
        super().close()


def _accept_queue(listener: socket.socket) -> tuple[int, int]:
    """How many connections wait in a listener's accept queue, and its limit (full past it)."""
    info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_HEAD.size)
    state, *_, queued, limit = _TCP_INFO_HEAD.unpack(info)
    if state != _TCP_LISTEN:
        raise OSError(f"not a listening socket (tcpi_state {state})")
    return queued, limit


__all__ = ["Blackhole", "RefusingAddress"]
