"""When a zone is in force: date ranges and weekly day/time windows in a local time zone.

A Schedule is a union of Periods; a Period is an optional [start, end) date-time range and
optional weekly windows (days + start/end time of day, local time). The time zone is Asia/Shanghai
unless told: "UTC", or a fixed UTC offset such as "+01:00" for times published with that offset (ED-269
"Z", ED-318 "00:00:00.00+01:00"); zones with daylight saving are refused, so a schedule's clock never
jumps (docs/zones.md: how times with offsets are read). A window whose end is
not after its start runs across midnight into the next day (22:00-06:00 on FRI covers Friday
22:00 to Saturday 06:00). Intervals are half-open: a zone active 08:00-10:00 is active at
08:00:00 and no longer at 10:00:00. Times are epoch seconds (float): no clock is read here.
`None` instead of a Schedule means permanent.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from protocol.times import parse_rfc3339

DAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
DEFAULT_TZ = "Asia/Shanghai"
DAY_S = 86_400
_MIN_T = datetime(1, 1, 3, tzinfo=timezone.utc).timestamp()  # datetime's range, with a day of room
_MAX_T = datetime(9999, 12, 29, tzinfo=timezone.utc).timestamp()


class ScheduleError(ValueError):
    """A schedule that cannot be read; `field` names the member at fault (e.g. periods[0].end)."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {problem}")


_TIME_OF_DAY = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?([Zz]|[+-]\d{2}:\d{2})?")


@dataclass(frozen=True)
class TimeOfDay:
    """A time of day as published: seconds of the day (an int, or a float when it has a fraction, kept to
    the microsecond) and its UTC offset in seconds (None: none given, local to the schedule's time zone)."""

    seconds: int | float
    offset_s: int | None = None


def parse_time_of_day(text: Any, field_name: str, allow_24: bool = False) -> TimeOfDay:
    """The one parser of times of day: RFC 3339 `partial-time` with an optional `time-offset`
    ('HH:MM:SS', a fraction of any length, 'Z' or '+01:00'), and the short 'HH:MM'. 24:00 only as an
    end (allow_24). A leap second (second 60) names no daily instant and is refused."""
    if not isinstance(text, str):
        raise ScheduleError(field_name, f"time of day must be a string 'HH:MM[:SS[.fff]][Z|+hh:mm]', got {text!r}")
    m = _TIME_OF_DAY.fullmatch(text.strip())
    if m is None:
        raise ScheduleError(field_name, f"time of day must be 'HH:MM[:SS[.fff]]' with an optional UTC offset "
                                        f"('Z', '+01:00'), got {text!r}")
    h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
    micro = int((m[4] or "")[:6].ljust(6, "0"))  # fractions longer than microseconds are cut, as for date-times
    if s == 60:
        raise ScheduleError(field_name, f"second 60 (a leap second) is no time of a daily window: {text!r}")
    if mi > 59 or s > 59 or h > 24 or (h == 24 and (mi or s or micro or not allow_24)):
        raise ScheduleError(field_name, f"time of day out of range: {text!r}")
    seconds = h * 3600 + mi * 60 + s
    return TimeOfDay(seconds + micro / 1e6 if micro else seconds, _offset_seconds(m[5], text, field_name))


def _offset_seconds(offset: str | None, text: str, field_name: str) -> int | None:
    if offset is None:
        return None
    if offset in ("Z", "z"):
        return 0
    hh, mm = int(offset[1:3]), int(offset[4:6])
    if hh > 23 or mm > 59:
        raise ScheduleError(field_name, f"UTC offset out of range in {text!r}")
    return (hh * 3600 + mm * 60) * (-1 if offset[0] == "-" else 1)


def format_time_of_day(seconds: int | float) -> str:
    whole = int(seconds)
    micro = round((seconds - whole) * 1e6)
    if micro == 1_000_000:
        whole, micro = whole + 1, 0
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    if micro:
        return f"{h:02d}:{m:02d}:{s:02d}.{micro:06d}".rstrip("0")
    return f"{h:02d}:{m:02d}" if s == 0 else f"{h:02d}:{m:02d}:{s:02d}"


