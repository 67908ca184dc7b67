"""Schedules: weekly windows in Asia/Shanghai, across midnight and week ends, date ranges, intervals; times of
day and date-times as published (RFC 3339 offsets, fractions of any length, leap seconds)."""
from datetime import datetime, timedelta, timezone
from functools import partial
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from airspace.schedule import (DAY_NAMES, Period, Schedule, ScheduleError, TimeOfDay, Window, epoch_seconds,
                               format_time_of_day, parse_datetime, parse_time_of_day, window_in)

SH = ZoneInfo("Asia/Shanghai")
SH_TZ = "Asia/Shanghai"


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


# --- times as published: RFC 3339 times of day and date-times, with offsets and fractions -------------------

@pytest.mark.parametrize("text, seconds, offset", [
    ("00:00:00.00+01:00", 0, 3600),  # ED-318, as a national publication writes it
    ("12:00:00+00:00", 43200, 0),  # EUROCONTROL's geofencing prototype
    ("16:00:00.00Z", 57600, 0), ("16:00:00.00z", 57600, 0),
    ("23:59:59.123456789-03:30", 86399.123456, -12600),  # fractions cut to the microsecond
    ("08:30", 30600, None), ("08:30:15", 30615, None), ("07:05:00.5", 25500.5, None),
])
def test_times_of_day_with_offsets_and_fractions(text, seconds, offset):
    tod = parse_time_of_day(text, "startTime")
    assert tod.seconds == pytest.approx(seconds, abs=1e-9) and tod.offset_s == offset


@pytest.mark.parametrize("text, words", [
    ("25:00:00Z", "out of range"), ("12:60", "out of range"), ("23:59:60Z", "leap second"),
    ("12:00:00+24:00", "offset out of range"), ("12:00:00+0100", "HH:MM"), ("noon", "HH:MM"),
    ("12:00:00.", "HH:MM"), ("24:00:00Z", "out of range"), (1200, "string"),
])
def test_bad_times_of_day_name_the_field(text, words):
    with pytest.raises(ScheduleError) as err:
        parse_time_of_day(text, "schedule[0].startTime")
    assert err.value.field == "schedule[0].startTime" and words in str(err.value)


def test_24_00_only_ends_a_window_with_or_without_offset():
    assert parse_time_of_day("24:00:00.000Z", "endTime", allow_24=True) == TimeOfDay(86400, 0)
    with pytest.raises(ScheduleError):
        parse_time_of_day("24:00:00.001", "endTime", allow_24=True)


def test_a_window_with_an_offset_moves_whole_to_the_schedule_zone():
    """MON 00:00-06:00 at +01:00 is MON 07:00-13:00 in Shanghai; MON 20:00-23:00 at +01:00 is TUE 03:00-06:00
    there; SUN 22:00+02:00 to 02:00+02:00 (across midnight) is MON 04:00-08:00; a window whose start and end
    carry different offsets runs between those instants."""
    t = partial(parse_time_of_day, field_name="t", allow_24=True)
    assert window_in(frozenset({0}), t("00:00:00.00+01:00"), t("06:00:00.00+01:00"), SH_TZ) == \
        Window(frozenset({0}), 7 * 3600, 13 * 3600)
    assert window_in(frozenset({0}), t("20:00+01:00"), t("23:00+01:00"), SH_TZ) == Window(frozenset({1}), 3 * 3600,
                                                                                         6 * 3600)
    assert window_in(frozenset({6}), t("22:00:00+02:00"), t("02:00:00+02:00"), SH_TZ) == \
        Window(frozenset({0}), 4 * 3600, 8 * 3600)
    assert window_in(frozenset({2}), t("22:00Z"), t("06:00+02:00"), "UTC") == Window(frozenset({2}), 22 * 3600,
                                                                                    4 * 3600)
    assert window_in(frozenset({2}), t("10:00+08:00"), t("10:00+08:00"), SH_TZ) == Window(frozenset({2}), 36000, 36000)
    assert window_in(frozenset({2}), t("08:00"), t("24:00"), "UTC") == Window(frozenset({2}), 28800, 86400)


def test_windows_published_with_summer_and_winter_offsets_follow_local_time_across_dst():
    """How a publisher in a daylight-saving zone writes local time: one period per season, each with its offset
    (Europe/Zurich: +02:00 in summer, +01:00 in winter). Each window is an instant range in its own fixed offset,
    so the zone is in force from 22:00 to 02:00 Zurich time every Saturday night on both sides of both
    boundaries (2025-03-30 and 2025-10-26 01:00Z), while the schedule itself is kept in Asia/Shanghai."""
    from airspace.formats.common import Failer, schedule_from_periods
    zurich = ZoneInfo("Europe/Zurich")
    s = schedule_from_periods([
        {"startDateTime": "2024-10-27T01:00:00Z", "endDateTime": "2025-03-30T01:00:00Z",
         "schedule": [{"day": ["SAT"], "startTime": "22:00:00+01:00", "endTime": "02:00:00+01:00"}]},
        {"startDateTime": "2025-03-30T01:00:00Z", "endDateTime": "2025-10-26T01:00:00Z",
         "schedule": [{"day": ["SAT"], "startTime": "22:00:00+02:00", "endTime": "02:00:00+02:00"}]},
        {"startDateTime": "2025-10-26T01:00:00Z", "endDateTime": "2026-03-29T01:00:00Z",
         "schedule": [{"day": ["SAT"], "startTime": "22:00:00+01:00", "endTime": "02:00:00+01:00"}]}],
        "limitedApplicability", Failer(0, "Z1"), daily_keys=("schedule",), permanent_key=None)
    assert s.tz == "Asia/Shanghai"

    def local(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=zurich).timestamp()

    def expected(t: float) -> bool:
        d = datetime.fromtimestamp(t, zurich)
        return (d.weekday() == 5 and d.hour >= 22) or (d.weekday() == 6 and d.hour < 2)

    nights = ["2025-03-22", "2025-03-29", "2025-04-05", "2025-10-18", "2025-10-25", "2025-11-01"]
    times = [local(f"{n}T{hh}") + dt for n in nights for hh in ("21:59:59", "22:00:00", "23:30:00")
             for dt in (0, 3600 * 3 + 1800, 3600 * 4 - 1, 3600 * 4)]
    assert s.active(times).tolist() == [expected(t) for t in times]
    assert s.active([local("2025-10-25T23:00:00"), local("2025-10-26T01:59:59")]).all()  # the night DST ends
    # one offset all year is a fixed-offset window: 22:00+01:00 is 23:00 Zurich time in summer
    fixed = schedule_from_periods([{"schedule": [{"day": ["SAT"], "startTime": "22:00:00+01:00",
                                                  "endTime": "02:00:00+01:00"}]}], "la", Failer(0, "Z2"),
                                  daily_keys=("schedule",), permanent_key=None)
    assert fixed.tz == "+01:00"
    assert fixed.active([local("2025-07-05T22:30:00"), local("2025-07-05T23:30:00"), local("2025-01-04T22:30:00"),
                         local("2025-07-06T02:30:00")]).tolist() == [False, True, True, True]


