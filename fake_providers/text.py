"""What the content deltas are made of: the alphabets of the `text-KIND` tokens.

Every function here is pure and deterministic: the same arguments give the same deltas on
every run and every machine. Randomness comes only from `random.Random` instances seeded
with strings (hashed with SHA-512, so independent of `PYTHONHASHSEED`) or with the user's
seed, never from the module-level generator.

The alphabets are lists of *units*: a unit may be several code points that belong together
(a ZWJ family, a flag, a letter with its marks). A delta is one to four units, dealt from
the alphabet shuffled like a deck of cards, so every unit comes once before any comes
twice: `chunks-N` holds every unit of the alphabet once N reaches its size (101 units for
`ascii`, 36 for `control` with U+0000, 16 or fewer for the others), and often well before.
A delta never cuts a unit, but the units of one delta and the next run together in the
joined content, and a write boundary (`split_utf8`) still falls inside every multi-byte
character.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

# The default answer: one, two, three and four UTF-8 bytes per character in every cycle.
VOCABULARY = (
    "Hello",
    " wörld",
    " —",
    " 你好",
    " 🙂",
    " ça",
    " naïve",
    " café",
    " 𝄞",
    " e\u0301",
    " 東京",
    " ok",
    " ∑",
    " 🇺🇳",
    " über",
    ",",
)

# The reasoning of `reasoning-N` (chat's `reasoning_content`, Anthropic's thinking, a Responses
# reasoning summary): words of its own, never the answer's, with 1- to 4-byte characters too.
THOUGHTS = (
    "Let me think",
    " about «hi»",
    " —",
    " the user",
    " greets me",
    " in ünïcode",
    " 🤔",
    " so",
    " I answer",
    " 你好",
    ".",
)

_ASCII = (
    *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    *"!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
    '"',
    "\\",
    " ",
    " the",
    " data:",
    " [DONE]",
    ' {"a": 1}',
    " \\n",
    " </script>",
)
_EMOJI = (
    "🙂",
    "😀",
    "👍🏽",  # skin tone modifier
    "👋🏿",
    "👨\u200d👩\u200d👧\u200d👦",  # ZWJ family
    "🧑🏾\u200d💻",  # skin tone inside a ZWJ sequence
    "👩\u200d❤\ufe0f\u200d💋\u200d👨",
    "🏳\ufe0f\u200d🌈",
    "🇯🇵",  # regional indicator pairs
    "🇺🇳",
    "🇧🇷",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # tag sequence
    "❤\ufe0f",  # variation selector
    "1\ufe0f\u20e3",  # keycap
    " ",
)
_CJK = (
    "你好",
    "世界",
    "東京",
    "日本語",
    "中文",
    "ひらがな",
    "カタカナ",
    "ｶﾀｶﾅ",
    "한국어",
    "。",
    "、",
    "「",
    "」",
    "\uff21\uff22\uff23",  # fullwidth ABC
    "𠀀",  # CJK extension B: four bytes
    "𪚥",
)
_BASES = "aeiouncszAEIOUNCSZ"
_MARKS = [chr(code) for code in range(0x0300, 0x0370)]
_WHITESPACE = (
    "\t",
    "\u00a0",  # no-break space
    "\u2028",  # line separator: not an SSE line ending
    "\u2029",  # paragraph separator
    "\u0085",  # next line
    "\u3000",  # ideographic space
    "\u1680",
    "\u2003",
    "\u202f",
    "\r",
    "\n",
    "\r\n",
    " ",
    "  ",
    "word",
    "x",
)
_CONTROL = (*(chr(code) for code in range(0x20)), "\x7f", "ok", "x", " ")
_RTL = (
    "مرحبا",
    " بالعالم",
    "شكرا",
    "שלום",
    " עולם",
    "תודה",
    "١٢٣",
    " 123",
    " (abc)",
    "\u200f",  # right-to-left mark
    "\u200e",  # left-to-right mark
    "\u061c",  # Arabic letter mark
    "\u202b",  # right-to-left embedding
    "\u202c",  # pop directional formatting
    "\u2067",  # right-to-left isolate
    "\u2069",  # pop directional isolate
)
_ASTRAL = (
    "\U0001d400",  # mathematical bold capital A
    "\U0001d465",  # mathematical italic small x
    "\U0001d538",  # double-struck capital A
    "\U0001d54f",  # double-struck capital X
    "\U0001d7d8",  # double-struck digit zero
    "\U0001d49c",  # script capital A
    "𝄞",
    "😀",
    "🀄",
    "🜁",
    "𐌀",
    "𓀀",
    "𠜎",
    "\U0010fffd",
)
_ALPHABETS: dict[str, tuple[str, ...]] = {
    "ascii": _ASCII,
    "emoji": _EMOJI,
    "cjk": _CJK,
    "whitespace": _WHITESPACE,
    "control": _CONTROL,
    "rtl": _RTL,
    "surrogates": _ASTRAL,
}
TEXT_KINDS = (
    "ascii",
    "emoji",
    "cjk",
    "combining",
    "whitespace",
    "control",
    "run",
    "rtl",
    "surrogates",
)

RUN_A = 4_096  # "a" in the first delta of `text-run`
RUN_E = 2_000  # "é" spread over the others
# Code points by plane, for `text-random`: every plane, and no surrogate (they cannot be UTF-8).
_PLANES = (
    (0x20, 0x7E),
    (0x00, 0x1F),
    (0xA0, 0xD7FF),
    (0xE000, 0xFFFF),
    (0x10000, 0x1FFFF),
    (0x20000, 0x2FFFF),
    (0x30000, 0xDFFFF),
    (0xE0000, 0xEFFFF),
    (0xF0000, 0x10FFFF),
)
_BIG_BLOCK = "big delta: é ß ∑ 你好 🙂 𝄞 "  # padded with "." to 64 UTF-8 bytes


def deltas(count: int) -> list[str]:
    """The content deltas of the default answer with `count` chunks."""
    return [VOCABULARY[k % len(VOCABULARY)] for k in range(count)]


def thoughts(count: int) -> list[str]:
    """The reasoning deltas of `reasoning-N`, N = `count`."""
    return [THOUGHTS[k % len(THOUGHTS)] for k in range(count)]


def kind_deltas(kind: str, count: int) -> list[str]:
    """`count` deltas of one of `TEXT_KINDS`, the same for the same kind and count."""
    rng = random.Random(f"{kind}-{count}")
    if kind == "run":
        return _run(rng, count)
    if kind == "combining":
        return ["".join(_combined(rng) for _ in range(rng.randint(1, 4))) for _ in range(count)]
    units = _deck(rng, _ALPHABETS[kind])
    return ["".join(itertools.islice(units, rng.randint(1, 4))) for _ in range(count)]


def random_deltas(seed: int, count: int) -> list[str]:
    """`count` deltas of 0 to 12 characters from every plane, drawn with `Random(seed)`."""
    rng = random.Random(seed)
    return ["".join(_any_character(rng) for _ in range(rng.randint(0, 12))) for _ in range(count)]


def big_delta(kib: int) -> str:
    """A delta of exactly `kib` x 1024 UTF-8 bytes, mixing 1- to 4-byte characters."""
    block = _BIG_BLOCK + "." * (64 - len(_BIG_BLOCK.encode()))
    return block * (kib * 16)  # 16 blocks of 64 bytes per KiB, built in one step


def _deck(rng: random.Random, alphabet: tuple[str, ...]) -> Iterator[str]:
    """The alphabet's units, shuffled, again and again: every unit comes once per pass, so
    a few dozen deltas are enough to hold every unit of an alphabet."""
    while True:
        units = list(alphabet)
        rng.shuffle(units)
        yield from units


def _combined(rng: random.Random) -> str:
    return rng.choice(_BASES) + "".join(rng.choices(_MARKS, k=rng.randint(1, 3)))


def _any_character(rng: random.Random) -> str:
    low, high = rng.choice(_PLANES)
    return chr(rng.randint(low, high))


def _run(rng: random.Random, count: int) -> list[str]:
    """One delta of 4,096 "a", then 2,000 "é" cut at random into the other deltas."""
    if count == 0:
        return []
    rest = count - 1
    if rest == 0:
        return ["a" * RUN_A]
    if rest > RUN_E:  # more deltas than characters: one "é" each, then runs of "ü"
        extra = ["ü" * rng.randint(1, 16) for _ in range(rest - RUN_E)]
        return ["a" * RUN_A, *(["é"] * RUN_E), *extra]
    cuts = sorted(rng.sample(range(1, RUN_E), rest - 1))
    runs = ("é" * (end - start) for start, end in itertools.pairwise([0, *cuts, RUN_E]))
    return ["a" * RUN_A, *runs]