def offset_name(offset_s: int) -> str:
    """The time zone name of a fixed UTC offset: 'UTC', or '+01:00' / '-03:30'."""
    if offset_s == 0:
        return "UTC"
    sign, mag = ("-" if offset_s < 0 else "+"), abs(offset_s)
    return f"{sign}{mag // 3600:02d}:{mag % 3600 // 60:02d}"


def time_suffix(tz: str) -> str:
    """What a time of day of a schedule in `tz` is written with so that it reads back the same: 'Z' for
    UTC, its offset for any other zone ('+01:00'), nothing for Asia/Shanghai (local times)."""
    if tz == DEFAULT_TZ:
        return ""
    offset = fixed_offset(tz)
    return "Z" if offset == 0 else offset_name(offset)


def fixed_offset(tz: str) -> int:
    """The UTC offset in seconds of a time zone without daylight saving (every schedule's)."""
    _check_tz(tz, "tz")
    return int(datetime(2000, 1, 1, tzinfo=timezone.utc).astimezone(_zone(tz)).utcoffset().total_seconds())


def window_in(days: frozenset[int], start: TimeOfDay, end: TimeOfDay, tz: str) -> Window:
    """A weekly window published with its own UTC offsets as a Window of a schedule in `tz`.

    A time with an offset is a time in that fixed offset: `days` are weekdays there, and the window is
    moved (whole, across midnight and weekdays if need be) to tz's offset. A time without an offset is
    already local to tz. Start and end may carry different offsets: the window runs from the start's
    instant to the end's (the next day's when the end is not after the start)."""
    target = fixed_offset(tz)
    a_off = target if start.offset_s is None else start.offset_s
    b_off = target if end.offset_s is None else end.offset_s
    if a_off == target and b_off == target:
        return Window(days, start.seconds, end.seconds)  # nothing to convert: as published
    a_utc, b_utc = start.seconds - a_off, end.seconds - b_off
    length = (b_utc - a_utc) % DAY_S or DAY_S
    shift, a = divmod(a_utc + target, DAY_S)
    b = a + length
    end_s = b if b <= DAY_S else b - DAY_S
    return Window(frozenset((d + int(shift)) % 7 for d in days), _whole(a), _whole(end_s))


def _whole(seconds: float) -> int | float:
    return int(seconds) if float(seconds).is_integer() else seconds


# Leap seconds inserted so far (IERS Bulletin C; none since), each at 23:59:60 UTC of these days.
LEAP_SECOND_DAYS = frozenset((
    "1972-06-30", "1972-12-31", "1973-12-31", "1974-12-31", "1975-12-31", "1976-12-31", "1977-12-31",
    "1978-12-31", "1979-12-31", "1981-06-30", "1982-06-30", "1983-06-30", "1985-06-30", "1987-12-31",
    "1989-12-31", "1990-12-31", "1992-06-30", "1993-06-30", "1994-06-30", "1995-12-31", "1997-06-30",
    "1998-12-31", "2005-12-31", "2008-12-31", "2012-06-30", "2015-06-30", "2016-12-31"))
_LONG_FRACTION = re.compile(r"(?<=:\d\d)(\.\d{9})\d+")
_SECOND_60 = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}):60(?=[.Zz+-]|$)")


