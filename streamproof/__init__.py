"""streamproof: a conformance harness for streaming LLM proxies.

Installed, everything lives under this one name: `streamproof.harness` (the pytest plugin),
`streamproof.fake_providers`, `streamproof.proxy` (the reference proxy) and
`streamproof.suites` (the cases). In the repository they are the top-level folders of the
same names, which this package's links point at; `streamproof.cli` is the command.
"""

from __future__ import annotations
