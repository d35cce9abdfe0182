"""JSON in: `json.loads` with one failure mode.

CPython's parser raises RecursionError, not ValueError, on input nested deeper than the
interpreter's recursion limit (`[[[[...` a hundred thousand deep fits in a request body).
Every parse of outside input goes through `loads`, so such input is just invalid JSON: a
400 for a client, a malformed stream for an upstream, never an uncaught error.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes | bytearray) -> Any:
    """`json.loads`, raising ValueError for anything it cannot parse, however deep."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None
