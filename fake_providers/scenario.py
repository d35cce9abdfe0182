"""Scenarios travel in the model name.

The request body's `model` is the one field every pass-through proxy forwards unchanged,
so the whole scenario is written there, in characters that survive routers and gateways
(letters, digits, `.`, `-`, `_`). Each token is `name` or `name-arg-arg`; an argument is a
whole number or one of a few fixed words:

    streamproof.id-k3x9q2.chunks-12.eol-crlf.split_eol.reset_after-6.first-2

- `streamproof` starts every scenario; any other model name gets the default answer.
- `id-…` names the request, so that its journal can be found (and retries counted).
- `first-K` makes every fault fire only on the first K attempts (later attempts are clean):
  "fail twice, then succeed" is `…reset_before_headers.first-2`.
- `via-NAME` is for the proxy, not for the fake: a marker its config can route on (the
  harness's config sends `*.via-fallback*` to a fallback chain, for example). The fake
  ignores it; NAME is 1 to 32 lowercase letters.

What the answer says (content tokens):

- `chunks-N`: how many content deltas it has (default 8).
- `text-KIND`: what the deltas are made of, drawn deterministically from an alphabet:
  `ascii`, `emoji` (ZWJ sequences, flags, skin tones), `cjk`, `combining` (letters with
  1-3 combining marks), `whitespace` (tab, NBSP, U+2028, U+2029, U+0085, U+3000, CR, LF),
  `control` (U+0000-U+001F and U+007F, which JSON must escape), `run` (4,096 x "a" in one
  delta, then 2,000 x "é" over the others), `rtl` (Arabic and Hebrew with bidi marks),
  `surrogates` (astral-plane characters); `text-random-SEED` draws 0-12 characters per
  delta from every plane (never a surrogate code point). Without it: a fixed mix of 1- to
  4-byte characters.
- `bigdelta-KB`: one more content delta, in the middle, of exactly KB x 1024 UTF-8 bytes.
- `emptydeltas`: a `{"content": ""}` delta between every two content deltas, and one
  `{"content": null}` delta after the last.
- `roleonly`: two role-only chunks (`{"role": "assistant"}`) before the usual role chunk.
- `tools-N`: after the content (`chunks-0` for none), one tool call whose JSON arguments are
  cut into N fragments at arbitrary characters; the finish reason becomes `tool_calls`.
- `choices-N`: N choices, their chunks interleaved round-robin; choice i's deltas are the
  deltas rotated by i; each choice finishes on its own.
- `finish-REASON`: every choice's finish_reason: `stop`, `length`, `tool_calls`,
  `content_filter` or `function_call`.
- `reasoning-N`: N reasoning deltas before the answer: `reasoning_content` deltas in chat
  completions (as Kimi K2 thinking and DeepSeek R1 send them), a thinking block in the
  Anthropic Messages API, a reasoning summary in the OpenAI Responses API.
- `ping-N` (Anthropic Messages only): one more `event: ping` after event N, besides the
  one the API sends after the first `content_block_start`.

The Anthropic Messages and OpenAI Responses APIs (`messages.py`, `responses.py`) take the
same scenarios; tokens that only mean something in chat completions (`choices-N` above 1,
`roleonly`, `emptydeltas`, the `usage-…` dialects, `reject_stream_options`) are refused
there with a 400 in that API's shape (`apis.py`).

Where the usage goes (usage tokens; the figures are exact, see `chat.expected_usage`):

- `usage-DIALECT`: `final` (the default, as OpenAI: when the request sets
  `stream_options.include_usage`, one last chunk with `choices: []` and `usage`, before
  `[DONE]`), `inchoice` (as Moonshot/Kimi: `usage` inside `choices[0]` of the last chunk, the
  last choice's finish, and no usage chunk), `cumulative` (every chunk carries the running
  `usage`, completion tokens counted on each choice's text joined so far; the last one is
  the final figure; no usage chunk), `always` (the final usage chunk even when the request
  did not ask for it), `none` (no usage anywhere, even when asked, nor in a whole answer),
  `zero` (all three figures 0 where the final usage would be). `final`, `inchoice`,
  `cumulative` and `zero` speak in a stream only when asked; a whole (non-streaming) answer
  carries top-level `usage` in every dialect but `none` (zeros with `zero`).
- `reject_stream_options`: a request whose body has `stream_options` at all gets HTTP 400
  with an OpenAI-style JSON error (code `unsupported_parameter`), as Mistral and NVIDIA NIM
  have done; without it the answer is normal. `reject_stream_options.usage-always` is "sends
  usage unasked, rejects the option". It is the provider's nature, not a fault: `first-K`
  does not turn it off.

How the events are written (format tokens, for streamed answers; a correct proxy relays
the same answer whatever they are):

- `eol-lf|crlf|cr` the line ending; `eol-mixed` cycles LF, CR, CRLF line by line.
- `bom`: one UTF-8 BOM starts the body.
- `comments`: `: ping` and a blank line before every event, and a `:` line inside the first
  event that carries the answer (the first content or tool delta, else the finish chunk).
- `nospace`: `data:{...}`, no space after the colon.
- `fields`: each event also has `id: <n>`, `event: message`, `x-streamproof: 1`, `x-flag`
  and, on the first, `retry: 1500`, before its data.
- `multiline`: each JSON payload over several `data:` lines, cut after commas outside strings.
- `unterminated`: the body ends right after `data: [DONE]`, no line ending: per WHATWG the
  `[DONE]` is never dispatched.
- `empty_data`: an event `data:` (dispatched with data "") before the first answer event.

Every other token is a fault from `faults.FAULTS`: `name` or `name-arg-arg`, e.g.
`reset_after-6`, `chop-3`, `status-429-2`. Three of them take a word:

- `nonobject-N-KIND`: event N's data is valid JSON but not an object: KIND `array`
  (`[1,2]`), `string` (`"chunk"`), `number` (`42`) or `null`.
- `upstream_error-N-SHAPE`: event N is an in-band error and the body ends there (no
  finish, no `[DONE]`): SHAPE `object` (`{"error": {...}}`), `flat` (`{"object": "error",
  ...}`), `event` (`event: error` + `data: {"message": ...}`) or `finish` (a chunk whose
  choices end with finish_reason `error`); in the Responses API also `failed` (a
  `response.failed` event). Each API's shapes: `errors.INBAND_SHAPES`.
- `stale-HOW`: a request that comes on a kept-alive connection (not the connection's first)
  finds that the server had closed it: the request is read, then HOW `close` (a FIN; over
  TLS, close_notify first) or `reset` (a TCP RST), and no answer. On a new connection it
  does nothing. It is how a pooled connection that went stale looks from the proxy.

`chat.expected(scenario)` says what the clean answer (no faults) means, choice by choice.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from streamproof.fake_providers.faults import FAULTS, Fault
from streamproof.fake_providers.text import TEXT_KINDS

PREFIX = "streamproof"
EOLS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
MIXED = "mixed"  # the eol that cycles through all three line endings
EOL_NAMES = (*EOLS, MIXED)
FORMATS = ("bom", "comments", "nospace", "fields", "multiline", "unterminated", "empty_data")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
CONTENT_TOKENS = (
    "text",
    "bigdelta",
    "emptydeltas",
    "roleonly",
    "tools",
    "choices",
    "finish",
    "reasoning",
    "ping",
)
USAGE_DIALECTS = ("final", "inchoice", "cumulative", "always", "none", "zero")
REJECT_STREAM_OPTIONS = "reject_stream_options"
USAGE_TOKENS = ("usage", REJECT_STREAM_OPTIONS)
RANDOM = "random"  # the text kind that takes a seed: `text-random-SEED`
MAX_BIGDELTA = 16_384  # KiB: 16 MiB in one delta
MAX_CHOICES = 128
_NONCE = re.compile(r"[A-Za-z0-9]{1,64}")
_VIA = re.compile(r"[a-z]{1,32}")
_WHOLE = re.compile(r"[0-9]{1,9}")  # a whole number small enough for any parameter


class ScenarioError(ValueError):
    """A model name that starts with `streamproof` but does not parse."""


@dataclass(frozen=True)
class Scenario:
    nonce: str = ""
    via: str = ""  # a route marker for the proxy's config; the fake ignores it
    chunks: int = 8
    eol: str = "lf"
    first: int | None = None
    faults: tuple[Fault, ...] = field(default=())
    text: str | None = None  # one of TEXT_KINDS, or RANDOM with a seed
    seed: int | None = None
    bigdelta: int | None = None  # KiB
    emptydeltas: bool = False
    roleonly: bool = False
    tools: int | None = None  # argument fragments of the one tool call
    choices: int = 1
    finish: str | None = None  # None: `stop`, or `tool_calls` with tools
    usage: str | None = None  # one of USAGE_DIALECTS; None: `final`
    reasoning: int | None = None  # reasoning deltas before the answer
    ping: int | None = None  # Anthropic Messages: one more ping after this event
    reject_stream_options: bool = False
    formats: frozenset[str] = field(default=frozenset())

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", frozenset(self.formats))
        if self.eol not in EOL_NAMES:
            raise ScenarioError(f"eol takes one of {', '.join(EOL_NAMES)}, not {self.eol!r}")
        if not 0 <= self.chunks <= 100_000:
            raise ScenarioError(f"chunks takes 0 to 100000, not {self.chunks}")
        if self.nonce and not _NONCE.fullmatch(self.nonce):
            raise ScenarioError("id takes 1 to 64 letters and digits")
        if self.via and not _VIA.fullmatch(self.via):
            raise ScenarioError("via takes 1 to 32 lowercase letters")
        if self.first is not None and self.first < 0:
            raise ScenarioError(f"first takes a whole number of attempts, not {self.first}")
        if self.text is not None and self.text not in (*TEXT_KINDS, RANDOM):
            raise ScenarioError(f"text takes one of {_kinds()}, not {self.text!r}")
        if (self.text == RANDOM) != (self.seed is not None) or (self.seed or 0) < 0:
            raise ScenarioError("a seed (a whole number) goes with text random, and only there")
        if self.bigdelta is not None and not 1 <= self.bigdelta <= MAX_BIGDELTA:
            raise ScenarioError(f"bigdelta takes 1 to {MAX_BIGDELTA} KiB, not {self.bigdelta}")
        if self.tools is not None and not 1 <= self.tools <= 100_000:
            raise ScenarioError(f"tools takes 1 to 100000 fragments, not {self.tools}")
        if self.reasoning is not None and not 1 <= self.reasoning <= 100_000:
            raise ScenarioError(f"reasoning takes 1 to 100000 deltas, not {self.reasoning}")
        if not 1 <= self.choices <= MAX_CHOICES:
            raise ScenarioError(f"choices takes 1 to {MAX_CHOICES}, not {self.choices}")
        if self.finish is not None and self.finish not in FINISH_REASONS:
            raise ScenarioError(f"finish takes one of {', '.join(FINISH_REASONS)}")
        if self.usage is not None and self.usage not in USAGE_DIALECTS:
            raise ScenarioError(f"usage takes one of {', '.join(USAGE_DIALECTS)}")
        if not self.formats <= set(FORMATS):
            unknown = ", ".join(sorted(self.formats - set(FORMATS)))
            raise ScenarioError(f"unknown format {unknown}; formats: {', '.join(FORMATS)}")

    @property
    def model(self) -> str:
        tokens = [PREFIX]
        if self.nonce:
            tokens.append(f"id-{self.nonce}")
        if self.via:
            tokens.append(f"via-{self.via}")
        tokens.append(f"chunks-{self.chunks}")
        if self.eol != "lf":
            tokens.append(f"eol-{self.eol}")
        if self.text is not None:
            tokens.append(f"text-{self.text}" + (f"-{self.seed}" if self.text == RANDOM else ""))
        if self.bigdelta is not None:
            tokens.append(f"bigdelta-{self.bigdelta}")
        tokens += [name for name in ("emptydeltas", "roleonly") if getattr(self, name)]
        if self.tools is not None:
            tokens.append(f"tools-{self.tools}")
        if self.choices != 1:
            tokens.append(f"choices-{self.choices}")
        if self.reasoning is not None:
            tokens.append(f"reasoning-{self.reasoning}")
        if self.ping is not None:
            tokens.append(f"ping-{self.ping}")
        if self.finish is not None:
            tokens.append(f"finish-{self.finish}")
        if self.usage is not None:
            tokens.append(f"usage-{self.usage}")
        if self.reject_stream_options:
            tokens.append(REJECT_STREAM_OPTIONS)
        tokens += [name for name in FORMATS if name in self.formats]
        tokens.extend(fault.token for fault in self.faults)
        if self.first is not None:
            tokens.append(f"first-{self.first}")
        return ".".join(tokens)

    @property
    def usage_dialect(self) -> str:
        """Where (and whether) the usage goes: one of USAGE_DIALECTS."""
        return self.usage or "final"

    @property
    def finish_reason(self) -> str:
        """The finish_reason every choice ends with."""
        return self.finish or ("tool_calls" if self.tools is not None else "stop")

    def faults_for(self, attempt: int) -> list[Fault]:
        """The faults that fire on this (1-based) attempt, in the order they apply."""
        if self.first is not None and attempt > self.first:
            return []
        return sorted(self.faults, key=lambda fault: fault.stage)

    @classmethod
    def parse(cls, model: str) -> Scenario:
        """Read a scenario from a model name; a name without the prefix is the default."""
        head, _, rest = model.partition(".")
        if head != PREFIX:
            return cls()
        fields: dict[str, Any] = {}
        faults: list[Fault] = []
        formats: set[str] = set()
        for token in rest.split(".") if rest else []:
            name, *args = token.split("-")
            if name == "id":
                if len(args) != 1 or not _NONCE.fullmatch(args[0]):
                    raise ScenarioError(f"{token!r}: id takes 1 to 64 letters and digits")
                fields["nonce"] = args[0]
            elif name == "via":
                if len(args) != 1 or not _VIA.fullmatch(args[0]):
                    raise ScenarioError(f"{token!r}: via takes 1 to 32 lowercase letters")
                fields["via"] = args[0]
            elif name == "eol":
                if len(args) != 1:
                    raise ScenarioError(f"{token!r}: eol takes one of {', '.join(EOL_NAMES)}")
                fields["eol"] = args[0]
            elif name in ("chunks", "first", "bigdelta", "tools", "choices", "reasoning", "ping"):
                (fields[name],) = _integers(token, args, 1, 1)
            elif name in ("emptydeltas", "roleonly", REJECT_STREAM_OPTIONS):
                _integers(token, args, 0, 0)
                fields[name] = True
            elif name == "text":
                fields.update(_text(token, args))
            elif name == "finish":
                if len(args) != 1 or args[0] not in FINISH_REASONS:
                    reasons = ", ".join(FINISH_REASONS)
                    raise ScenarioError(f"{token!r}: finish takes one of {reasons}")
                fields["finish"] = args[0]
            elif name == "usage":
                if len(args) != 1 or args[0] not in USAGE_DIALECTS:
                    dialects = ", ".join(USAGE_DIALECTS)
                    raise ScenarioError(f"{token!r}: usage takes one of {dialects}")
                fields["usage"] = args[0]
            elif name in FORMATS:
                _integers(token, args, 0, 0)
                formats.add(name)
            elif name in FAULTS:
                faults.append(_fault(token, FAULTS[name], args))
            else:
                accepted = ", ".join(
                    [
                        "id",
                        "via",
                        "chunks",
                        "eol",
                        "first",
                        *FAULTS,
                        *CONTENT_TOKENS,
                        *FORMATS,
                        *USAGE_TOKENS,
                    ]
                )
                raise ScenarioError(f"unknown scenario token {token!r}; accepted: {accepted}")
        return cls(faults=tuple(faults), formats=frozenset(formats), **fields)


def _kinds() -> str:
    return ", ".join(TEXT_KINDS) + f", or {RANDOM}-SEED"


def _text(token: str, args: list[str]) -> dict[str, Any]:
    if len(args) == 1 and args[0] in TEXT_KINDS:
        return {"text": args[0], "seed": None}
    if len(args) == 2 and args[0] == RANDOM:
        (seed,) = _integers(token, args[1:], 1, 1)
        return {"text": RANDOM, "seed": seed}
    raise ScenarioError(f"{token!r}: text takes one of {_kinds()}")


def _fault(token: str, fault_cls: type[Fault], args: list[str]) -> Fault:
    """Build a fault from its token's arguments: whole numbers, or the words it accepts."""
    if not fault_cls.words:
        values: list[int | str] = list(_integers(token, args, *fault_cls.arity))
    else:
        params = dataclasses.fields(fault_cls)  # type: ignore[arg-type]
        wanted = "-".join(
            "|".join(fault_cls.words[p.name]) if p.name in fault_cls.words else p.name
            for p in params
        )
        least, most = fault_cls.arity
        if not least <= len(args) <= most:
            raise ScenarioError(f"{token!r}: takes {fault_cls.name}-{wanted}")
        values = []
        for param, arg in zip(params, args, strict=False):
            words = fault_cls.words.get(param.name)
            if words is None:
                values += _integers(token, [arg], 1, 1)
            elif arg in words:
                values.append(arg)
            else:
                raise ScenarioError(f"{token!r}: {param.name} takes one of {', '.join(words)}")
    try:
        return fault_cls(*values)
    except ValueError as exc:
        raise ScenarioError(f"{token!r}: {exc}") from None


def _integers(token: str, args: list[str], least: int, most: int) -> list[int]:
    if not least <= len(args) <= most or not all(_WHOLE.fullmatch(arg) for arg in args):
        wanted = str(least) if least == most else f"{least} to {most}"
        raise ScenarioError(f"{token!r}: takes {wanted} whole-number argument(s) of 1 to 9 digits")
    return [int(arg) for arg in args]
