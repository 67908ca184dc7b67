"""The one RFC 3339 formatter and parser (protocol.times)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.times import RFC3339, parse_rfc3339, rfc3339, rfc3339_or_none

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_epoch_seconds_are_rounded_to_the_millisecond():
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_778_312_125.5) == "2026-05-09T07:35:25.500Z"
    assert rfc3339(1_778_312_125.9996) == "2026-05-09T07:35:26.000Z"
    assert rfc3339(1_778_312_125.123456, digits=6) == "2026-05-09T07:35:25.123456Z"


def test_datetimes_are_truncated_and_converted_to_utc():
    local = datetime(2026, 5, 9, 15, 35, 25, 999_999, tzinfo=SHANGHAI)
    assert rfc3339(local) == "2026-05-09T07:35:25.999Z"
    assert rfc3339(local, digits=6) == "2026-05-09T07:35:25.999999Z"
    assert rfc3339_or_none(None) is None


def test_naive_datetimes_and_odd_precisions_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        rfc3339(datetime(2026, 5, 9))
    with pytest.raises(ValueError, match="digits"):
        rfc3339(0.0, digits=2)


@pytest.mark.parametrize("text, expected", [
    ("2026-05-09T07:35:25Z", datetime(2026, 5, 9, 7, 35, 25, tzinfo=timezone.utc)),
    ("2026-05-09t07:35:25z", datetime(2026, 5, 9, 7, 35, 25, tzinfo=timezone.utc)),
    ("2026-05-09 15:35:25+08:00", datetime(2026, 5, 9, 7, 35, 25, tzinfo=timezone.utc)),
    ("2026-05-09T07:35:25.5Z", datetime(2026, 5, 9, 7, 35, 25, 500_000, tzinfo=timezone.utc)),
    ("2026-05-09T07:35:25.123456789-01:30", datetime(2026, 5, 9, 9, 5, 25, 123_456, tzinfo=timezone.utc)),
])
def test_parse_accepts_every_rfc3339_form(text, expected):
    got = parse_rfc3339(text)
    assert got == expected and got.tzinfo is timezone.utc


@pytest.mark.parametrize("text, problem", [
    ("2026-05-09T07:35:25", "needs a UTC offset"),
    ("2026-13-09T07:35:25Z", "not a valid date"),
    ("yesterday", "not RFC 3339"),
    ("", "not RFC 3339"),
])
def test_parse_says_what_is_wrong(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_rfc3339(text)
    with pytest.raises(ValueError):
        parse_rfc3339(123)  # type: ignore[arg-type]


def test_parse_takes_local_times_in_a_given_zone():
    assert parse_rfc3339("2026-05-09T15:35", naive=SHANGHAI) == datetime(2026, 5, 9, 7, 35, tzinfo=timezone.utc)
    assert parse_rfc3339("2026-05-09", naive=SHANGHAI) == datetime(2026, 5, 8, 16, 0, tzinfo=timezone.utc)
    assert parse_rfc3339("2026-05-09T15:35:00Z", naive=SHANGHAI).hour == 15  # an offset always wins


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.just(timezone.utc)),
       st.integers(-14 * 60, 14 * 60))
def test_format_then_parse_round_trips_to_the_millisecond(dt, offset_min):
    text = rfc3339(dt)
    assert RFC3339.fullmatch(text)
    assert parse_rfc3339(text) == dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    shifted = dt.astimezone(timezone(timedelta(minutes=offset_min))).isoformat()
    assert parse_rfc3339(shifted) == dt


def test_the_vectorized_track_formatter_is_rfc3339():
    """airspace.tracks.iso_ms (a batch of epoch seconds at once) gives exactly rfc3339's strings, including
    values half a millisecond (and a hair either side) past a millisecond, where rounding `t * 1000` alone
    disagrees with rfc3339 about half the time, and exact binary ties (x.0625 s: half-even)."""
    import numpy as np

    from airspace.tracks import iso_ms
    base = 1_778_312_125.0  # 2026-05-09T07:35:25Z
    values = ([base, base + 0.123, base + 0.1234, base + 0.1236, base + 0.9999, base + 0.0625, base + 0.1875,
               0.0625, 1.0005, 946_684_800.0005]
              + [base + k / 1000 + 0.0005 for k in range(1000)]
              + [base + k / 1000 + 0.0005 + d for k in range(0, 1000, 37) for d in (-1e-7, 1e-7)])
    assert iso_ms(np.array(values)) == [rfc3339(v) for v in values]
    assert iso_ms(np.array([base + 0.0015]))[0] == rfc3339(base + 0.0015) == "2026-05-09T07:35:25.001Z"


@given(st.floats(min_value=946_684_800, max_value=4_102_444_800, allow_nan=False))
def test_the_vectorized_track_formatter_agrees_with_rfc3339_everywhere(t):
    import numpy as np

    from airspace.tracks import iso_ms
    assert iso_ms(np.array([t, t + 0.0005])) == [rfc3339(t), rfc3339(t + 0.0005)]
