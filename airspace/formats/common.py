"""Pieces shared by the ED-269 and ED-318 converters.

Both converters turn each published feature into internal GeoJSON features (then parsed and validated by
airspace.zones, the one place where zones are checked: formats.report drives it feature by feature) and back.
A Failer names the feature and field of a problem, or notes a repair. For a lossless round trip
every imported zone keeps its published form in properties["source"] (the zone's members and the
volume it came from); an export reuses that form wherever the zone still means the same thing, and
writes the model's values where the zone was changed (or came from another format).
"""
from __future__ import annotations

import copy
import json
import math
from numbers import Real
from typing import Any, NoReturn

import numpy as np
import shapely
from shapely.geometry import Point, mapping

from ..schedule import (DAY_NAMES, DEFAULT_TZ, Period, Schedule, ScheduleError, Window, format_datetime,
                        format_time_of_day, offset_name, parse_datetime, parse_days, parse_time_of_day,
                        time_suffix, window_in)
from ..vertical import ALT_REFS, from_metres, normalize_uom, to_metres
from ..zones import DEFAULT_RESTRICTION, RESTRICTIONS, Zone, ZoneFormatError

KIND_OF_RESTRICTION = {"PROHIBITED": "restricted", "REQ_AUTHORISATION": "authorization",
                       "CONDITIONAL": "conditional", "NO_RESTRICTION": "area"}
CIRCLE_SEGMENTS = 64


class Failer:
    """Raises ZoneFormatError for one source feature, with the path of the field at fault.

    `repaired` notes a problem the import fixed, how, and details (areas) in `repairs`; without that list
    (repairs=None) a repairable problem is refused like any other."""

    def __init__(self, index: int | None, zone_id: Any, repairs: list | None = None) -> None:
        self.index, self.zone_id, self.repairs = index, zone_id, repairs

    def __call__(self, field: str, problem: str) -> NoReturn:
        raise ZoneFormatError(self.index, self.zone_id, field, problem)

    def repaired(self, field: str, problem: str, how: str, **details: Any) -> None:
        if self.repairs is None:
            self(field, problem)
        self.repairs.append((field, problem, {"repair": how, **details}))


