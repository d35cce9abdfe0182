"""The alphabets of the `text-KIND` tokens: what each kind's deltas are made of.

Pure functions, no sockets: each kind is checked for the characters it promises, for being
the same on every call, and for holding its whole alphabet once there are enough deltas.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproof.fake_providers.text import (
    _ALPHABETS,
    RUN_A,
    RUN_E,
    TEXT_KINDS,
    big_delta,
    kind_deltas,
    random_deltas,
)

QUICK = settings(derandomize=True, database=None, deadline=None, max_examples=60)


@pytest.mark.parametrize("kind", TEXT_KINDS)
@pytest.mark.parametrize("count", [0, 1, 2, 16, 300])
def test_kind_gives_count_deltas_the_same_every_time(kind, count):
    parts = kind_deltas(kind, count)
    assert len(parts) == count
    assert parts == kind_deltas(kind, count)
    assert all(parts)


@pytest.mark.parametrize("kind", sorted(_ALPHABETS))
def test_kind_deltas_are_units_of_its_alphabet_and_hold_all_of_them(kind):
    alphabet = _ALPHABETS[kind]
    parts = kind_deltas(kind, len(alphabet))
    units = "|".join(re.escape(unit) for unit in sorted(alphabet, key=len, reverse=True))
    assert all(re.fullmatch(f"(?:{units})+", part) for part in parts)
    joined = "".join(parts)
    assert all(unit in joined for unit in alphabet)


def test_different_counts_draw_differently():
    assert kind_deltas("emoji", 20)[:10] != kind_deltas("emoji", 10)


def test_emoji_has_zwj_sequences_flags_and_skin_tones():
    text = "".join(kind_deltas("emoji", 16))
    assert "\u200d" in text
    assert re.search("[\U0001f1e6-\U0001f1ff]{2}", text)  # a regional-indicator flag
    assert re.search("[\U0001f3fb-\U0001f3ff]", text)  # a skin tone modifier


def test_cjk_is_mostly_ideographs_and_kana():
    text = "".join(kind_deltas("cjk", 16))
    assert re.search("[\u4e00-\u9fff]", text)
    assert re.search("[\u3040-\u30ff]", text)
    assert re.search("[\U00020000-\U0002ffff]", text)  # extension B: four bytes


def test_combining_is_base_letters_with_one_to_three_marks():
    for part in kind_deltas("combining", 50):
        assert re.fullmatch("(?:[A-Za-z][\u0300-\u036f]{1,3})+", part), part
        assert unicodedata.combining(part[-1])


def test_whitespace_has_every_promised_separator():
    text = "".join(kind_deltas("whitespace", 16))
    for char in "\t\u00a0\u2028\u2029\u0085\u3000\r\n":
        assert char in text, hex(ord(char))


def test_control_has_every_c0_control_delete_and_nul():
    text = "".join(kind_deltas("control", 36))
    assert {chr(code) for code in [*range(0x20), 0x7F]} <= set(text)


def test_run_is_4096_a_then_2000_e_acute_over_the_other_deltas():
    parts = kind_deltas("run", 9)
    assert parts[0] == "a" * RUN_A
    assert "".join(parts[1:]) == "é" * RUN_E
    assert all(parts[1:])
    assert kind_deltas("run", 1) == ["a" * RUN_A]
    assert kind_deltas("run", 0) == []


def test_run_with_more_deltas_than_characters_keeps_every_delta_non_empty():
    parts = kind_deltas("run", RUN_E + 10)
    assert parts[0] == "a" * RUN_A
    assert parts[1 : RUN_E + 1] == ["é"] * RUN_E
    assert all(set(part) == {"ü"} for part in parts[RUN_E + 1 :])


def test_rtl_has_arabic_hebrew_and_bidi_marks():
    text = "".join(kind_deltas("rtl", 16))
    assert re.search("[\u0600-\u06ff]", text)
    assert re.search("[\u0590-\u05ff]", text)
    assert {"\u200f", "\u200e", "\u2067", "\u2069"} <= set(text)


def test_surrogates_kind_is_only_astral_characters():
    text = "".join(kind_deltas("surrogates", 40))
    assert all(ord(char) > 0xFFFF for char in text)
    assert "𝄞" in text
    assert {len(char.encode("utf-16-le")) for char in text} == {4}  # a surrogate pair each


@QUICK
@given(seed=st.integers(0, 2**64), count=st.integers(0, 60))
def test_random_deltas_are_0_to_12_encodable_characters(seed, count):
    parts = random_deltas(seed, count)
    assert len(parts) == count
    assert parts == random_deltas(seed, count)
    assert all(0 <= len(part) <= 12 for part in parts)
    text = "".join(parts)
    assert not re.search("[\ud800-\udfff]", text)
    text.encode("utf-8")  # no surrogate code point: always encodable


def test_random_deltas_reach_every_plane_and_depend_on_the_seed():
    text = "".join(random_deltas(7, 400))
    planes = {ord(char) >> 16 for char in text}
    assert {0, 1, 2, 14, 15, 16} <= planes
    assert random_deltas(7, 20) != random_deltas(8, 20)
    assert random_deltas(7, 20)[:10] == random_deltas(7, 10)  # one generator, drawn in order


@pytest.mark.parametrize("kib", [1, 2, 17, 1024])
def test_big_delta_is_exactly_kib_kibibytes_with_every_width(kib):
    delta = big_delta(kib)
    assert len(delta.encode()) == kib * 1024
    assert {len(char.encode()) for char in delta} == {1, 2, 3, 4}
