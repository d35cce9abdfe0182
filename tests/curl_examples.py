"""The curl examples of a Markdown document, run with httpx, and what a terminal would show.

A document shows a command in a ```sh block and, in the ```text block right after it, what
the terminal then shows; a ```text fake block after that, if any, shows the lines the fake
provider (`python -m streamproof.fake_providers`) printed for those requests. This module
reads those blocks, sends each command's request (the same method, URL, headers and body)
with httpx, renders what curl would have printed for the options it uses, and matches it
with the text shown, in which `…` stands for text left out of a line and a line of `…`
alone for whole lines left out. Trailing spaces and CRs at line ends are not compared (a
terminal does not show them; `| cat -A` does).

Only what the documents use is understood, and anything else is an error (`Unsupported`),
so no example can go unchecked by saying something this module would ignore:

- `curl` with `-s` (required: no progress meter), `-S`, `-N`, `-i`, combined as `-sSN`;
  `-m SECONDS`, `-d DATA`, `-H 'NAME: VALUE'`, `-X METHOD`, `-o /dev/null`,
  `-w FORMAT` (`%{http_code}` and `\\n`); one URL, in which `$NAME` is a variable;
- `... | cat -A`;
- `for VAR in A B C; do COMMAND; done`: the command once per word;
- `#` comments, and `\\` at a line's end to continue it.

What curl prints when a transfer fails is rendered from the httpx error: a reset
(ECONNRESET) is curl's error 56, a timeout of `-m` its 28, a chunked body that ends early
its 18; the messages are curl 7.88's. A timeout without `-m` is an error: curl would wait.
"""

from __future__ import annotations

import errno
import json
import re
import shlex
import time
from dataclasses import dataclass, field

import httpx

ELLIPSIS = "…"
DEFAULT_TIMEOUT = 10.0  # a wait longer than this, without -m, is an example that hangs
_FOR = re.compile(r"for (\w+) in ([^;]+); do (.+); done")
_VALUED = {"-d", "-H", "-X", "-m", "-o", "-w"}
_FLAGS = set("sSNi")


class Unsupported(ValueError):
    """A command (or a transfer) this module does not render as curl would."""


@dataclass(frozen=True)
class Curl:
    """One curl invocation, as parsed."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    data: str | None = None
    flags: frozenset[str] = frozenset()
    max_time: float | None = None
    discard: bool = False  # -o /dev/null
    write_out: str | None = None
    cat_a: bool = False  # | cat -A

    @property
    def model(self) -> str | None:
        """The `model` of a JSON body, if it has one."""
        try:
            body = json.loads(self.data or "")
        except ValueError:
            return None
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None


@dataclass(frozen=True)
class Example:
    line: int  # of the ```sh block in the document, 1-based
    command: str
    runs: tuple[Curl, ...]
    shown: str  # what the terminal shows
    fake: str | None = None  # what the fake printed, if the document shows it

    @property
    def models(self) -> list[str]:
        return [model for model in (run.model for run in self.runs) if model is not None]


@dataclass
class _Block:
    line: int
    info: str
    text: str
    lines: list[str] = field(default_factory=list)


def blocks(markdown: str) -> list[_Block]:
    """The fenced code blocks of a document, in order."""
    found: list[_Block] = []
    current: _Block | None = None
    for number, line in enumerate(markdown.splitlines(), start=1):
        if current is None:
            if line.startswith("```"):
                current = _Block(number, line[3:].strip(), "")
        elif line.startswith("```"):
            current.text = "\n".join(current.lines)
            found.append(current)
            current = None
        else:
            current.lines.append(line)
    if current is not None:
        raise Unsupported(f"line {current.line}: a code block that is never closed")
    return found


def examples(markdown: str) -> list[Example]:
    """Every ```sh block that runs curl, with the output shown after it."""
    found: list[Example] = []
    fenced = blocks(markdown)
    for index, block in enumerate(fenced):
        if block.info != "sh" or not re.search(r"^\s*(for .*; do )?curl ", block.text, re.M):
            continue
        after = fenced[index + 1 : index + 3]
        if not after or after[0].info != "text":
            raise Unsupported(f"line {block.line}: a curl example with no ```text output after it")
        fake = after[1].text if len(after) > 1 and after[1].info == "text fake" else None
        runs = tuple(run for command in commands(block.text) for run in command)
        found.append(Example(block.line, block.text, runs, after[0].text, fake))
    return found


