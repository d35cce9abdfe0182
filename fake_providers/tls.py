"""TLS for the fake provider: a certificate authority made for the run, and its doors.

Every real provider is reached over HTTPS, so the fake serves TLS too (`FakeProvider(tls=
Authority())`), with a certificate for 127.0.0.1 and localhost signed by a CA that
`trustme` makes for the run. The CA's PEM file (`Authority.ca_file`) is what a target is
given to trust: the `{ca_file}` placeholder, and `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE` and
`NODE_EXTRA_CA_CERTS` in its environment.

What can go wrong in a handshake happens before any request is read, so it cannot travel
in the model name as the other faults do. It is a property of the address instead: a
*door* (`FakeProvider.door(HandshakeFault)`) is another listening port of the same fake,
serving the same routes and the same journals, whose handshakes misbehave in one way.
Each handshake fault is a small uniform unit like the faults of `faults.py`: a registry
name, read-only whole-number parameters, a one-line docstring of what a proxy sees.

- `handshake_reset[-K]`: the ClientHello is read, then the connection is reset (TCP RST)
  before any answer; the first K handshakes (every one without K), then the door serves.
- `handshake_stall[-K]`: the ClientHello is read, then nothing: the socket stays open.
- `cert-unknown_ca`, `cert-wrong_host`, `cert-expired`: the door presents a certificate the
  proxy must not trust (signed by another CA; for `streamproof.invalid` only; expired a
  day ago, from the run's own CA). A proxy that completes the handshake anyway is served as
  usual, so the journal shows its request, and the fingerprint of its key: the harm.

After the handshake, TLS faults are ordinary scenario tokens (faults.py): `ragged_after-N`
closes the connection without `close_notify`, `tls_records-B` writes each TLS record to
the socket in pieces of B bytes, and the format token `close_delimited` sends a body whose
only end is the connection's close.
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import trustme

HOSTS = ("127.0.0.1", "localhost", "::1")
WRONG_HOST = "streamproof.invalid"
CERT_KINDS = ("unknown_ca", "wrong_host", "expired")


class Authority:
    """The run's CA, its server certificate, and the certificates no client may trust.

    The PEM files live in a folder of their own, removed by `close()`.
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="streamproof-ca-")
        folder = Path(self._folder.name)
        self.ca = trustme.CA(organization_name="streamproof run CA")
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._server = self.ca.issue_cert(*HOSTS)
        # Made lazily: a run that never opens a certificate door never signs them.
        self._contexts: dict[str, ssl.SSLContext] = {}

    def close(self) -> None:
        self._folder.cleanup()

    def context(self, kind: str = "") -> ssl.SSLContext:
        """A server context presenting the good certificate (""), or one of CERT_KINDS."""
        if kind not in self._contexts:
            if kind == "":
                leaf = self._server
            elif kind == "unknown_ca":
                leaf = trustme.CA(organization_name="not the run's CA").issue_cert(*HOSTS)
            elif kind == "wrong_host":
                leaf = self.ca.issue_cert(WRONG_HOST)
            elif kind == "expired":  # valid from trustme's fixed start (2000) until yesterday
                yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
                leaf = self.ca.issue_cert(*HOSTS, not_after=yesterday)
            else:
                raise ValueError(f"a certificate is one of {', '.join(CERT_KINDS)}, not {kind!r}")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            leaf.configure_cert(context)
            self._contexts[kind] = context
        return self._contexts[kind]

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the run's CA (for the harness's own probes)."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


class HandshakeFault:
    """What a door does to a handshake: a registry name and whole-number parameters."""

    name: ClassVar[str]
    arity: ClassVar[tuple[int, int]] = (0, 0)
    words: ClassVar[dict[str, tuple[str, ...]]] = {}
    cert: ClassVar[bool] = False  # the certificate itself is the fault: every handshake

    @property
    def token(self) -> str:
        values = (getattr(self, f.name) for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return "-".join([self.name, *(str(v) for v in values if v is not None)])

    @property
    def certificate(self) -> str:
        """The certificate the door presents: "" for the run's good one."""
        return ""

    def faults(self, handshake: int) -> bool:
        """Whether handshake number `handshake` (1-based, on this door) misbehaves."""
        first: int | None = getattr(self, "first", None)
        return first is None or handshake <= first


@dataclass(frozen=True)
class HandshakeReset(HandshakeFault):
    """The ClientHello is read, then a TCP RST: the proxy's connect fails (ECONNRESET)."""

    name: ClassVar[str] = "handshake_reset"
    arity: ClassVar[tuple[int, int]] = (0, 1)
    first: int | None = None


@dataclass(frozen=True)
class HandshakeStall(HandshakeFault):
    """The ClientHello is read, then nothing: the handshake never completes."""

    name: ClassVar[str] = "handshake_stall"
    arity: ClassVar[tuple[int, int]] = (0, 1)
    first: int | None = None


@dataclass(frozen=True)
class Cert(HandshakeFault):
    """The door presents a certificate no client may trust: unknown_ca, wrong_host, expired."""

    name: ClassVar[str] = "cert"
    arity: ClassVar[tuple[int, int]] = (1, 1)
    words: ClassVar[dict[str, tuple[str, ...]]] = {"kind": CERT_KINDS}
    cert: ClassVar[bool] = True
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in CERT_KINDS:
            raise ValueError(f"cert takes one of {', '.join(CERT_KINDS)}, not {self.kind!r}")

    @property
    def certificate(self) -> str:
        return self.kind

    def faults(self, handshake: int) -> bool:
        return False  # the handshake itself goes as TLS says: the client decides


HANDSHAKE_FAULTS: dict[str, type[HandshakeFault]] = {
    cls.name: cls for cls in (HandshakeReset, HandshakeStall, Cert)
}


def parse_handshake_fault(token: str) -> HandshakeFault:
    """`handshake_stall-1`, `cert-expired`: a handshake fault from its token."""
    name, *args = token.split("-")
    cls = HANDSHAKE_FAULTS.get(name)
    if cls is None:
        raise ValueError(f"no handshake fault {name!r} (they are {', '.join(HANDSHAKE_FAULTS)})")
    low, high = cls.arity
    if not low <= len(args) <= high:
        raise ValueError(f"{name} takes {low} to {high} parameters")
    words = cls.words.get("kind", ())
    values: list[int | str] = []
    for arg in args:
        if arg in words:
            values.append(arg)
        elif arg.isdigit():
            values.append(int(arg))
        else:
            wanted = f"one of {', '.join(words)}" if words else "a whole number"
            raise ValueError(f"{name} takes {wanted}, not {arg!r}")
    return cls(*values)
