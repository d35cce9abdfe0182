"""Journal B: what the fake provider was asked, and what it did, for each request id.

The server (on its own thread) writes; the harness (on the test's thread) reads. Every
change happens under one condition variable, so a reader can wait for something to be
true ("the proxy hung up") instead of sleeping and hoping.

Times are `time.perf_counter()` seconds, the clock the harness's client also uses, so the
two sides of an exchange can be laid side by side.

API keys never enter a journal: the headers that carry them (`Authorization`, `api-key`,
`x-api-key`, `Proxy-Authorization`) are kept only as a fingerprint (`sha256:` and the first
12 hex digits of the digest of the whole header value).

The bytes of each attempt's body are kept as they were written, up to `KEPT_BYTES` per
attempt (`Attempt.data`; `data_left_out` says how many more were written), so a report can
lay the upstream's writes beside the client's reads. They are the fake's own answer: no
secret of the proxy's ever reaches them.

One fake provider can stand in for several providers of a proxy's fallback chain: besides
`/v1/...` it answers `/<label>/v1/...`, and each attempt says which route it came on
(`Attempt.route`). Attempts are still numbered per request id, whatever their route.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamproof.fake_providers.plan import Pieces, Usage

LABEL_PATTERN = "[a-z0-9][a-z0-9_-]{0,31}"  # a route label: `b`, `kimi`, `nim-2`
_ENDPOINT = "chat/completions|messages|responses|models"  # what every route serves, under `/v1/`
_ROUTE = re.compile(rf"(?:/(?P<label>{LABEL_PATTERN}))?/v1/(?P<endpoint>{_ENDPOINT})/*")
KEPT_BYTES = 64 * 1024  # of each attempt's body, for the reports; the rest is only counted


def parse_route(path: str) -> tuple[str, str] | None:
    """The (label, endpoint) of a path the fake provider answers, or None for any other.

    `/v1/chat/completions` is `("", "chat/completions")`, `/b/v1/models` is `("b", "models")`.
    """
    match = _ROUTE.fullmatch(path)
    return None if match is None else (match["label"] or "", match["endpoint"])


def fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass
class Attempt:
    """One request the fake provider received, and what it did with it."""

    number: int
    received_at: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    faults: list[str] = field(default_factory=list)  # the fault tokens that fired
    status: int | None = None
    frame_ends: list[int] = field(default_factory=list)  # body offset where each event ends
    frame_deltas: list[str] = field(default_factory=list)  # choice 0's content per event
    frame_contents: list[Pieces] = field(default_factory=list)  # (choice, content) per event
    frame_arguments: list[Pieces] = field(default_factory=list)  # (choice, tool arguments)
    frame_usage: list[Usage] = field(default_factory=list)  # the usage items per event, or ()
    frame_reasoning: list[Pieces] = field(default_factory=list)  # (choice, reasoning) per event
    writes: list[tuple[float, int]] = field(default_factory=list)  # (time, bytes) per write
    bytes_written: int = 0
    data: bytearray = field(default_factory=bytearray)  # the first KEPT_BYTES of the body
    ending: str | None = None  # clean | reset | stall | peer_left | error
    peer_closed_at: float | None = None
    # The client had already hung up when the fake read this request: one it gave up on
    # while it waited (a loaded fake reads such a request late, even after a later one).
    abandoned: bool = False
    ended_at: float | None = None

    @property
    def route(self) -> str:
        """The label of the route this attempt came on (`b` for `/b/v1/...`), "" for `/v1/...`."""
        route = parse_route(self.path)
        return "" if route is None else route[0]

    @property
    def events_written(self) -> int:
        """How many whole events reached the socket."""
        return sum(1 for end in self.frame_ends if end <= self.bytes_written)

    @property
    def content_written(self) -> str:
        """Choice 0's content in the whole events that reached the socket, joined."""
        return "".join(self.frame_deltas[: self.events_written])

    def content_written_by_choice(self) -> dict[int, str]:
        """Each choice's content in the whole events that reached the socket, joined.

        A choice is there as soon as one of its chunks was written (with "" if none carried
        content yet); compare it with `chat.expected(scenario).content` to see what a relay
        may have delivered, and that nothing was delivered twice.
        """
        return _joined(self.frame_contents[: self.events_written])

    def arguments_written_by_choice(self) -> dict[int, str]:
        """Each choice's tool-call arguments in the whole events written, joined."""
        return _joined(self.frame_arguments[: self.events_written])

    def reasoning_written_by_choice(self) -> dict[int, str]:
        """Each choice's reasoning (`reasoning_content`, thinking, summary) in the whole
        events written, joined (index 0 for the Messages and Responses APIs)."""
        return _joined(self.frame_reasoning[: self.events_written])

    @property
    def usage_written(self) -> list[dict[str, int]]:
        """The usage objects in the whole events that reached the socket, in write order.

        One per event that carried usage, wherever it sat in the chunk (a `choices: []`
        usage chunk, inside `choices[0]`, or on every chunk with `usage-cumulative`), and the
        top-level `usage` of a whole answer. Empty when none was written: not asked, the
        `usage-none` dialect, or the stream broke first.
        """
        return [dict(usage) for usage in self.frame_usage[: self.events_written] if usage]

    @property
    def usage_reported(self) -> dict[str, int] | None:
        """The last usage written (with cumulative usage, the last value wins), or None."""
        written = self.usage_written
        return written[-1] if written else None

    @property
    def data_left_out(self) -> int:
        """How many bytes of the body were written but not kept in `data`."""
        return self.bytes_written - len(self.data)

    def wrote(self, at: float, piece: bytes) -> None:
        """Journal one write of the body: when, how much, and its first bytes."""
        self.writes.append((at, len(piece)))
        self.bytes_written += len(piece)
        room = KEPT_BYTES - len(self.data)
        if room > 0:
            self.data += piece[:room]

    @property
    def first_write_at(self) -> float | None:
        return self.writes[0][0] if self.writes else None

    @property
    def last_write_at(self) -> float | None:
        return self.writes[-1][0] if self.writes else None