def commands(script: str) -> list[list[Curl]]:
    """The curl runs of each command of a shell snippet."""
    joined = re.sub(r"\\\n\s*", "", script)
    lines = [line.strip() for line in joined.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    # A loop over several lines is written on one: `for …; do A; B; done`.
    text = "\n".join(lines)
    text = re.sub(r"(?m)^(for [^\n]*; do)\n((?:(?!done$)[^\n]*\n)*?)done$", _one_line, text)
    parsed: list[list[Curl]] = []
    for line in text.splitlines():
        loop = _FOR.fullmatch(line)
        if loop is None:
            parsed.append([parse_curl(line)])
            continue
        variable, words, body = loop.groups()
        if f"${variable}" in body or f"${{{variable}}}" in body:
            raise Unsupported(f"{line!r}: the loop variable is not substituted here")
        runs = [parse_curl(command.strip()) for command in body.split("; ")]
        parsed.append(runs * len(words.split()))
    return parsed


def _one_line(loop: re.Match[str]) -> str:
    body = "; ".join(loop.group(2).splitlines())
    return f"{loop.group(1)} {body}; done"


def parse_curl(command: str) -> Curl:
    stages = [stage.strip() for stage in command.split(" | ")]
    cat_a = False
    for stage in stages[1:]:
        if stage != "cat -A":
            raise Unsupported(f"{command!r}: only `| cat -A` is understood after curl")
        cat_a = True
    args = shlex.split(stages[0])
    if not args or args[0] != "curl":
        raise Unsupported(f"{command!r}: not a curl command")
    url: str | None = None
    values: dict[str, str] = {}
    headers: list[tuple[str, str]] = []
    flags: set[str] = set()
    rest = iter(args[1:])
    for arg in rest:
        if arg in _VALUED:
            value = next(rest, None)
            if value is None:
                raise Unsupported(f"{command!r}: {arg} without its value")
            if arg == "-H":
                name, colon, text = value.partition(":")
                if not colon:
                    raise Unsupported(f"{command!r}: -H {value!r} is not `Name: value`")
                headers.append((name.strip(), text.strip()))
            elif arg in values:
                raise Unsupported(f"{command!r}: {arg} given twice")
            else:
                values[arg] = value
        elif arg.startswith("-") and len(arg) > 1 and set(arg[1:]) <= _FLAGS:
            flags |= set(arg[1:])
        elif arg.startswith("-"):
            raise Unsupported(f"{command!r}: option {arg} is not understood here")
        elif url is None:
            url = arg
        else:
            raise Unsupported(f"{command!r}: a second URL {arg!r}")
    if url is None:
        raise Unsupported(f"{command!r}: no URL")
    if "s" not in flags:
        raise Unsupported(f"{command!r}: without -s curl prints a progress meter")
    if values.get("-o", "/dev/null") != "/dev/null":
        raise Unsupported(f"{command!r}: -o is understood only as -o /dev/null")
    data = values.get("-d")
    return Curl(
        url=url,
        method=values.get("-X", "POST" if data is not None else "GET"),
        headers=tuple(headers),
        data=data,
        flags=frozenset(flags),
        max_time=float(values["-m"]) if "-m" in values else None,
        discard="-o" in values,
        write_out=values.get("-w"),
        cat_a=cat_a,
    )


def expand(text: str, variables: dict[str, str]) -> str:
    """`text` with `$NAME` replaced by its value; an unknown variable is an error."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in variables:
            raise Unsupported(f"${match.group(1)} has no value here")
        return variables[match.group(1)]

    return re.sub(r"\$(\w+)", value, text)


def terminal(curl: Curl, client: httpx.Client, variables: dict[str, str]) -> str:
    """What the terminal shows for one run: curl's stdout, then its error line, if any."""
    headers = {"accept": "*/*"}
    if curl.data is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"  # curl's, for -d
    for name, value in curl.headers:
        headers[name.lower()] = value
    wait = curl.max_time if curl.max_time is not None else DEFAULT_TIMEOUT
    out, body, status, error = bytearray(), 0, 0, ""
    started = time.monotonic()
    try:
        with client.stream(
            curl.method,
            expand(curl.url, variables),
            content=None if curl.data is None else curl.data.encode(),
            headers=headers,
            timeout=httpx.Timeout(wait),
        ) as response:
            status = response.status_code
            if "i" in curl.flags:
                reason = response.reason_phrase
                out += f"{response.http_version} {status} {reason}\r\n".encode()
                for raw_name, raw_value in response.headers.raw:
                    out += raw_name + b": " + raw_value + b"\r\n"
                out += b"\r\n"
            for piece in response.iter_raw():
                body += len(piece)
                if not curl.discard:
                    out += piece
    except httpx.ReadError as exc:
        if not _reset(exc):
            raise Unsupported(f"a read error curl would name otherwise: {exc!r}") from exc
        error = "curl: (56) Recv failure: Connection reset by peer"
    except httpx.TimeoutException as exc:
        if curl.max_time is None:
            raise Unsupported(f"no answer in {DEFAULT_TIMEOUT:g} s: curl would wait") from exc
        elapsed = round((time.monotonic() - started) * 1000)
        error = (
            f"curl: (28) Operation timed out after {elapsed} milliseconds "
            f"with {body} bytes received"
        )
    except httpx.RemoteProtocolError as exc:
        if "incomplete chunked read" not in str(exc):
            raise Unsupported(f"a protocol error curl would name otherwise: {exc!r}") from exc
        error = "curl: (18) transfer closed with outstanding read data remaining"
    if curl.write_out is not None:
        if error:
            raise Unsupported("-w after a failed transfer is not rendered here")
        out += curl.write_out.replace("%{http_code}", f"{status:03d}").replace("\\n", "\n").encode()
    text = (cat_a(bytes(out)) if curl.cat_a else bytes(out)).decode("utf-8", errors="replace")
    if error and "S" in curl.flags:
        text += error + "\n"
    return text


def _reset(exc: BaseException) -> bool:
    """Whether ECONNRESET is what caused `exc` (httpx wraps httpcore, which wraps OSError)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.ECONNRESET:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def run(example: Example, client: httpx.Client, variables: dict[str, str]) -> str:
    """What the terminal shows for a whole example, its runs one after the other."""
    return "".join(terminal(curl, client, variables) for curl in example.runs)


def cat_a(data: bytes) -> bytes:
    """What GNU `cat -A` (-vET) writes for `data`: `$` at line ends, ^ and M- notation."""
    out = bytearray()
    for byte in data:
        if byte == 0x0A:
            out += b"$\n"
            continue
        if byte >= 0x80:
            out += b"M-"
            byte -= 0x80
        if byte < 0x20:
            out += b"^" + bytes([byte + 0x40])
        elif byte == 0x7F:
            out += b"^?"
        else:
            out.append(byte)
    return bytes(out)


def _lines(text: str) -> list[str]:
    lines = [line.rstrip(" \r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(shown: str, printed: str) -> bool:
    """Whether `printed` is what `shown` shows, `…` standing for what is left out."""
    pattern = []
    for line in _lines(shown):
        if line == ELLIPSIS:
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append("[^\n]*?".join(map(re.escape, line.split(ELLIPSIS))) + "\n")
    text = "".join(line + "\n" for line in _lines(printed))
    return re.fullmatch("".join(pattern), text) is not None