def number(value: Any, field: str, fail: Failer, allow_null: bool = False) -> float | None:
    """A finite number (numeric strings like "0" accepted, as real files have them)."""
    if value is None and allow_null:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            fail(field, f"must be a number, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        fail(field, f"must be a finite number, got {value!r}")
    return float(value)


def ref(value: Any, field: str, fail: Failer) -> str:
    norm = value.upper() if isinstance(value, str) else None
    if norm not in ALT_REFS:
        fail(field, f"{value!r} is not one of {ALT_REFS}")
    return norm


def uom(value: Any, field: str, fail: Failer) -> str:
    try:
        return normalize_uom("M" if value is None else value)
    except ValueError as exc:
        fail(field, str(exc))


def limits(lower: Any, upper: Any, unit: str, path: tuple[str, str], fail: Failer) -> tuple[float, float]:
    """(lower_m, upper_m) in metres; a null upper limit is unlimited, a null lower the surface."""
    lo = number(lower, path[0], fail, allow_null=True)
    hi = number(upper, path[1], fail, allow_null=True)
    lo_m = 0.0 if lo is None else float(to_metres(lo, unit))
    hi_m = math.inf if hi is None else float(to_metres(hi, unit))
    return lo_m, hi_m


def export_limit(metres: float, unit: str) -> float | None:
    if metres == math.inf:
        return None
    value = from_metres(metres, unit)
    return int(value) if float(value).is_integer() else value


def circle(center: Any, radius: Any, path: str, fail: Failer, unit: str = "M"):
    """A circle (center [lon, lat], radius in `unit`) as a polygon that contains it: the 64-gon
    is circumscribed, so no point of the true circle is left outside a no-fly zone."""
    if (not isinstance(center, list) or len(center) != 2
            or any(isinstance(c, bool) or not isinstance(c, Real) or not math.isfinite(c) for c in center)):
        fail(f"{path}.center", f"must be [lon, lat], got {center!r}")
    lon, lat = float(center[0]), float(center[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        fail(f"{path}.center", f"[lon, lat] out of range: {center!r} (is it [lat, lon]?)")
    r = number(radius, f"{path}.radius", fail)
    if not r > 0:
        fail(f"{path}.radius", f"must be positive, got {radius!r}")
    r_out = float(to_metres(r, unit)) / math.cos(math.pi / CIRCLE_SEGMENTS)
    phi = math.radians(lat)  # metres per degree on the WGS84 ellipsoid at this latitude
    ky = 111_132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
    kx = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)
    poly = Point(0.0, 0.0).buffer(r_out, quad_segs=CIRCLE_SEGMENTS // 4)
    return shapely.transform(poly, lambda xy: xy / np.array([kx, ky]) + np.array([lon, lat]))


def geometry_json(geom) -> dict:
    g = mapping(geom)
    return {"type": g["type"], "coordinates": _lists(g["coordinates"])}


def _lists(c):
    return [_lists(x) for x in c] if isinstance(c, (list, tuple)) and c and isinstance(c[0], (list, tuple)) \
        else [float(x) for x in c]


def restriction_kind(restriction: str) -> str:
    return KIND_OF_RESTRICTION[restriction]


def check_restriction(value: Any, field: str, fail: Failer, aliases: dict | None = None) -> str:
    value = (aliases or {}).get(value, value)
    if value not in RESTRICTIONS:
        fail(field, f"{value!r} is not one of {RESTRICTIONS}")
    return value


def _time_tz(texts: list[tuple[str, str]]) -> str:
    """The time zone a zone's schedule is kept in: the one UTC offset all its daily times carry ('Z':
    UTC, '+01:00'), else Asia/Shanghai (times without an offset are local there, those with one are moved
    there by window_in). Date-times without an offset are read in it too."""
    offsets = set()
    for where, text in texts:
        try:
            offsets.add(parse_time_of_day(text, where, allow_24=True).offset_s)
        except ScheduleError:
            offsets.add(None)  # reported with its window
    return offset_name(offsets.pop()) if len(offsets) == 1 and None not in offsets else DEFAULT_TZ


def _has_content(value: Any) -> bool:
    """Whether a member says something (real files carry null dates and empty daily placeholders)."""
    if isinstance(value, list):
        return any(_has_content(v) for v in value)
    if isinstance(value, dict):
        return any(value.get(k) not in (None, [], "") for k in ("day", "startTime", "endTime", "startEvent",
                                                                  "endEvent"))
    return value is not None


def schedule_from_periods(items: Any, path: str, fail: Failer, daily_keys=("schedule", "dailyPeriod"),
                          permanent_key: str | None = "permanent") -> Schedule | None:
    """ED-269 `applicability` / ED-318 `limitedApplicability` as a Schedule (None = permanent)."""
    if items is None:
        return None
    if isinstance(items, dict):
        fail.repaired(path, "a time period object where the standard has a list of them", "read as a list of one")
        items = [items]
    if not isinstance(items, list):
        fail(path, f"must be a list, got {type(items).__name__}")
    times = []
    for i, item in enumerate(items):
        for key in daily_keys:
            for k, d in enumerate(item.get(key) or [] if isinstance(item, dict) else []):
                for end in ("startTime", "endTime"):
                    if isinstance(d, dict) and isinstance(d.get(end), str):
                        times.append((f"{path}[{i}].{key}[{k}].{end}", d[end]))
    tz = _time_tz(times)
    periods: list[Period] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            fail(where, f"must be an object, got {item!r}")
        if permanent_key is not None and item.get(permanent_key) not in (None, "YES", "NO"):
            fail(f"{where}.{permanent_key}", f"must be YES or NO, got {item.get(permanent_key)!r}")
        if permanent_key is not None and item.get(permanent_key) == "YES":
            said = [k for k in ("startDateTime", "endDateTime", *daily_keys) if _has_content(item.get(k))]
            if said:
                fail.repaired(f"{where}.{permanent_key}", f"permanent is YES, yet the period also gives "
                              f"{', '.join(said)}", f"read as permanent (in force at all times); {', '.join(said)} "
                              f"not applied")
            periods.append(Period())
            continue
        try:
            start = None if item.get("startDateTime") is None else parse_datetime(
                item["startDateTime"], f"{where}.startDateTime", tz)
            end = None if item.get("endDateTime") is None else parse_datetime(
                item["endDateTime"], f"{where}.endDateTime", tz)
        except ScheduleError as exc:
            fail(exc.field, str(exc).split(": ", 1)[1])
        if start is not None and end is not None and not start < end:
            fail(f"{where}.endDateTime", "must be after startDateTime")
        windows = []
        for key in daily_keys:
            daily = item.get(key)
            if daily is None:
                continue
            if not isinstance(daily, list):
                fail(f"{where}.{key}", "must be a list")
            for k, d in enumerate(daily):
                w = _window(d, f"{where}.{key}[{k}]", fail, tz)
                if w is not None:
                    windows.append(w)
        periods.append(Period(start, end, tuple(windows)))
    if not periods or any(p == Period() for p in periods):
        return None
    return Schedule(tuple(periods), tz)


def _window(d: Any, where: str, fail: Failer, tz: str) -> Window | None:
    if not isinstance(d, dict):
        fail(where, f"must be an object, got {d!r}")
    for key in ("startEvent", "endEvent"):
        if d.get(key) is not None:
            fail(f"{where}.{key}", "daylight events (sunrise/sunset) are not supported")
    days = d.get("day")
    if not days and d.get("startTime") is None and d.get("endTime") is None:
        return None  # an empty placeholder, as real files have them
    if isinstance(days, str):
        fail.repaired(f"{where}.day", f"a day {days!r} where the standard has a list of days", "read as a list of one")
        days = [days]
    try:
        nums = parse_days(days, f"{where}.day")
        start = parse_time_of_day(d.get("startTime", "00:00"), f"{where}.startTime")
        end = parse_time_of_day(d.get("endTime", "24:00"), f"{where}.endTime", allow_24=True)
        return window_in(nums, start, end, tz)
    except ScheduleError as exc:
        fail(exc.field, str(exc).split(": ", 1)[1])


def periods_from_schedule(schedule: Schedule | None, daily_key: str, permanent: bool) -> list[dict]:
    """A Schedule as ED-269 applicability (permanent=True adds the permanent flag) or ED-318
    limitedApplicability items."""
    if schedule is None:
        return [{"permanent": "YES"}] if permanent else []
    z = time_suffix(schedule.tz)
    out = []
    for p in schedule.periods:
        item: dict = {"permanent": "NO"} if permanent else {}
        if p.start is not None:
            item["startDateTime"] = _iso(p.start, schedule.tz)
        if p.end is not None:
            item["endDateTime"] = _iso(p.end, schedule.tz)
        if p.windows:
            item[daily_key] = [{"day": [DAY_NAMES[d] for d in sorted(w.days)],
                                "startTime": format_time_of_day(w.start_s) + z,
                                "endTime": ("24:00" if w.end_s == 86_400 else format_time_of_day(w.end_s)) + z}
                               for w in p.windows]
        out.append(item)
    return out


def _iso(epoch: float, tz: str) -> str:
    text = format_datetime(epoch, tz)
    return text.replace("+00:00", "Z") if tz == "UTC" else text


def unique_id(base: str, taken: set[str], index: int | None = None) -> str:
    """`base`, or base@2, base@3... for its later uses (real files repeat identifiers)."""
    zid, n = base, 2
    while zid in taken:
        zid, n = f"{base}@{n}", n + 1
    taken.add(zid)
    return zid


def skylane_extension(zone: Zone) -> dict:
    """What another format cannot say about a zone, so it survives a trip through that format."""
    return {"id": zone.id, "kind": zone.kind, "properties": copy.deepcopy(zone.model_properties())}


def internal_feature(props: dict, geometry) -> tuple[dict, Any]:
    """An imported zone: its internal GeoJSON feature (without geometry) and its shapely outline, which
    airspace.zones checks as they are (no second trip through GeoJSON)."""
    return {"type": "Feature", "id": props["id"], "properties": props}, geometry


def model_props(zid: str, name: str, restriction: str, lower_m: float, upper_m: float, lower_ref: str,
                upper_ref: str, unit: str, schedule: Schedule | None, ua_classes: list[str] | None,
                source: dict) -> dict:
    """Internal GeoJSON properties of an imported zone."""
    kind = restriction_kind(restriction)
    props = {"id": zid, "name": name, "kind": kind, "lower_m": lower_m,
             "upper_m": None if upper_m == math.inf else upper_m, "alt_ref": lower_ref, "uom": unit}
    if upper_ref != lower_ref:
        props["upper_ref"] = upper_ref
    props["restriction"] = restriction
    if schedule is not None:
        props["schedule"] = schedule.to_dict()
    if ua_classes:
        props["ua_classes"] = ua_classes
    props["source"] = source
    return props


def groups(zones: tuple[Zone, ...], fmt: str) -> list[list[Zone]]:
    """Zones grouped by the published feature they were imported from (in `fmt`), in order of
    first appearance (the feature's members identify it, not its position, which an export from the
    store reorders); zones from elsewhere form groups of one."""
    out: dict[Any, list[Zone]] = {}
    for j, z in enumerate(zones):
        src = z.properties.get("source")
        if isinstance(src, dict) and src.get("format") == fmt:  # same published zone object: one group
            key: Any = ("src", json.dumps([src.get(k) for k in ("zone", "properties", "feature_members")],
                                          sort_keys=True))
        else:
            key = ("own", j)
        out.setdefault(key, []).append(z)
    for members in out.values():
        members.sort(key=lambda z: (z.properties.get("source") or {}).get("volume") or 0)
    return list(out.values())


def source_of(zone: Zone, fmt: str) -> dict | None:
    src = zone.properties.get("source")
    return src if isinstance(src, dict) and src.get("format") == fmt else None


def volume_equal(zone: Zone, geom, lower_m: float, upper_m: float, lower_ref: str, upper_ref: str,
                 unit: str) -> bool:
    """Whether a published volume still says what the zone says (then it is exported as it was)."""
    return (zone.geometry.equals_exact(geom, 0.0) and zone.lower_m == lower_m and zone.upper_m == upper_m
            and zone.alt_ref == lower_ref and (zone.upper_ref or zone.alt_ref) == upper_ref
            and zone.uom == unit)


def restore_extension(sky: Any, name: str, restriction: str, lower_m: float, upper_m: float,
                      lower_ref: str, upper_ref: str, unit: str, schedule: Schedule | None) -> dict | None:
    """Internal properties from a Skylane extension block, with the published values (which an
    editor may have changed since the export) written over the model fields."""
    if not isinstance(sky, dict) or not isinstance(sky.get("properties"), dict):
        return None
    props = copy.deepcopy(sky["properties"])
    original = set(props)
    props.update(name=name, restriction=restriction, lower_m=lower_m, alt_ref=lower_ref, uom=unit,
                 upper_m=None if upper_m == math.inf else upper_m)
    if "uom" not in original and unit == "M":
        del props["uom"]
    if "restriction" not in original and restriction == DEFAULT_RESTRICTION.get(props.get("kind")):
        del props["restriction"]
    if upper_ref != lower_ref:
        props["upper_ref"] = upper_ref
    else:
        props.pop("upper_ref", None)
    old = props.get("schedule")
    try:
        same = (None if old is None else Schedule.from_dict(old)) == schedule
    except ScheduleError:
        same = False
    if not same:
        if schedule is None:
            props.pop("schedule", None)
        else:
            props["schedule"] = schedule.to_dict()
    return props