def _joined(frames: list[Pieces]) -> dict[int, str]:
    parts: dict[int, list[str]] = {}
    for pieces in frames:
        for choice, text in pieces:
            parts.setdefault(choice, []).append(text)
    return {choice: "".join(texts) for choice, texts in sorted(parts.items())}


class Journal:
    """Every attempt made under one request id, in order."""

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self._attempts: list[Attempt] = []
        self._changed = threading.Condition()
        self._listeners: list[Callable[[], None]] = []  # called after every change

    @property
    def attempts(self) -> list[Attempt]:
        with self._changed:
            return list(self._attempts)

    def begin(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        *,
        abandoned: bool = False,
    ) -> Attempt:
        with self._changed:
            attempt = Attempt(
                number=len(self._attempts) + 1,
                received_at=time.perf_counter(),
                method=method,
                path=path,
                headers=headers,
                body=body,
                abandoned=abandoned,
            )
            self._attempts.append(attempt)
            self._changed.notify_all()
        self._tell()
        return attempt

    def update(self, change: Callable[[], None]) -> None:
        """Apply `change` (which mutates an attempt of this journal) and wake the readers."""
        with self._changed:
            change()
            self._changed.notify_all()
        self._tell()

    def listen(self, listener: Callable[[], None]) -> None:
        """Call `listener` (on the fake's thread, outside the journal's lock) after every
        change, until `unlisten`: for a reader that waits on a condition of its own."""
        with self._changed:
            self._listeners.append(listener)

    def unlisten(self, listener: Callable[[], None]) -> None:
        with self._changed:
            self._listeners.remove(listener)

    def _tell(self) -> None:
        with self._changed:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def wait_for(self, predicate: Callable[[Journal], bool], timeout: float) -> bool:
        """Block until `predicate(self)` holds, or `timeout` seconds pass; say which."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)


class Journals:
    """The journals of one fake provider, by request id.

    `journal` makes each new one (a `Journal` subclass may watch its attempts: the command
    line's prints each attempt as it ends).
    """

    def __init__(self, journal: Callable[[str], Journal] = Journal) -> None:
        self._lock = threading.Lock()
        self._by_nonce: dict[str, Journal] = {}
        self._new = journal

    def __getitem__(self, nonce: str) -> Journal:
        with self._lock:
            journal = self._by_nonce.get(nonce)
            if journal is None:
                journal = self._by_nonce[nonce] = self._new(nonce)
            return journal
