"""A fake provider in a process of its own, for benchmarks: `python -m bench.fake_server`.

It starts a `FakeProvider` on 127.0.0.1 (an ephemeral port), prints the port on one line of
stdout, and serves until its stdin closes: the benchmark holds the pipe, so the fake ends
with it however the benchmark ends. In its own process its CPU never competes with the
measuring client for one interpreter's GIL, and its CPU time can be read on its own from
/proc.

The provider is the harness's own, unchanged, except that its journals are not kept: every
request gets a fresh journal that nothing holds on to (the server still writes into it on
every write, as in a test run), so a benchmark of tens of thousands of streams does not
grow the process by the tens of kilobytes each attempt's journal keeps.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamproof.fake_providers import FakeProvider, Journal
from streamproof.fake_providers.journal import Journals


class Unkept(Journals):
    """Journals that are written as usual but never kept: each request gets a new one."""

    def __getitem__(self, nonce: str) -> Journal:
        return Journal(nonce)


def main() -> int:
    provider = FakeProvider()
    provider.journals = Unkept()
    provider.start()
    try:
        print(provider.port, flush=True)
        sys.stdin.buffer.read()  # until the benchmark closes the pipe (or dies)
    finally:
        provider.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