def parse_datetime(text: Any, field_name: str, tz: str = DEFAULT_TZ) -> float:
    """An RFC 3339 date-time ('Z' or any offset, a fraction of any length) as epoch seconds, read by
    protocol.times.parse_rfc3339; a date-time or date without an offset is local to `tz`. Second 60 is
    accepted where a leap second was inserted (and read as the next second: epoch time has none)."""
    if not isinstance(text, str):
        raise ScheduleError(field_name, f"date-time must be an RFC 3339 string, got {text!r}")
    text = _LONG_FRACTION.sub(r"\1", text.strip())  # RFC 3339 allows any length; parse_rfc3339 reads 9 digits
    leap = _SECOND_60.match(text)
    try:
        if leap is None:
            return parse_rfc3339(text, naive=_zone(tz)).timestamp()
        value = parse_rfc3339(_SECOND_60.sub(r"\1:59", text, count=1), naive=_zone(tz))
    except ValueError as exc:
        raise ScheduleError(field_name, str(exc)) from None
    if value.strftime("%H:%M:%S") != "23:59:59" or value.strftime("%Y-%m-%d") not in LEAP_SECOND_DAYS:
        raise ScheduleError(field_name, f"second 60 is only valid at a leap second (23:59:60 UTC on a day one was "
                                        f"inserted, the last 2016-12-31); {text!r} is "
                                        f"{value.strftime('%Y-%m-%dT%H:%M')}:60 UTC")
    return value.timestamp() + 1.0


def format_datetime(epoch: float, tz: str = DEFAULT_TZ) -> str:
    return datetime.fromtimestamp(epoch, _zone(tz)).isoformat()


_OFFSET_TZ = re.compile(r"[+-]\d{2}:\d{2}")


@lru_cache(maxsize=64)
def _zone(tz: str) -> timezone | ZoneInfo:
    if tz.upper() in ("UTC", "Z"):
        return timezone.utc
    if _OFFSET_TZ.fullmatch(tz):
        offset = _offset_seconds(tz, tz, "tz")
        return timezone.utc if offset == 0 else timezone(timedelta(seconds=offset), tz)
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("tz", f"unknown time zone {tz!r}") from None


@lru_cache(maxsize=64)
def _offset_changes(tz: str) -> bool:
    """Whether the zone's UTC offset changes from 1992 on (daylight saving): windows are read on the
    wall clock, and intervals() would part from active() on the days it jumps."""
    zone = _zone(tz)
    seen = {datetime(y, m, 15, 12, tzinfo=timezone.utc).astimezone(zone).utcoffset()
            for y in range(1992, 2101) for m in range(1, 13)}
    return len(seen) > 1


def _check_tz(tz: str, field_name: str) -> None:
    _zone(tz)
    if _offset_changes(tz):
        raise ScheduleError(field_name, f"time zone {tz!r} changes its UTC offset (daylight saving), which "
                                        f"schedules do not support; use {DEFAULT_TZ} or UTC")


def _offsets(tz: str, t: np.ndarray) -> np.ndarray:
    """UTC offset in seconds of `tz` at each epoch time (one lookup when it is constant)."""
    zone = _zone(tz)
    finite = t[np.isfinite(t)]
    if finite.size == 0:
        return np.zeros(t.shape)
    if finite.size < t.size:  # unknown times: any offset will do, they are never active
        out = np.zeros(t.shape)
        out[np.isfinite(t)] = _offsets(tz, finite)
        return out
    lo, hi = float(np.min(t)), float(np.max(t))

    def off(x: float) -> float:
        return datetime.fromtimestamp(x, zone).utcoffset().total_seconds()

    first = off(lo)
    # zones without daylight saving (Asia/Shanghai since 1991) have one offset over any range
    if first == off(hi) and first == off((lo + hi) / 2) and hi - lo < 200 * DAY_S:
        return np.full(t.shape, first)
    return np.array([off(float(x)) for x in t.ravel()]).reshape(t.shape)


@dataclass(frozen=True)
class Window:
    """A weekly window: on each of `days` (0 = Monday) from start_s, for (end_s - start_s) mod 1 day."""

    days: frozenset[int]
    start_s: int
    end_s: int  # <= start_s: runs across midnight into the next day

    @property
    def crosses_midnight(self) -> bool:
        return self.end_s <= self.start_s

    def active_local(self, weekday: np.ndarray, sod: np.ndarray) -> np.ndarray:
        """Active at local weekday (0 = Monday) and seconds of the day."""
        days = np.zeros(7, dtype=bool)
        days[list(self.days)] = True
        if not self.crosses_midnight:
            return days[weekday] & (sod >= self.start_s) & (sod < self.end_s)
        return (days[weekday] & (sod >= self.start_s)) | (days[(weekday - 1) % 7] & (sod < self.end_s))

    def to_dict(self) -> dict:
        end = "24:00" if self.end_s == DAY_S else format_time_of_day(self.end_s)
        return {"days": [DAY_NAMES[d] for d in sorted(self.days)], "start": format_time_of_day(self.start_s),
                "end": end}