@pytest.mark.parametrize("text, utc", [
    ("2026-11-27T08:00:00+08:00", "2026-11-27T00:00:00"), ("2026-11-27T00:00:00Z", "2026-11-27T00:00:00"),
    ("2026-11-27T00:00:00.123456789z", "2026-11-27T00:00:00.123456"), ("2026-11-26T23:30:00-00:30", "2026-11-27T00:00:00"),
    ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00"),  # a leap second: the next second on the epoch clock
    ("2017-01-01T07:59:60.5+08:00", "2017-01-01T00:00:00.5"),
])
def test_date_times_with_offsets_fractions_and_leap_seconds(text, utc):
    want = datetime.fromisoformat(utc).replace(tzinfo=timezone.utc).timestamp()
    assert parse_datetime(text, "startDateTime") == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("text, words", [
    ("2018-12-31T15:59:60.00Z", "leap second"),  # EUROCONTROL's example: not 23:59:60 UTC, and no leap second then
    ("2018-12-31T23:59:60Z", "leap second"), ("2026-02-30T00:00:00Z", "valid date"), ("soon", "RFC 3339"),
])
def test_bad_date_times_name_the_field(text, words):
    with pytest.raises(ScheduleError) as err:
        parse_datetime(text, "applicability[0].startDateTime")
    assert err.value.field == "applicability[0].startDateTime" and words in str(err.value)


def test_schedule_time_zone_may_be_a_fixed_offset():
    s = Schedule.from_dict({"tz": "+01:00", "periods": [{"start": "2026-01-01T00:00:00",
                                                         "windows": [{"days": ["MON"], "start": "08:00:00.25",
                                                                      "end": "09:00"}]}]})
    assert s.to_dict()["periods"][0] == {"start": "2026-01-01T00:00:00+01:00",
                                         "windows": [{"days": ["MON"], "start": "08:00:00.25", "end": "09:00"}]}
    assert Schedule.from_dict(s.to_dict()) == s
    monday_8 = datetime(2026, 1, 5, 7, 0, 0, 250000, tzinfo=timezone.utc).timestamp()
    assert s.active([monday_8 - 0.001, monday_8]).tolist() == [False, True]
    # a window written with an offset in the internal form is moved to the schedule's zone too
    moved = Schedule.from_dict({"periods": [{"windows": [{"days": ["MON"], "start": "00:00+01:00", "end": "06:00+01:00"}]}]})
    assert moved.periods[0].windows == (Window(frozenset({0}), 7 * 3600, 13 * 3600),)


offsets_s = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: m * 60)
fractions = st.text("0123456789", min_size=0, max_size=12)


def offset_text(off: int, zulu: bool) -> str:
    if off == 0 and zulu:
        return "Z"
    sign, mag = ("-" if off < 0 else "+"), abs(off)
    return f"{sign}{mag // 3600:02d}:{mag % 3600 // 60:02d}"


@settings(max_examples=300, deadline=None)
@given(h=st.integers(0, 23), m=st.integers(0, 59), s=st.integers(0, 59), frac=fractions,
       off=st.none() | offsets_s, zulu=st.booleans())
def test_any_rfc3339_time_of_day_parses_to_its_seconds_and_offset(h, m, s, frac, off, zulu):
    text = f"{h:02d}:{m:02d}:{s:02d}" + (f".{frac}" if frac else "") + ("" if off is None else offset_text(off, zulu))
    tod = parse_time_of_day(text, "t")
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    assert tod.seconds == pytest.approx(h * 3600 + m * 60 + s + micro / 1e6, abs=1e-9)
    assert tod.offset_s == off
    assert parse_time_of_day(format_time_of_day(tod.seconds), "t").seconds == pytest.approx(tod.seconds, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(when=st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)), frac=fractions, off=offsets_s,
       zulu=st.booleans(), sep=st.sampled_from("Tt "))
def test_any_rfc3339_date_time_parses_to_its_instant(when, frac, off, zulu, sep):
    when = when.replace(microsecond=0)
    text = (f"{when.year:04d}-{when.month:02d}-{when.day:02d}{sep}{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
            + (f".{frac}" if frac else "") + offset_text(off, zulu))
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    want = when.replace(tzinfo=timezone(timedelta(seconds=off)), microsecond=micro)
    assert parse_datetime(text, "startDateTime") == pytest.approx(want.timestamp(), abs=1e-6)
