"""The proxy's waits between attempts: full-jitter exponential backoff and Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from streamproof.proxy.backoff import Backoff, parse_retry_after


def test_backoff_ceiling_doubles_then_caps():
    backoff = Backoff(base=0.25, cap=4.0)
    assert [backoff.ceiling(n) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_huge_retry_number_stays_at_the_cap():
    assert Backoff(base=0.25, cap=4.0).ceiling(10_000) == 4.0


def test_backoff_delay_is_full_jitter_within_the_ceiling():
    backoff = Backoff(base=0.25, cap=4.0)
    rng = random.Random(1)
    for retry in range(8):
        delays = [backoff.delay(retry, rng) for _ in range(200)]
        assert all(0.0 <= delay <= backoff.ceiling(retry) for delay in delays)
        # Full jitter: the draws spread over the whole range, not just near the ceiling.
        assert min(delays) < backoff.ceiling(retry) * 0.1
        assert max(delays) > backoff.ceiling(retry) * 0.9


def test_backoff_same_seed_same_delays():
    backoff = Backoff(base=0.01, cap=1.0)
    first = [backoff.delay(n, random.Random(42)) for n in range(5)]
    second = [backoff.delay(n, random.Random(42)) for n in range(5)]
    assert first == second


def test_backoff_zero_base_never_waits():
    assert Backoff(base=0.0, cap=4.0).delay(3, random.Random(0)) == 0.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("3", 3.0, id="seconds"),
        pytest.param(" 0 ", 0.0, id="zero-padded"),
        pytest.param("1.5", 1.5, id="fraction"),
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("-3", None, id="negative"),
        pytest.param("1_0", None, id="underscore"),
        pytest.param("inf", None, id="inf"),
        pytest.param("soon", None, id="garbage"),
    ],
)
def test_retry_after_delta_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:07 GMT", now) == 7.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
