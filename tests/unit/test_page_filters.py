"""How the pages write sizes, times and days for people in the Netherlands."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.pages import days_left, dutch_size, dutch_time
from overdracht.timezone import today


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (999, "999 bytes"),
        (2048, "2,0 kB"),
        (1_250_000, "1,2 MB"),
        (104_857_600, "104,9 MB"),
    ],
)
def test_sizes_are_in_kb_and_mb_with_a_decimal_comma(size, text):
    assert dutch_size(size) == text.replace(" ", "\N{NO-BREAK SPACE}")


@pytest.mark.parametrize(
    ("stamp", "text"),
    [
        ("2026-11-26T08:51:00+00:00", "26-11-2026 09:51"),  # winter: UTC+1
        ("2026-07-01T22:30:00+00:00", "02-07-2026 00:30"),  # summer: UTC+2, the next day
    ],
)
def test_times_are_shown_in_europe_amsterdam(stamp, text):
    assert dutch_time(stamp) == text


def test_days_left_until_a_removal_date():
    assert days_left((today() + timedelta(days=1)).isoformat()) == "nog 1 dag"
    assert days_left((today() + timedelta(days=12)).isoformat()) == "nog 12 dagen"
