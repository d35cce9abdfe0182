"""Scenarios travel in the model name.

The request body's `model` is the one field every pass-through proxy forwards unchanged,
so the whole scenario is written there, in characters that survive routers and gateways
(letters, digits, `.`, `-`, `_`):

    streamproof.id-k3x9q2.chunks-12.eol-crlf.split_eol.reset_after-6.first-2

- `streamproof` starts every scenario; any other model name gets the default answer.
- `id-…` names the request, so that its journal can be found (and retries counted).
- `chunks-N` is how many content deltas the answer has; `eol-lf|crlf|cr` its line endings.
- `first-K` makes every fault fire only on the first K attempts (later attempts are clean):
  "fail twice, then succeed" is `…reset_before_headers.first-2`.
- every other token is a fault from `faults.FAULTS`: `name` or `name-arg-arg`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fake_providers.faults import FAULTS, Fault

PREFIX = "streamproof"
EOLS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
_NONCE = re.compile(r"[A-Za-z0-9]{1,64}")
_WHOLE = re.compile(r"[0-9]{1,9}")  # a whole number small enough for any parameter


class ScenarioError(ValueError):
    """A model name that starts with `streamproof` but does not parse."""


@dataclass(frozen=True)
class Scenario:
    nonce: str = ""
    chunks: int = 8
    eol: str = "lf"
    first: int | None = None
    faults: tuple[Fault, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.eol not in EOLS:
            raise ScenarioError(f"eol takes one of {', '.join(EOLS)}, not {self.eol!r}")
        if not 0 <= self.chunks <= 100_000:
            raise ScenarioError(f"chunks takes 0 to 100000, not {self.chunks}")
        if self.nonce and not _NONCE.fullmatch(self.nonce):
            raise ScenarioError("id takes 1 to 64 letters and digits")
        if self.first is not None and self.first < 0:
            raise ScenarioError(f"first takes a whole number of attempts, not {self.first}")

    @property
    def model(self) -> str:
        tokens = [PREFIX]
        if self.nonce:
            tokens.append(f"id-{self.nonce}")
        tokens.append(f"chunks-{self.chunks}")
        if self.eol != "lf":
            tokens.append(f"eol-{self.eol}")
        tokens.extend(fault.token for fault in self.faults)
        if self.first is not None:
            tokens.append(f"first-{self.first}")
        return ".".join(tokens)

    def faults_for(self, attempt: int) -> list[Fault]:
        """The faults that fire on this (1-based) attempt, in the order they apply."""
        if self.first is not None and attempt > self.first:
            return []
        return sorted(self.faults, key=lambda fault: fault.stage)

    @classmethod
    def parse(cls, model: str) -> Scenario:
        """Read a scenario from a model name; a name without the prefix is the default."""
        head, _, rest = model.partition(".")
        if head != PREFIX:
            return cls()
        nonce, chunks, eol, first, faults = "", 8, "lf", None, []
        for token in rest.split(".") if rest else []:
            name, *args = token.split("-")
            if name == "id":
                if len(args) != 1 or not _NONCE.fullmatch(args[0]):
                    raise ScenarioError(f"{token!r}: id takes 1 to 64 letters and digits")
                nonce = args[0]
            elif name == "eol":
                if len(args) != 1:
                    raise ScenarioError(f"{token!r}: eol takes one of {', '.join(EOLS)}")
                eol = args[0]
            elif name in ("chunks", "first"):
                (value,) = _integers(token, args, 1, 1)
                if name == "chunks":
                    chunks = value
                else:
                    first = value
            elif name in FAULTS:
                fault_cls = FAULTS[name]
                values = _integers(token, args, *fault_cls.arity)
                try:
                    faults.append(fault_cls(*values))
                except ValueError as exc:
                    raise ScenarioError(f"{token!r}: {exc}") from None
            else:
                accepted = ", ".join(["id", "chunks", "eol", "first", *FAULTS])
                raise ScenarioError(f"unknown scenario token {token!r}; accepted: {accepted}")
        return cls(nonce=nonce, chunks=chunks, eol=eol, first=first, faults=tuple(faults))


def _integers(token: str, args: list[str], least: int, most: int) -> list[int]:
    if not least <= len(args) <= most or not all(_WHOLE.fullmatch(arg) for arg in args):
        wanted = str(least) if least == most else f"{least} to {most}"
        raise ScenarioError(f"{token!r}: takes {wanted} whole-number argument(s) of 1 to 9 digits")
    return [int(arg) for arg in args]
