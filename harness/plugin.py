"""streamproof's pytest plugin: options, fixtures, verdicts and reports.

Loaded with `-p streamproof.harness.plugin` (the repository's conftest.py and the
`streamproof` command do it), never into a pytest session that did not ask for it. It
gives suites:

- `sut`: the system under test (by default the bundled reference proxy, started for the
  session on 127.0.0.1 and wired to a fake provider; under xdist, one per worker);
- `judge`: collects a case's findings; the verdict is worked out when the case ends;
- the `case` marker (through `harness.case(...)`), which names and numbers a test.

Each case's verdict (PASS, NON-STRICT, FAIL, INFO, SKIP, ERROR) and reason become its
record (`harness.results`), which travels in the report's `user_properties`, so it
survives xdist, and is shown in the terminal summary and in pytest-html's table, and
written to `results.json` (and, with `--verdicts-json`, to a flat list). A verdict the
user expected (`--expectations`, see `harness.expectations`) is accepted: shown as such,
it does not fail the run. `--collect-only` adds the catalogue of the collected cases.

It is three modules: `harness.options` (options, profiles, the selection of cases),
`harness.fixtures` (the fake provider, the system under test, live routes, the judge) and
`harness.reporting` (each case's verdict as a pytest report, pytest-html's table).
"""

from __future__ import annotations

pytest_plugins = [
    "streamproof.harness.options",
    "streamproof.harness.fixtures",
    "streamproof.harness.reporting",
]
