"""A TCP relay in front of the target whose connections a case can cut, and restore.

`Cutter(base_url)` listens on 127.0.0.1 (an ephemeral port) and relays every connection to
the target, byte for byte, on two threads per connection. `cut()` resets every relayed
connection at once (TCP RST on both sides, as a dropped network does) and refuses new ones
the same way until `restore()`. The target itself is never touched: it keeps its state, so
what a client sees after it reconnects can be compared with what it saw before.
"""

from __future__ import annotations

import socket
import struct
import threading
from urllib.parse import urlsplit

RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a TCP reset


def _reset(sock: socket.socket) -> None:
    """Reset a connection. `shutdown` first: a `close` alone would neither wake a thread
    blocked reading the socket nor reach the peer while that thread holds it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already shut by the other direction's thread: nothing left to cut
    sock.close()


class Cutter:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._open = True
        self.relayed = 0  # connections relayed so far
        self.refused = 0  # connections reset while cut
        self._thread = threading.Thread(target=self._accept, name="cutter", daemon=True)
        self._thread.start()

    def __enter__(self) -> Cutter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def cut(self) -> None:
        """Reset every relayed connection, and every new one until `restore`."""
        with self._lock:
            self._open = False
            connections, self._connections = self._connections, set()
        for sock in connections:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._open = True

    def close(self) -> None:
        """Stop listening and reset what is relayed. `shutdown` wakes the thread blocked
        in `accept` (on Linux a `close` alone would not, and the port would stay open)."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not listening any more: nothing to wake
        self._listener.close()
        self.cut()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # the listener was closed: the relay is over
                return
            with self._lock:
                is_open = self._open
            if not is_open:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections.update((client, upstream))
                self.relayed += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy one direction until it ends; an end or a reset ends both directions."""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            # Cut (our reset), or the peer reset: the other direction's thread, or `cut`,
            # closes what is left.
            with self._lock:
                self._connections.discard(source)
            source.close()
