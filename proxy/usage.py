"""Usage the client and the log can trust: the provider's figures, else a marked estimate.

Policy (docs/design.md, "The commit point", last bullet; docs/failures.md, "Token counting"):

- Reported usage is read from every place providers put it: the top-level `usage` of any
  chunk (OpenAI's final `choices: []` chunk, or cumulative figures on every chunk) and
  `choices[i].usage` (Moonshot/Kimi). The last report seen wins; figures are never summed.
  A usage object is a report when it holds integer `prompt_tokens` and `completion_tokens`
  (an explicit 0 is a report); `null` or anything else is not.
- When the provider reported nothing, the estimate is the cookbook prompt formula on the
  request's messages plus the completion counted once on the joined text relayed, and it
  carries `"estimated": true` inside `usage`.
- The client gets usage only if it asked (`stream_options.include_usage: true`): then exactly
  one final chunk, `choices: []`, right before `[DONE]`. Usage is stripped from every other
  chunk; a chunk left with no choices is dropped. Chunks without usage keep their bytes.
- A failed or abandoned stream still has a `Usage` (the last report, else the estimate of
  what was relayed), for the request's log line and the later health report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamproof.proxy.tokens import StreamCounter, count_message, count_prompt

CHUNK_OBJECT = "chat.completion.chunk"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt: int
    completion: int
    total: int
    estimated: bool

    def describe(self) -> str:
        kind = "estimated" if self.estimated else "reported"
        return f"prompt={self.prompt} completion={self.completion} total={self.total} ({kind})"

    def as_json(self) -> dict[str, Any]:
        """The OpenAI `usage` object of an estimate (a report is forwarded as it came)."""
        body: dict[str, Any] = {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.total,
        }
        if self.estimated:
            body["estimated"] = True
        return body


@dataclass(frozen=True, slots=True)
class Report:
    """A provider's usage object, kept as it came (plus `total_tokens` when it was left out)."""

    raw: Mapping[str, Any]
    usage: Usage


def read_report(value: object) -> Report | None:
    """The provider's usage report in `value`, or None when it is not one."""
    if not isinstance(value, Mapping):
        return None
    prompt = _tokens(value.get("prompt_tokens"))
    completion = _tokens(value.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    total = _tokens(value.get("total_tokens"))
    raw = dict(value)
    if total is None:
        total = raw["total_tokens"] = prompt + completion
    return Report(raw, Usage(prompt, completion, total, estimated=False))


def _tokens(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def estimate(messages: Sequence[Any], completion: int) -> Usage:
    prompt = count_prompt(messages)
    return Usage(prompt, completion, prompt + completion, estimated=True)


def _dumps(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class UsageMeter:
    """One streamed attempt's usage: watches each chunk, rewrites the ones that carry usage."""

    def __init__(self, include_usage: bool = False, messages: Sequence[Any] = ()) -> None:
        self.include_usage = include_usage  # the client asked for the final usage chunk
        self._messages = messages
        self.counter = StreamCounter()
        self.report: Report | None = None
        self._metadata: dict[str, Any] = {"id": "", "created": 0, "model": ""}

    def relay(self, chunk: dict[str, Any], data: bytes) -> bytes | None:
        """What to forward for one parsed chunk: `data` itself, a copy without usage, or None.

        The chunk's text is taken for the estimate only when it is forwarded. Nearly every
        chunk has one choice and no `usage` key at all: it skips the search for usage.
        """
        metadata = self._metadata
        for key in ("id", "created", "model"):
            if key in chunk:
                metadata[key] = chunk[key]
        try:
            (choice,) = chunk["choices"]
            plain = type(choice) is dict and "usage" not in choice and "usage" not in chunk
        except (KeyError, TypeError, ValueError):  # no choices, or not one: look for usage
            plain = False
        if not plain:
            stripped = self._strip_usage(chunk)
            if stripped is not None:
                choices = stripped.get("choices")
                if not choices:
                    return None  # usage only: the client gets the proxy's own final chunk, or none
                chunk, data = stripped, _dumps(stripped)
        self.counter.feed(chunk)
        return data

    def _strip_usage(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk without its usage (recorded, last wins); None when it carried none."""
        found = False
        if chunk.get("usage") is not None:
            found = True
            self._record(chunk["usage"])
            chunk = {key: value for key, value in chunk.items() if key != "usage"}
        choices = chunk.get("choices")
        if isinstance(choices, list) and any(
            isinstance(choice, dict) and choice.get("usage") is not None for choice in choices
        ):
            found = True
            kept = []
            for choice in choices:
                if isinstance(choice, dict) and choice.get("usage") is not None:
                    self._record(choice["usage"])
                    choice = {key: value for key, value in choice.items() if key != "usage"}
                kept.append(choice)
            chunk = {**chunk, "choices": kept}
        return chunk if found else None

    def _record(self, value: object) -> None:
        report = read_report(value)
        if report is not None:
            self.report = report

    def usage(self) -> Usage:
        """The provider's last report, else the estimate of what was relayed so far."""
        if self.report is not None:
            return self.report.usage
        return estimate(self._messages, self.counter.count())

    def final_chunk(self) -> bytes | None:
        """The one usage chunk for the client, or None when it did not ask for one."""
        if not self.include_usage:
            return None
        body = self.report.raw if self.report is not None else self.usage().as_json()
        meta = self._metadata
        return _dumps(
            {
                "id": meta["id"],
                "object": CHUNK_OBJECT,
                "created": meta["created"],
                "model": meta["model"],
                "choices": [],
                "usage": body,
            }
        )


def complete_answer(
    body: bytes, answer: dict[str, Any], messages: Sequence[Any]
) -> tuple[bytes, Usage]:
    """A non-streamed answer with its usage: the provider's, exactly, else a marked estimate.

    The body's bytes are unchanged when its top-level `usage` is a report. A report found
    only inside a choice (Moonshot/Kimi) is moved to the top level.
    """
    report = read_report(answer.get("usage"))
    if report is not None:
        return body, report.usage
    choices = answer.get("choices")
    choices = choices if isinstance(choices, list) else []
    for choice in choices:
        if isinstance(choice, dict) and (found := read_report(choice.get("usage"))) is not None:
            report = found
    rewritten = [
        {key: value for key, value in choice.items() if key != "usage"}
        if isinstance(choice, dict)
        else choice
        for choice in choices
    ]
    if report is not None:
        usage = report.usage
        document = {**answer, "choices": rewritten, "usage": report.raw}
    else:
        completion = sum(
            count_message(choice["message"])
            for choice in rewritten
            if isinstance(choice, dict) and isinstance(choice.get("message"), Mapping)
        )
        usage = estimate(messages, completion)
        document = {**answer, "choices": rewritten, "usage": usage.as_json()}
    if "choices" not in answer:
        del document["choices"]
    return _dumps(document), usage
