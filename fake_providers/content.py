"""What the clean answer to a scenario says, chunk by chunk, before it is written: `Step`s.

The answer is a script per choice, then the scripts interleaved round-robin:

    [role-only, role-only]   with `roleonly`
    role                     {"role": "assistant", "content": ""}
    reasoning deltas         with `reasoning-N`: {"reasoning_content": "..."}, as Kimi K2
                             thinking and DeepSeek R1 stream them, before the answer
    content deltas           the text (rotated by the choice's index), with `{"content": ""}`
                             between them and one `{"content": null}` after with `emptydeltas`
    tool-call deltas         with `tools-N`: the first names the function, each carries a
                             fragment of the arguments
    finish                   {} with the scenario's finish_reason

How the steps become bytes is `formats.py`'s business; what a correct relay of them must
carry is `chat.expected`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

from streamproof.fake_providers import text
from streamproof.fake_providers.plan import FrameKind
from streamproof.fake_providers.scenario import RANDOM, Scenario

TOOL_NAME = "get_weather"
# Tool-call arguments: a JSON object with nesting, non-ASCII text and escapes of every kind.
ARGUMENTS = (
    r'{"city": "Zürich", "query": "say \"hi\"\n\ttab \\ \u00e9t\u00e9 🙂 日本", '
    r'"days": [1, 2.5, -3e2], "filters": {"ok": true, "none": null, '
    r'"tags": ["naïve", "東京", ""], "path": "C:\\tmp\/x"}}'
)
# Cuts that the fragments always make first, so that even `tools-3` cuts inside an escape:
# after the backslash of \", inside \u00e9, inside \\ and inside a non-ASCII string.
_FORCED_CUTS = (
    ARGUMENTS.index(r"\"hi") + 1,
    ARGUMENTS.index(r"\u00e9") + 3,
    ARGUMENTS.index("Zürich") + 2,
    ARGUMENTS.index(r"\\ ") + 1,
)


class ToolCall(NamedTuple):
    """One tool call as a client reassembles it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Step:
    """One chunk of the clean answer: a delta of one choice, not yet written."""

    kind: FrameKind
    choice: int
    delta: dict[str, Any]
    finish: str | None = None
    content: str = ""  # the content it adds
    arguments: str = ""  # the tool-call arguments it adds
    reasoning: str = ""  # the reasoning it adds


def content_deltas(scenario: Scenario) -> list[str]:
    """The content deltas of choice 0, in order (choice i's are these rotated by i)."""
    if scenario.text is None:
        parts = text.deltas(scenario.chunks)
    elif scenario.text == RANDOM:
        parts = text.random_deltas(scenario.seed or 0, scenario.chunks)
    else:
        parts = text.kind_deltas(scenario.text, scenario.chunks)
    if scenario.bigdelta is not None:
        parts.insert(len(parts) // 2, text.big_delta(scenario.bigdelta))
    return parts


def reasoning_deltas(scenario: Scenario) -> list[str]:
    """The reasoning deltas of `reasoning-N` (none without it), the same for every choice."""
    return text.thoughts(scenario.reasoning or 0)


def rotated(parts: list[str], choice: int) -> list[str]:
    """Choice `choice`'s deltas: the same parts, starting `choice` places further on."""
    if not parts:
        return []
    shift = choice % len(parts)
    return parts[shift:] + parts[:shift]


def tool_call(choice: int) -> ToolCall:
    """The one tool call of a choice with `tools-N`."""
    return ToolCall(f"call_streamproof_{choice}", TOOL_NAME, ARGUMENTS)


def argument_fragments(count: int) -> list[str]:
    """`ARGUMENTS` cut into `count` fragments at arbitrary characters; some may be empty
    only when there are more fragments than characters."""
    rng = random.Random(f"tools-{count}")
    interior = range(1, len(ARGUMENTS))
    cuts = list(_FORCED_CUTS[: count - 1])
    others = [at for at in interior if at not in cuts]
    wanted = count - 1 - len(cuts)
    if wanted <= len(others):
        cuts += rng.sample(others, wanted)
    else:
        cuts = [*interior, *rng.choices(interior, k=count - len(ARGUMENTS))]
    bounds = [0, *sorted(cuts), len(ARGUMENTS)]
    return [ARGUMENTS[start:end] for start, end in itertools.pairwise(bounds)]


def script(scenario: Scenario, choice: int, parts: list[str]) -> list[Step]:
    """The steps of one choice, given choice 0's content deltas."""
    delta: dict[str, Any]
    role = {"role": "assistant"}
    steps = [Step(FrameKind.ROLE, choice, role)] * (2 if scenario.roleonly else 0)
    steps.append(Step(FrameKind.ROLE, choice, {**role, "content": ""}))
    for thought in reasoning_deltas(scenario):
        delta = {"reasoning_content": thought}
        steps.append(Step(FrameKind.REASONING, choice, delta, reasoning=thought))
    for number, part in enumerate(rotated(parts, choice)):
        if scenario.emptydeltas and number:
            steps.append(Step(FrameKind.CONTENT, choice, {"content": ""}))
        steps.append(Step(FrameKind.CONTENT, choice, {"content": part}, content=part))
    if scenario.emptydeltas:
        steps.append(Step(FrameKind.CONTENT, choice, {"content": None}))
    if scenario.tools is not None:
        call = tool_call(choice)
        for number, fragment in enumerate(argument_fragments(scenario.tools)):
            function = {"arguments": fragment}
            delta = {"index": 0, "function": function}
            if number == 0:
                function = {"name": call.name, **function}
                delta = {"index": 0, "id": call.id, "type": "function", "function": function}
            step = Step(FrameKind.TOOL, choice, {"tool_calls": [delta]}, arguments=fragment)
            steps.append(step)
    steps.append(Step(FrameKind.FINISH, choice, {}, finish=scenario.finish_reason))
    return steps


def steps(scenario: Scenario) -> list[Step]:
    """Every choice's steps, interleaved round-robin: choice 0, 1, …, then 0, 1, … again."""
    parts = content_deltas(scenario)
    scripts = [script(scenario, choice, parts) for choice in range(scenario.choices)]
    return [step for row in itertools.zip_longest(*scripts) for step in row if step is not None]


def first_answer(steps: list[Step]) -> int:
    """The index of the first step that carries the answer: reasoning, content or a tool
    call, else the first finish. Formats that put something inside or before "the answer" use it."""
    for index, step in enumerate(steps):
        if step.kind in (FrameKind.CONTENT, FrameKind.TOOL, FrameKind.REASONING):
            return index
    return next(i for i, step in enumerate(steps) if step.kind is FrameKind.FINISH)