@dataclass(frozen=True)
class Period:
    """A [start, end) range (None = unbounded) with optional weekly windows (none = all day)."""

    start: float | None = None
    end: float | None = None
    windows: tuple[Window, ...] = ()

    def active(self, t: np.ndarray, weekday: np.ndarray, sod: np.ndarray) -> np.ndarray:
        out = np.ones(t.shape, dtype=bool)
        if self.start is not None:
            out &= t >= self.start
        if self.end is not None:
            out &= t < self.end
        if self.windows:
            any_window = np.zeros(t.shape, dtype=bool)
            for w in self.windows:
                any_window |= w.active_local(weekday, sod)
            out &= any_window
        return out


@dataclass(frozen=True)
class Schedule:
    """A union of periods, windows read in time zone `tz` (Asia/Shanghai unless told)."""

    periods: tuple[Period, ...]
    tz: str = DEFAULT_TZ

    def __post_init__(self) -> None:
        _check_tz(self.tz, "tz")  # refuse an unknown or daylight-saving time zone at construction

    @classmethod
    def from_dict(cls, obj: Any, field_name: str = "schedule") -> Schedule:
        """The internal JSON form: {"tz": ..., "periods": [{"start", "end", "windows": [...]}]}."""
        if not isinstance(obj, dict):
            raise ScheduleError(field_name, f"must be an object, got {obj!r}")
        tz = obj.get("tz", DEFAULT_TZ)
        if not isinstance(tz, str):
            raise ScheduleError(f"{field_name}.tz", f"must be a time zone name, got {tz!r}")
        _check_tz(tz, f"{field_name}.tz")
        periods = obj.get("periods")
        if not isinstance(periods, list) or not periods:
            raise ScheduleError(f"{field_name}.periods", "must be a non-empty list")
        out = []
        for i, p in enumerate(periods):
            where = f"{field_name}.periods[{i}]"
            if not isinstance(p, dict):
                raise ScheduleError(where, f"must be an object, got {p!r}")
            start = None if p.get("start") is None else parse_datetime(p["start"], f"{where}.start", tz)
            end = None if p.get("end") is None else parse_datetime(p["end"], f"{where}.end", tz)
            if start is not None and end is not None and not start < end:
                raise ScheduleError(f"{where}.end", "must be after start")
            windows = p.get("windows", [])
            if not isinstance(windows, list):
                raise ScheduleError(f"{where}.windows", "must be a list")
            out.append(Period(start, end, tuple(
                parse_window(w, f"{where}.windows[{k}]", tz) for k, w in enumerate(windows))))
        return cls(tuple(out), tz)

    def to_dict(self) -> dict:
        periods = []
        for p in self.periods:
            d: dict = {}
            if p.start is not None:
                d["start"] = format_datetime(p.start, self.tz)
            if p.end is not None:
                d["end"] = format_datetime(p.end, self.tz)
            if p.windows:
                d["windows"] = [w.to_dict() for w in p.windows]
            periods.append(d)
        return {"tz": self.tz, "periods": periods}

    def local(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(weekday 0 = Monday, seconds of the day) in the schedule's time zone."""
        local = t + _offsets(self.tz, t)
        days = np.floor(np.where(np.isfinite(local), local, 0.0) / DAY_S)
        sod = local - days * DAY_S
        return ((days.astype(np.int64) + 3) % 7), sod  # 1970-01-01 was a Thursday

    def active(self, t: Any) -> np.ndarray:
        """Bool array: in force at each epoch time of `t` (scalar gives a 0-d array)."""
        t = np.asarray(t, dtype=float)
        weekday, sod = self.local(t)
        out = np.zeros(t.shape, dtype=bool)
        for p in self.periods:
            out |= p.active(t, weekday, sod)
        return out & np.isfinite(t)  # an unknown time is not in any window

    def intervals(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """The merged [start, end) intervals in force within [t0, t1], clipped to it."""
        if not t1 > t0:
            return []
        raw: list[tuple[float, float]] = []
        zone = _zone(self.tz)
        for p in self.periods:
            lo = t0 if p.start is None else max(t0, p.start)
            hi = t1 if p.end is None else min(t1, p.end)
            if not hi > lo:
                continue
            if not p.windows:
                raw.append((lo, hi))
                continue
            day = datetime.fromtimestamp(lo, zone).date() - timedelta(days=1)
            last = datetime.fromtimestamp(hi, zone).date()
            while day <= last:
                midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
                for w in p.windows:
                    if day.weekday() not in w.days:
                        continue
                    length = (w.end_s - w.start_s) % DAY_S or DAY_S
                    a = (midnight + timedelta(seconds=w.start_s)).timestamp()
                    b = a + length
                    a, b = max(a, lo), min(b, hi)
                    if b > a:
                        raw.append((a, b))
                day += timedelta(days=1)
        raw.sort()
        merged: list[tuple[float, float]] = []
        for a, b in raw:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    def in_force_within(self, t0: float, t1: float) -> bool:
        """In force at some time of the closed range [t0, t1] (t0 == t1: one instant). Weekly windows
        repeat every week, so each period needs at most its first 8 days in range: cheap for any span
        (a query may ask about thousands of years)."""
        t0, t1 = max(float(t0), _MIN_T), min(float(t1), _MAX_T)
        if not t1 >= t0:
            return False
        if bool(self.active(np.array([t0, t1], dtype=float)).any()):
            return True
        for p in self.periods:
            lo = t0 if p.start is None else max(t0, p.start)
            hi = t1 if p.end is None else min(t1, p.end)
            if not hi > lo:
                continue
            if not p.windows or Schedule((p,), self.tz).intervals(lo, min(hi, lo + 8 * DAY_S)):
                return True
        return False

    def breakpoints(self, t0: float, t1: float) -> list[float]:
        """Times in (t0, t1] where the activity may change (for piecewise-constant tables)."""
        out = []
        for a, b in self.intervals(t0, t1):
            out.extend(x for x in (a, b) if t0 < x <= t1)
        return out


def parse_window(obj: Any, field_name: str, tz: str = DEFAULT_TZ) -> Window:
    """{"days": ["MON", ...] or ["ANY"], "start": "HH:MM", "end": "HH:MM"} as a Window of a schedule in
    `tz` (times with a UTC offset are moved to it: window_in)."""
    if not isinstance(obj, dict):
        raise ScheduleError(field_name, f"must be an object, got {obj!r}")
    nums = parse_days(obj.get("days"), f"{field_name}.days")
    start = parse_time_of_day(obj.get("start"), f"{field_name}.start")
    end = parse_time_of_day(obj.get("end"), f"{field_name}.end", allow_24=True)
    return window_in(nums, start, end, tz)


def parse_days(days: Any, field_name: str) -> frozenset[int]:
    """["MON", "SAT"] or ["ANY"] as weekday numbers (0 = Monday)."""
    if not isinstance(days, list) or not days:
        raise ScheduleError(field_name, f"must be a non-empty list of {DAY_NAMES} or ANY, got {days!r}")
    nums: set[int] = set()
    for d in days:
        if d == "ANY":
            nums.update(range(7))
        elif d in DAY_NAMES:
            nums.add(DAY_NAMES.index(d))
        else:
            raise ScheduleError(field_name, f"{d!r} is not one of {DAY_NAMES} or ANY")
    return frozenset(nums)


def epoch_seconds(value: Any, tz: str = DEFAULT_TZ) -> float:
    """A time given as epoch seconds or an RFC 3339 date-time (parse_datetime: without an offset, local to tz)
    as epoch seconds."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        value = float(value)  # epoch seconds given as text (a command-line argument)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ScheduleError("at", f"must be finite, got {value!r}")
        return float(value)
    return parse_datetime(value, "at", tz)
