"""The report as a browser draws it: headless chromium renders the matrix and a case page.

A screenshot must not be blank (nearly all one colour) and must show the verdicts' colours
and the timeline's ticks; `--dump-dom` must hold the matrix, and hostile text must stay
text. Skipped, saying why, where `chromium` is not on PATH (`apt-get install chromium`).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamproof.harness import report
from tests.test_report import hostile_run, reference_run

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not on PATH (apt-get install -y chromium): the report's rendering "
    "is not checked",
)
WIDTH, HEIGHT = 1280, 2000
BLANK = 0.97  # a screenshot whose commonest colour covers more than this is blank

PASS, FAIL, NON_STRICT = (0xD3, 0xF5, 0xDC), (0xFF, 0xD2, 0xD0), (0xFF, 0xEA, 0xA3)  # cells
UPSTREAM_TICK, CLIENT_TICK = (0x09, 0x69, 0xDA), (0x1A, 0x7F, 0x37)


@dataclass
class Image:
    width: int
    height: int
    colours: Counter[tuple[int, ...]]  # pixels per RGB colour

    def blank(self) -> bool:
        [(_, most)] = self.colours.most_common(1)
        return most > BLANK * self.width * self.height

    def has(self, colour: tuple[int, int, int], tolerance: int = 2, pixels: int = 20) -> bool:
        near = sum(
            n
            for found, n in self.colours.items()
            if all(abs(a - b) <= tolerance for a, b in zip(found, colour, strict=False))
        )
        return near >= pixels


def decode(png: bytes) -> Image:
    """An 8-bit RGB(A), non-interlaced PNG (what chromium writes), decoded to colours."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, compressed = 8, bytearray()
    width = height = depth = kind = interlace = 0
    while position < len(png):
        length, chunk = struct.unpack(">I4s", png[position : position + 8])
        data = png[position + 8 : position + 8 + length]
        position += 12 + length
        if chunk == b"IHDR":
            width, height, depth, kind, _, _, interlace = struct.unpack(">IIBBBBB", data)
        elif chunk == b"IDAT":
            compressed += data
    assert (depth, interlace, kind in (2, 6)) == (8, 0, True), (depth, interlace, kind)
    n = 3 if kind == 2 else 4
    raw, stride = zlib.decompress(bytes(compressed)), width * n
    colours: Counter[tuple[int, ...]] = Counter()
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, previous, n)
        colours.update(zip(line[0::n], line[1::n], line[2::n], strict=True))
        previous = line
    return Image(width, height, colours)


def _unfilter(kind: int, line: bytearray, previous: bytearray, n: int) -> None:
    for i in range(len(line)):
        left = line[i - n] if i >= n else 0
        up = previous[i]
        if kind == 1:
            line[i] = (line[i] + left) & 255
        elif kind == 2:
            line[i] = (line[i] + up) & 255
        elif kind == 3:
            line[i] = (line[i] + ((left + up) >> 1)) & 255
        elif kind == 4:
            corner = previous[i - n] if i >= n else 0
            guess = left + up - corner
            pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
            nearest = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            line[i] = (line[i] + nearest) & 255


@pytest.fixture
def built(tmp_path: Path) -> Path:
    folder = tmp_path / "report"
    report.publish(reference_run(), folder)
    report.publish(hostile_run(), folder)
    return folder


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"  # its own, so parallel workers never share one
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def screenshot(tmp_path: Path, page: Path) -> Image:
    png = tmp_path / f"{page.stem}.png"
    done = chromium(
        tmp_path, f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri()
    )
    assert done.returncode == 0, done.stderr
    assert png.is_file(), done.stderr
    return decode(png.read_bytes())


def test_render_index_draws_the_matrix_in_the_verdicts_colours(built: Path, tmp_path: Path) -> None:
    image = screenshot(tmp_path, built / "index.html")
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    assert not image.blank()
    for colour in (PASS, FAIL, NON_STRICT):
        assert image.has(colour), colour


def test_render_case_page_draws_the_timeline(built: Path, tmp_path: Path) -> None:
    page = built / "targets" / "reference-proxy" / "cases" / "2.1-chop-1.html"
    image = screenshot(tmp_path, page)
    assert not image.blank()
    assert image.has(PASS)  # the verdict's box
    assert image.has(UPSTREAM_TICK, tolerance=24, pixels=8)  # the timeline's two lanes
    assert image.has(CLIENT_TICK, tolerance=24, pixels=8)


def test_render_dom_has_the_matrix_and_hostile_text_stays_text(built: Path, tmp_path: Path) -> None:
    done = chromium(tmp_path, "--dump-dom", (built / "index.html").as_uri())
    assert done.returncode == 0, done.stderr
    assert '<table class="matrix">' in done.stdout
    assert done.stdout.count('<td class="v ') == 16
    hostile = built / "targets" / report.target_slug(hostile_run()) / "cases" / "1.1.html"
    done = chromium(tmp_path, "--dump-dom", hostile.as_uri())
    assert done.returncode == 0, done.stderr
    assert "&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in done.stdout
    assert "<b>bold</b>" not in done.stdout
    assert "<svg" in done.stdout
