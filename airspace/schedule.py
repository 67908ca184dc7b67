"""When a zone is in force: date ranges and weekly day/time windows in a local time zone.

A Schedule is a union of Periods; a Period is an optional [start, end) date-time range and
optional weekly windows (days + start/end time of day, local time). The time zone is Asia/Shanghai
unless told (UTC for ED-269 "Z" times); zones with daylight saving are refused. A window whose end is
not after its start runs across midnight into the next day (22:00-06:00 on FRI covers Friday
22:00 to Saturday 06:00). Intervals are half-open: a zone active 08:00-10:00 is active at
08:00:00 and no longer at 10:00:00. Times are epoch seconds (float): no clock is read here.
`None` instead of a Schedule means permanent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

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


def parse_time_of_day(text: Any, field_name: str, allow_24: bool = False) -> int:
    """'HH:MM', 'HH:MM:SS' or 'HH:MM:SS.ff' as seconds of the day (24:00 only as an end)."""
    if not isinstance(text, str):
        raise ScheduleError(field_name, f"time of day must be a string 'HH:MM[:SS]', got {text!r}")
    body = text.split(".", 1)[0]
    parts = body.split(":")
    try:
        if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
            raise ValueError
        h, m, s = (int(p) for p in parts + ["0"] * (3 - len(parts)))
    except ValueError:
        raise ScheduleError(field_name, f"time of day must be 'HH:MM[:SS]', got {text!r}") from None
    if "." in text and not text.split(".", 1)[1].isdigit():
        raise ScheduleError(field_name, f"bad fraction of second in {text!r}")
    if m > 59 or s > 59 or h > 24 or (h == 24 and (m or s or not allow_24)):
        raise ScheduleError(field_name, f"time of day out of range: {text!r}")
    return h * 3600 + m * 60 + s


def format_time_of_day(seconds: int) -> str:
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" if s == 0 else f"{h:02d}:{m:02d}:{s:02d}"


def parse_datetime(text: Any, field_name: str, tz: str = DEFAULT_TZ) -> float:
    """An ISO 8601 date-time (or date) as epoch seconds; naive values are local to `tz`."""
    if not isinstance(text, str):
        raise ScheduleError(field_name, f"date-time must be an ISO 8601 string, got {text!r}")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ScheduleError(field_name, f"not an ISO 8601 date-time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_zone(tz))
    return value.timestamp()


def format_datetime(epoch: float, tz: str = DEFAULT_TZ) -> str:
    return datetime.fromtimestamp(epoch, _zone(tz)).isoformat()


@lru_cache(maxsize=64)
def _zone(tz: str) -> timezone | ZoneInfo:
    if tz.upper() in ("UTC", "Z"):
        return timezone.utc
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
                parse_window(w, f"{where}.windows[{k}]") for k, w in enumerate(windows))))
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


def parse_window(obj: Any, field_name: str) -> Window:
    """{"days": ["MON", ...] or ["ANY"], "start": "HH:MM", "end": "HH:MM"} as a Window."""
    if not isinstance(obj, dict):
        raise ScheduleError(field_name, f"must be an object, got {obj!r}")
    nums = parse_days(obj.get("days"), f"{field_name}.days")
    start = parse_time_of_day(obj.get("start"), f"{field_name}.start")
    end = parse_time_of_day(obj.get("end"), f"{field_name}.end", allow_24=True)
    return Window(nums, start, end)


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
    """A time given as epoch seconds or ISO 8601 (naive = local to tz) as epoch seconds."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        value = float(value)  # epoch seconds given as text (a command-line argument)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ScheduleError("at", f"must be finite, got {value!r}")
        return float(value)
    return parse_datetime(value, "at", tz)
