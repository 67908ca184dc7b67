"""Schedules: weekly windows in Asia/Shanghai, across midnight and week ends, date ranges, intervals."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from airspace.schedule import DAY_NAMES, Period, Schedule, ScheduleError, Window, epoch_seconds

SH = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    """Local Shanghai wall time as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=SH).timestamp()


def weekly(days, begin, finish, **period) -> Schedule:
    return Schedule.from_dict({"periods": [{"windows": [{"days": days, "start": begin, "end": finish}],
                                            **period}]})


def test_window_in_one_day_is_half_open_in_local_time():
    s = weekly(["FRI"], "08:00", "10:00")  # 2026-11-27 is a Friday
    times = [at("2026-11-27T07:59:59"), at("2026-11-27T08:00:00"), at("2026-11-27T09:59:59"),
             at("2026-11-27T10:00:00"), at("2026-11-28T08:30:00"), at("2026-12-04T08:30:00")]
    assert s.active(times).tolist() == [False, True, True, False, False, True]
    # 08:00 in Shanghai is 00:00 UTC
    assert s.active(datetime(2026, 11, 27, 0, 0, tzinfo=timezone.utc).timestamp())


def test_window_across_midnight_belongs_to_its_start_day():
    s = weekly(["FRI"], "22:00", "06:00")
    times = [at("2026-11-27T21:59:59"), at("2026-11-27T22:00:00"), at("2026-11-28T00:00:00"),
             at("2026-11-28T05:59:59"), at("2026-11-28T06:00:00"), at("2026-11-27T03:00:00"),
             at("2026-11-28T23:00:00")]
    assert s.active(times).tolist() == [False, True, True, True, False, False, False]


def test_window_across_the_week_end():
    s = weekly(["SUN"], "23:00", "01:00")
    assert s.active([at("2026-11-29T23:30:00"), at("2026-11-30T00:30:00"), at("2026-11-30T01:00:00"),
                     at("2026-11-23T00:30:00")]).tolist() == [True, True, False, True]


def test_whole_day_forms_and_any():
    assert weekly(["ANY"], "00:00", "24:00").active(at("2026-11-29T23:59:59"))
    s = weekly(["MON"], "05:00", "05:00")  # equal start and end: the full 24 h from the start
    assert s.active([at("2026-11-30T04:59:59"), at("2026-11-30T05:00:00"), at("2026-12-01T04:59:59"),
                     at("2026-12-01T05:00:00")]).tolist() == [False, True, True, False]


def test_date_range_bounds_the_windows():
    s = weekly(["SAT", "SUN"], "09:00", "17:00", start="2026-11-28T12:00:00", end="2026-12-05")
    times = [at("2026-11-28T10:00:00"), at("2026-11-28T12:00:00"), at("2026-11-29T16:59:00"),
             at("2026-12-05T10:00:00")]
    assert s.active(times).tolist() == [False, True, True, False]
    plain = Schedule.from_dict({"periods": [{"start": "2026-11-28T00:00:00Z"}]})
    assert plain.active([at("2026-11-28T07:59:59"), at("2026-11-28T08:00:00")]).tolist() == [False, True]


def test_intervals_merge_and_clip():
    s = Schedule.from_dict({"periods": [{"windows": [{"days": ["FRI"], "start": "22:00", "end": "06:00"},
                                                     {"days": ["SAT"], "start": "05:00", "end": "07:00"}]}]})
    got = s.intervals(at("2026-11-27T23:00:00"), at("2026-11-29T00:00:00"))
    assert got == [(at("2026-11-27T23:00:00"), at("2026-11-28T07:00:00"))]
    assert s.intervals(at("2026-11-25T00:00:00"), at("2026-11-25T00:00:00")) == []


def test_round_trip_and_epoch_parsing():
    s = weekly(["MON", "WED"], "22:15", "24:00", start="2026-01-01T00:00:00+08:00")
    assert Schedule.from_dict(s.to_dict()) == s
    assert epoch_seconds(12.5) == 12.5 and epoch_seconds("1795708800") == at("2026-11-27T00:00:00")
    assert epoch_seconds("2026-11-27T08:00:00") == at("2026-11-27T08:00:00")
    assert epoch_seconds("2026-11-27T00:00:00Z") == at("2026-11-27T08:00:00")


@pytest.mark.parametrize("obj, field", [
    ([], "schedule"),
    ({"periods": []}, "schedule.periods"),
    ({"periods": [{"start": "yesterday"}]}, "schedule.periods[0].start"),
    ({"periods": [{"start": "2026-02-01", "end": "2026-01-01"}]}, "schedule.periods[0].end"),
    ({"periods": [{"windows": [{"days": ["FUN"], "start": "08:00", "end": "09:00"}]}]},
     "schedule.periods[0].windows[0].days"),
    ({"periods": [{"windows": [{"days": ["MON"], "start": "24:00", "end": "09:00"}]}]},
     "schedule.periods[0].windows[0].start"),
    ({"periods": [{"windows": [{"days": ["MON"], "start": "08:00", "end": "9h"}]}]},
     "schedule.periods[0].windows[0].end"),
    ({"tz": "Mars/Olympus", "periods": [{}]}, "tz"),
])
def test_invalid_schedules_name_the_field(obj, field):
    with pytest.raises(ScheduleError) as info:
        Schedule.from_dict(obj)
    assert info.value.field == field


