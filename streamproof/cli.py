"""`streamproof [pytest options]`: the installed suites, run by pytest, against a target.

    streamproof --target-cmd "python my_proxy.py --upstream {upstream} --port {port}"
    streamproof --target-cmd "..." --case 5 -n 2
    streamproof --target NAME            # a profile of ./targets.toml

It is `pytest` with streamproof's plugin (`-p streamproof.harness.plugin`) and the cases it
carries (`streamproof.suites`), under streamproof's own settings (`streamproof/pytest.ini`),
never the settings of the project it runs in. Every option of pytest and of the plugin
works as it does in `pytest suites/` (docs/running.md); the reports go to ./reports, and
profiles are read from ./targets.toml. Its exit status is pytest's.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SUITES = (HERE / "suites").resolve()
SETTINGS = HERE / "pytest.ini"


def arguments(argv: Sequence[str]) -> list[str]:
    """pytest's command line for `streamproof ARGV`."""
    # pytest-asyncio, where the environment has it, warns about a setting it wants set;
    # where it has not, the setting would be unknown: it is given only where it is wanted.
    asyncio = (
        ["-o", "asyncio_default_fixture_loop_scope=function"] if _has("pytest_asyncio") else []
    )
    return [
        "-c",
        str(SETTINGS),  # streamproof's settings, not those of the folder it runs in
        "--rootdir",
        str(SUITES.parent),  # the cases' node ids read `suites/test_api.py::...`
        "-p",
        "streamproof.harness.plugin",
        "-p",
        "no:cacheprovider",  # nothing written beside the installed cases
        *asyncio,
        *argv,
        str(SUITES),
    ]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main(argv: Sequence[str] | None = None) -> int:
    return int(pytest.main(arguments(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
