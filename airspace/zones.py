"""Zones loaded from a GeoJSON FeatureCollection, and vectorized point-in-zone classification.

A zone is a 2D outline extruded between two altitude limits (each in its vertical reference),
with a restriction, an optional schedule (None = permanent) and the UA classes it applies to
(empty = all). Internal GeoJSON properties: id, name, kind, lower_m, upper_m (null = unlimited),
alt_ref, optional upper_ref (when the upper limit has another reference), uom ("M"/"FT": the unit
the limits were published in; lower_m/upper_m are always metres), restriction, schedule
(airspace.schedule.Schedule.from_dict form), ua_classes. Other properties are kept as they are;
`source` holds the published form of a zone imported from ED-269/ED-318 (airspace.formats).

Validation is strict because a silently mis-read zone (swapped band, NaN vertex, unknown
altitude reference) is a safety hole rather than a cosmetic bug: every error names the
feature (index and id) and the field at fault, so the zone-file author can fix it.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, NoReturn

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from protocol.topics import zone_id_problem

from .coords import position_problem
from .schedule import Schedule, ScheduleError
from .vertical import VerticalModel, normalize_ref, normalize_uom
from .zoneindex import ZoneIndex

ZONE_KINDS = ("corridor", "restricted", "authorization", "vertiport", "area", "conditional")
CEILING_KINDS = ("corridor", "area")  # kinds whose upper_m is a ceiling a UAV must stay under
RESTRICTIONS = ("PROHIBITED", "REQ_AUTHORISATION", "CONDITIONAL", "NO_RESTRICTION")
DEFAULT_RESTRICTION = {"restricted": "PROHIBITED", "authorization": "REQ_AUTHORISATION",
                       "conditional": "CONDITIONAL", "corridor": "CONDITIONAL",
                       "vertiport": "CONDITIONAL", "area": "NO_RESTRICTION"}
UA_CLASSES = ("micro", "light", "small", "medium", "large")
NEEDS_CLEARANCE = ("REQ_AUTHORISATION", "CONDITIONAL")  # restrictions a flight needs a clearance for


class ZoneFormatError(ValueError):
    """A zone file that cannot be trusted; `index`, `zone_id` and `field` say where."""

    def __init__(self, index: int | None, zone_id: Any, field: str, problem: str) -> None:
        self.index, self.zone_id, self.field, self.problem = index, zone_id, field, problem
        where = "FeatureCollection" if index is None else f"feature {index} (id={zone_id!r})"
        super().__init__(f"{where}: field {field!r}: {problem}")


@dataclass(frozen=True)
class Zone:
    """One airspace volume: a 2D outline extruded between lower_m (in alt_ref) and upper_m
    (in upper_ref, default alt_ref), in force per `schedule`, for `ua_classes` (empty = all)."""

    id: str
    name: str
    kind: str
    lower_m: float
    upper_m: float
    alt_ref: str
    geometry: BaseGeometry
    properties: dict = field(default_factory=dict, hash=False)
    restriction: str | None = None  # None: the kind's default (DEFAULT_RESTRICTION)
    schedule: Schedule | None = None
    ua_classes: frozenset[str] = frozenset()
    upper_ref: str | None = None
    uom: str = "M"

    def __post_init__(self) -> None:
        shapely.prepare(self.geometry)  # in place; makes the many point tests fast
        if self.restriction is None:
            object.__setattr__(self, "restriction", DEFAULT_RESTRICTION.get(self.kind, "NO_RESTRICTION"))
        if self.upper_ref == self.alt_ref:
            object.__setattr__(self, "upper_ref", None)
        object.__setattr__(self, "ua_classes", frozenset(self.ua_classes))

    def applies_to(self, ua_class: str | None) -> bool:
        return ua_class is None or not self.ua_classes or ua_class in self.ua_classes

    def model_properties(self) -> dict:
        """The properties with the model fields written back (what to_geojson emits)."""
        p = dict(self.properties)
        p.update(id=self.id, name=self.name, kind=self.kind, alt_ref=self.alt_ref)
        for key, value in (("lower_m", self.lower_m), ("upper_m", self.upper_m)):
            if p.get(key) != value and not (value == math.inf and key in p and p[key] is None):
                p[key] = None if value == math.inf else value
        if self.upper_ref is not None:
            p["upper_ref"] = self.upper_ref
        else:
            p.pop("upper_ref", None)
        if self.uom != "M" or "uom" in p:
            p["uom"] = self.uom
        if "restriction" in p or self.restriction != DEFAULT_RESTRICTION.get(self.kind):
            p["restriction"] = self.restriction
        if self.schedule is None:
            p.pop("schedule", None)
        elif _read_schedule(p.get("schedule")) != self.schedule:
            p["schedule"] = self.schedule.to_dict()
        if not self.ua_classes:
            p.pop("ua_classes", None)
        elif set(p.get("ua_classes") or ()) != self.ua_classes:
            p["ua_classes"] = sorted(self.ua_classes, key=UA_CLASSES.index)
        return p


def _read_schedule(obj: Any) -> Schedule | None:
    try:
        return None if obj is None else Schedule.from_dict(obj)
    except ScheduleError:
        return None


def _parse_feature(index: int, feat: Any, geometry: BaseGeometry | None = None) -> Zone:
    """One GeoJSON Feature as a Zone, or ZoneFormatError naming the bad field; `geometry`: its outline,
    already read and valid (an import's, airspace.formats), instead of the feature's own."""
    props = feat.get("properties") if isinstance(feat, dict) else None
    zid = (props.get("id") if isinstance(props, dict) else None) or (
        feat.get("id") if isinstance(feat, dict) else None)

    def fail(field_name: str, problem: str) -> NoReturn:
        raise ZoneFormatError(index, zid, field_name, problem)

    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        fail("type", "not a GeoJSON Feature object")
    if not isinstance(props, dict):
        fail("properties", "missing or not an object")
    if (problem := zone_id_problem(zid)) is not None:
        fail("id", problem)
    name = props.get("name", zid)
    if not isinstance(name, str):
        fail("name", f"must be a string, got {name!r}")
    if props.get("kind") not in ZONE_KINDS:
        fail("kind", f"{props.get('kind')!r} is not one of {ZONE_KINDS}")
    for key in ("lower_m", "upper_m"):
        value = props.get(key)
        if key == "upper_m" and value is None and "upper_m" in props:
            continue  # unlimited
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            fail(key, f"must be a finite number, got {value!r}")
    lower = float(props["lower_m"])
    upper = math.inf if props["upper_m"] is None else float(props["upper_m"])
    try:
        alt_ref = normalize_ref(props.get("alt_ref"))
    except ValueError as exc:
        fail("alt_ref", str(exc))
    upper_ref = props.get("upper_ref")
    if upper_ref is not None:
        try:
            upper_ref = normalize_ref(upper_ref)
        except ValueError as exc:
            fail("upper_ref", str(exc))
    if (upper_ref or alt_ref) == alt_ref and not lower < upper:
        fail("upper_m", f"upper_m {props['upper_m']} must exceed lower_m {props['lower_m']}")
    try:
        uom = normalize_uom(props.get("uom", "M"))
    except ValueError as exc:
        fail("uom", str(exc))
    restriction = props.get("restriction")
    if restriction is not None and restriction not in RESTRICTIONS:
        fail("restriction", f"{restriction!r} is not one of {RESTRICTIONS}")
    schedule = None
    if props.get("schedule") is not None:
        try:
            schedule = Schedule.from_dict(props["schedule"])
        except ScheduleError as exc:
            fail(exc.field, str(exc).split(": ", 1)[1])
    classes = props.get("ua_classes", [])
    if not isinstance(classes, list) or any(c not in UA_CLASSES for c in classes):
        fail("ua_classes", f"must be a list of {UA_CLASSES}, got {classes!r}")
    return Zone(zid, name, props["kind"], lower, upper, alt_ref,
                _parse_geometry(feat.get("geometry"), fail) if geometry is None else geometry, dict(props),
                restriction, schedule,
                frozenset(classes), upper_ref, uom)


def _parse_geometry(geo: Any, fail: Callable[[str, str], NoReturn]) -> BaseGeometry:
    """A valid, non-empty lon/lat Polygon or MultiPolygon; `fail` reports the problem. (Imports repair an
    invalid outline where they can: airspace.formats.geometry.)"""
    geom = read_geometry(geo, fail)
    if not geom.is_valid:
        fail("geometry", f"invalid polygon: {shapely.is_valid_reason(geom)}")
    return geom


def read_geometry(geo: Any, fail: Callable[[str, str], NoReturn]) -> BaseGeometry:
    """A non-empty lon/lat Polygon or MultiPolygon as published, valid or not; `fail` reports the problem."""
    if not isinstance(geo, dict) or geo.get("type") not in ("Polygon", "MultiPolygon"):
        got = geo.get("type") if isinstance(geo, dict) else geo
        fail("geometry", f"type must be Polygon or MultiPolygon, got {got!r}")
    try:
        geom = shape(geo)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError,
            shapely.errors.ShapelyError) as exc:
        fail("geometry", f"unreadable coordinates: {exc}")
    if geom.is_empty:
        fail("geometry", "empty")
    for corner in (geom.bounds[:2], geom.bounds[2:]):
        if problem := position_problem(*corner):
            fail("geometry", problem)
    return geom


class ZoneSet:
    """An ordered, id-unique set of zones with their bands pre-converted to AMSL.

    Classification goes through a grid cover index (airspace.zoneindex), built on first use.
    What a zone means to a flight is decided here once, for the monitor, route clearance and the API:
    the masks (n_zones,) `prohibited`, `needs_clearance` (REQ_AUTHORISATION, CONDITIONAL, and every
    corridor), `ceiling` (corridor and area tops), `corridor` and `scheduled`; `suspended(states)` and
    `in_force(t, states)` (schedule and suspension); `scheduled_intervals` (schedule over a span).
    """

    def __init__(self, zones: Iterable[Zone], vertical: VerticalModel = VerticalModel(),
                 meta: dict | None = None) -> None:
        self.zones: tuple[Zone, ...] = tuple(zones)
        self.vertical = vertical
        self.meta = dict(meta or {})  # FeatureCollection members other than features
        self._index: dict[str, int] = {}
        for i, zone in enumerate(self.zones):
            if zone.id in self._index:
                raise ZoneFormatError(i, zone.id, "id",
                                      f"duplicate of feature {self._index[zone.id]}")
            self._index[zone.id] = i
        self.kinds = np.array([z.kind for z in self.zones], dtype=object)
        self.restrictions = np.array([z.restriction for z in self.zones], dtype=object)
        self.prohibited = self.restrictions == "PROHIBITED"
        self.needs_clearance = np.isin(self.restrictions, NEEDS_CLEARANCE) | (self.kinds == "corridor")
        self.ceiling = np.isin(self.kinds, CEILING_KINDS)
        self.corridor = self.kinds == "corridor"
        self.scheduled = np.array([z.schedule is not None for z in self.zones], dtype=bool)
        self.lower_amsl = np.array([vertical.to_amsl(z.lower_m, z.alt_ref) for z in self.zones],
                                   dtype=float)
        self.upper_amsl = np.array([vertical.to_amsl(z.upper_m, z.upper_ref or z.alt_ref)
                                    for z in self.zones], dtype=float)
        self.geometries = np.array([z.geometry for z in self.zones], dtype=object)
        self.bounds = np.array([z.geometry.bounds for z in self.zones], dtype=float).reshape(-1, 4)
        self._grid: ZoneIndex | None = None

    @classmethod
    def from_geojson(cls, obj: dict, vertical: VerticalModel = VerticalModel()) -> ZoneSet:
        """Parse and validate a FeatureCollection dict (already loaded: no I/O here)."""
        if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
            raise ZoneFormatError(None, None, "type", "not a GeoJSON FeatureCollection object")
        feats = obj.get("features")
        if not isinstance(feats, list):
            raise ZoneFormatError(None, None, "features", "missing or not a list")
        meta = {k: v for k, v in obj.items() if k not in ("type", "features")}
        return cls((_parse_feature(i, f) for i, f in enumerate(feats)), vertical, meta)

    def to_geojson(self) -> dict:
        """The set as a FeatureCollection dict that from_geojson reads back unchanged."""
        feats = [{"type": "Feature", "id": z.id, "properties": z.model_properties(),
                  "geometry": json.loads(shapely.to_geojson(z.geometry))} for z in self.zones]
        return {**self.meta, "type": "FeatureCollection", "features": feats}

    def with_vertical(self, vertical: VerticalModel) -> ZoneSet:
        """The same zones under another vertical model (ground, geoid, ceiling rule)."""
        return ZoneSet(self.zones, vertical, self.meta)

    def get(self, zone_id: str) -> Zone | None:
        i = self._index.get(zone_id)
        return None if i is None else self.zones[i]

    def position(self, zone_id: str) -> int | None:
        """Column of a zone id in classify/contains_pairs results."""
        return self._index.get(zone_id)

    def __len__(self) -> int:
        return len(self.zones)

    def __iter__(self) -> Iterator[Zone]:
        return iter(self.zones)

    @property
    def index(self) -> ZoneIndex:
        """The grid cover index (built once, on first use)."""
        if self._grid is None:
            self._grid = ZoneIndex(self)
        return self._grid

    def contains_pairs(self, lon, lat, alt_amsl, t=None,
                       ua_class: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Sparse (point_idx, zone_idx) int arrays, sorted by point then zone: the zones that
        contain each position in 3D (outline incl. boundary, band incl. limits), in force at t
        (epoch seconds, scalar or array; None ignores schedules), applying to ua_class."""
        lon, lat, alt = _points(lon, lat, alt_amsl)
        ts = None if t is None else np.broadcast_to(np.asarray(t, dtype=float), lon.shape).copy()
        _check_class(ua_class)
        return self.index.pairs(lon, lat, alt, ts, ua_class)

    def zones_at(self, lon: float, lat: float, alt_amsl: float, t: float | None = None,
                 ua_class: str | None = None) -> list[int]:
        """Indices of the zones containing one position (the scalar fast path of contains_pairs)."""
        _check_class(ua_class)
        return self.index.one(float(lon), float(lat), float(alt_amsl),
                              None if t is None else float(t), ua_class)

    def active_mask(self, t) -> np.ndarray:
        """(n, n_zones) bool: each zone's schedule is in force at each time (schedule only)."""
        ts = np.asarray(t, dtype=float).reshape(-1)
        out = np.ones((ts.size, len(self.zones)), dtype=bool)
        for j, zone in enumerate(self.zones):
            if zone.schedule is not None:
                out[:, j] = zone.schedule.active(ts)
        return out

    def suspended(self, states: Mapping[str, Mapping] | None) -> np.ndarray:
        """(n_zones,) bool: suspended in `states` (zone id -> {"state": "active"|"suspended", ...})."""
        out = np.zeros(len(self.zones), dtype=bool)
        for zone_id, state in (states or {}).items():
            j = self._index.get(zone_id)
            if j is not None and (state or {}).get("state") == "suspended":
                out[j] = True
        return out

    def in_force(self, t, states: Mapping[str, Mapping] | None = None, zones=None) -> np.ndarray:
        """Whether zones are in force at event time t (epoch seconds): the schedule holds then (no
        schedule: always) and the zone is not suspended in `states` (None: no zone is).

        A suspended PROHIBITED zone no longer forbids; a suspended zone needing clearance is closed.
        t scalar: (n_zones,); t array (n,): (n, n_zones); with `zones` (a zone index per time): (n,).
        """
        if zones is None:
            out = self.active_mask(t)
            if states:
                out &= ~self.suspended(states)
            return out[0] if np.ndim(t) == 0 else out
        t, zones = np.asarray(t, dtype=float), np.asarray(zones, dtype=np.int64)
        ok = np.ones(zones.size, dtype=bool)
        if zones.size and self.scheduled.any():
            for j in np.intersect1d(zones, np.flatnonzero(self.scheduled)).tolist():
                m = zones == j
                ok[m] = self.zones[j].schedule.active(t[m])
        if states:
            ok &= ~self.suspended(states)[zones]
        return ok

    def scheduled_intervals(self, j: int, t0: float, t1: float) -> list[tuple[float, float]]:
        """The [start, end) intervals within [t0, t1] when zone j's schedule is in force (no schedule:
        all of it). Suspension is a state at one time, not part of this timeline."""
        schedule = self.zones[j].schedule
        if schedule is None:
            return [(t0, t1)] if t1 > t0 else []
        return schedule.intervals(t0, t1)

    def class_mask(self, ua_class: str | None) -> np.ndarray:
        """(n_zones,) bool: the zones that apply to a UA class (all when None)."""
        _check_class(ua_class)
        return np.array([z.applies_to(ua_class) for z in self.zones], dtype=bool)

    def band_mask(self, lon, lat, alt_amsl) -> np.ndarray:
        """(n, n_zones) bool: the altitude lies within each zone's band (limits included)."""
        lon, lat, alt = _points(lon, lat, alt_amsl)
        lower, upper = self.lower_amsl[None, :], self.upper_amsl[None, :]
        if not self.vertical.flat and len(self.zones):
            d = (self.vertical.ground_at(lon, lat) - self.vertical.ground_amsl_m)[:, None]
            g = self.index
            lower = lower + g.agl_lower[None, :] * d
            upper = upper + g.agl_upper[None, :] * d
        return (alt[:, None] >= lower) & (alt[:, None] <= upper)

    def classify(self, lon, lat, alt_amsl, t=None,
                 ua_class: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(horizontal, inside) bool arrays of shape (n_points, n_zones).

        horizontal: the point lies in the zone outline, boundary included (a fix exactly on
        an edge must not escape a restricted zone). inside: horizontal and within the band,
        and, when t is given, the schedule in force at t, and the zone applying to ua_class.
        """
        lon, lat, alt = _points(lon, lat, alt_amsl)
        horizontal = np.zeros((lon.size, len(self.zones)), dtype=bool)
        if lon.size and len(self.zones):
            p, z = self.index.pairs(lon, lat)
            horizontal[p, z] = True
        inside = horizontal & self.band_mask(lon, lat, alt)
        if t is not None:
            inside &= self.active_mask(np.broadcast_to(np.asarray(t, dtype=float), lon.shape))
        if ua_class is not None:
            inside &= self.class_mask(ua_class)[None, :]
        return horizontal, inside


def _points(lon, lat, alt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lon, lat, alt = (np.asarray(a, dtype=float).reshape(-1) for a in (lon, lat, alt))
    if not lon.shape == lat.shape == alt.shape:
        raise ValueError(f"lon, lat, alt_amsl lengths differ: {lon.size}, {lat.size}, {alt.size}")
    return lon, lat, alt


def _check_class(ua_class: str | None) -> None:
    if ua_class is not None and ua_class not in UA_CLASSES:
        raise ValueError(f"unknown UA class {ua_class!r}; expected one of {UA_CLASSES}")