def naive_active(s: Schedule, t: float) -> bool:
    """Reference: datetime arithmetic, one time at a time."""
    tz = timezone.utc if s.tz == "UTC" else ZoneInfo(s.tz)
    local = datetime.fromtimestamp(t, tz)
    for p in s.periods:
        if (p.start is not None and t < p.start) or (p.end is not None and t >= p.end):
            continue
        if not p.windows:
            return True
        for w in p.windows:
            for back in (0, 1):
                day = local.date() - timedelta(days=back)
                if day.weekday() not in w.days:
                    continue
                start = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(seconds=w.start_s)
                length = (w.end_s - w.start_s) % 86400 or 86400
                if start.timestamp() <= t < start.timestamp() + length:
                    return True
    return False


T0 = at("2026-11-23T00:00:00")  # a Monday
minutes = st.integers(0, 24 * 60).map(lambda m: m * 60)
windows = st.builds(lambda days, a, b: Window(frozenset(days), a % 86400, b if b else 86400),
                    st.sets(st.integers(0, 6), min_size=1), minutes, minutes)


def make_period(ws, lo, length) -> Period:
    start = None if lo is None else T0 + lo
    end = None if length is None else (start if start is not None else T0) + length
    return Period(start, end, tuple(ws))


periods = st.builds(make_period, st.lists(windows, max_size=3), st.none() | st.integers(0, 14 * 86400),
                    st.none() | st.integers(1, 14 * 86400))
schedules = st.builds(lambda ps, tz: Schedule(tuple(ps), tz), st.lists(periods, min_size=1, max_size=3),
                      st.sampled_from(["Asia/Shanghai", "UTC"]))


def edge_times(s: Schedule) -> list[float]:
    """Times at and around every change: where off-by-one and midnight errors show."""
    out = []
    for a, b in s.intervals(T0 - 2 * 86400, T0 + 16 * 86400):
        out += [a - 1, a, a + 0.5, b - 0.001, b, b + 1]
    return out


@settings(max_examples=150, deadline=None)
@given(s=schedules, offsets=st.lists(st.floats(-86400, 16 * 86400), max_size=20))
def test_active_matches_naive_reference_and_intervals(s, offsets):
    times = [T0 + o for o in offsets] + edge_times(s)
    got = s.active(np.array(times)).tolist()
    assert got == [naive_active(s, t) for t in times]
    spans = s.intervals(T0 - 2 * 86400, T0 + 16 * 86400)
    for t in times:
        if T0 - 2 * 86400 <= t < T0 + 16 * 86400:
            assert any(a <= t < b for a, b in spans) == naive_active(s, t)
    assert all(a < b for a, b in spans) and all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))


def test_day_names_are_monday_first():
    assert DAY_NAMES[0] == "MON" and DAY_NAMES[6] == "SUN"


def test_in_force_within_a_range_closed_at_both_ends():
    """Whether a zone applies at some time in [t0, t1]: an instant, the end point itself, and ranges of
    thousands of years (InterUSS queries may be open-ended) answered from one week of windows."""
    s = weekly(["SAT"], "06:00", "14:00", start="2026-01-01T00:00:00", end="2027-01-01T00:00:00")
    sat = at("2026-11-28T09:00:00")
    assert s.in_force_within(sat, sat) and not s.in_force_within(sat - 86400, sat - 86400)
    assert s.in_force_within(at("2026-11-27T00:00:00"), at("2026-11-28T06:00:00"))  # opens at the end point
    assert not s.in_force_within(at("2026-11-27T00:00:00"), at("2026-11-28T05:59:59"))
    assert not s.in_force_within(at("2026-11-28T14:00:00"), at("2026-12-05T05:59:59"))
    far = datetime(9999, 12, 30, tzinfo=timezone.utc).timestamp()
    first = datetime(1, 1, 2, tzinfo=timezone.utc).timestamp()
    assert s.in_force_within(first, far)
    assert not s.in_force_within(at("2027-01-01T00:00:00"), far)  # the date range is over
    assert weekly(["SUN"], "22:00", "02:00").in_force_within(first, far)
    assert not s.in_force_within(sat, sat - 1)  # an empty range


def test_time_zones_with_daylight_saving_are_refused():
    """Windows are read on the local wall clock; across a daylight-saving change the wall clock and elapsed
    time part, and the intervals (and the index built from them) would disagree with `active`. Skylane's
    zones use Asia/Shanghai or UTC (no daylight saving): any other zone is refused, naming the field."""
    with pytest.raises(ScheduleError) as err:
        Schedule.from_dict({"tz": "Europe/Zurich", "periods": [{"windows": [
            {"days": ["SUN"], "start": "00:00", "end": "09:30"}]}]})
    assert err.value.field == "schedule.tz" and "daylight saving" in str(err.value)
    for tz in ("Asia/Shanghai", "UTC", "Asia/Tokyo"):
        assert Schedule.from_dict({"tz": tz, "periods": [{}]}).tz == tz
