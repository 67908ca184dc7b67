"""Zones loaded from a GeoJSON FeatureCollection, and vectorized point-in-zone classification.

Validation is strict because a silently mis-read zone (swapped band, NaN vertex, unknown
altitude reference) is a safety hole rather than a cosmetic bug: every error names the
feature (index and id) and the field at fault, so the zone-file author can fix it.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, NoReturn

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from .coords import position_problem
from .vertical import VerticalModel, normalize_ref

ZONE_KINDS = ("corridor", "restricted", "authorization", "vertiport", "area")
CEILING_KINDS = ("corridor", "area")  # kinds whose upper_m is a ceiling a UAV must stay under


class ZoneFormatError(ValueError):
    """A zone file that cannot be trusted; `index`, `zone_id` and `field` say where."""

    def __init__(self, index: int | None, zone_id: Any, field: str, problem: str) -> None:
        self.index, self.zone_id, self.field = index, zone_id, field
        where = "FeatureCollection" if index is None else f"feature {index} (id={zone_id!r})"
        super().__init__(f"{where}: field {field!r}: {problem}")


@dataclass(frozen=True)
class Zone:
    """One airspace volume: a 2D outline extruded between lower_m and upper_m in alt_ref."""

    id: str
    name: str
    kind: str
    lower_m: float
    upper_m: float
    alt_ref: str
    geometry: BaseGeometry
    properties: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        shapely.prepare(self.geometry)  # in place; makes the many point tests fast


def _parse_feature(index: int, feat: Any) -> Zone:
    """One GeoJSON Feature as a Zone, or ZoneFormatError naming the bad field."""
    props = feat.get("properties") if isinstance(feat, dict) else None
    zid = (props.get("id") if isinstance(props, dict) else None) or (
        feat.get("id") if isinstance(feat, dict) else None)

    def fail(field_name: str, problem: str) -> NoReturn:
        raise ZoneFormatError(index, zid, field_name, problem)

    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        fail("type", "not a GeoJSON Feature object")
    if not isinstance(props, dict):
        fail("properties", "missing or not an object")
    if not isinstance(zid, str) or not zid.strip():
        fail("id", f"must be a non-empty string, got {zid!r}")
    name = props.get("name", zid)
    if not isinstance(name, str):
        fail("name", f"must be a string, got {name!r}")
    if props.get("kind") not in ZONE_KINDS:
        fail("kind", f"{props.get('kind')!r} is not one of {ZONE_KINDS}")
    for key in ("lower_m", "upper_m"):
        value = props.get(key)
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            fail(key, f"must be a finite number, got {value!r}")
    if not props["lower_m"] < props["upper_m"]:
        fail("upper_m", f"upper_m {props['upper_m']} must exceed lower_m {props['lower_m']}")
    try:
        alt_ref = normalize_ref(props.get("alt_ref"))
    except ValueError as exc:
        fail("alt_ref", str(exc))
    return Zone(zid, name, props["kind"], float(props["lower_m"]), float(props["upper_m"]),
                alt_ref, _parse_geometry(feat.get("geometry"), fail), dict(props))


def _parse_geometry(geo: Any, fail: Callable[[str, str], NoReturn]) -> BaseGeometry:
    """A valid, non-empty lon/lat Polygon or MultiPolygon; `fail` reports the problem."""
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
    if not geom.is_valid:
        fail("geometry", f"invalid polygon: {shapely.is_valid_reason(geom)}")
    return geom


class ZoneSet:
    """An ordered, id-unique set of zones with their bands pre-converted to AMSL."""

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
        self.lower_amsl = np.array([vertical.to_amsl(z.lower_m, z.alt_ref) for z in self.zones],
                                   dtype=float)
        self.upper_amsl = np.array([vertical.to_amsl(z.upper_m, z.alt_ref) for z in self.zones],
                                   dtype=float)
        self._bounds = np.array([z.geometry.bounds for z in self.zones], dtype=float).reshape(-1, 4)

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
        feats = [{"type": "Feature", "id": z.id, "properties": dict(z.properties),
                  "geometry": json.loads(shapely.to_geojson(z.geometry))} for z in self.zones]
        return {**self.meta, "type": "FeatureCollection", "features": feats}

    def get(self, zone_id: str) -> Zone | None:
        i = self._index.get(zone_id)
        return None if i is None else self.zones[i]

    def __len__(self) -> int:
        return len(self.zones)

    def __iter__(self) -> Iterator[Zone]:
        return iter(self.zones)

    def classify(self, lon: np.ndarray, lat: np.ndarray,
                 alt_amsl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(horizontal, inside) bool arrays of shape (n_points, n_zones).

        horizontal: the point lies in the zone outline, boundary included (a fix exactly on
        an edge must not escape a restricted zone). inside: horizontal and within the band.
        Loops over zones, vectorizes over points, with a bounding-box prefilter so each zone
        only runs the exact test on the points near it.
        """
        lon, lat, alt = (np.asarray(a, dtype=float).reshape(-1) for a in (lon, lat, alt_amsl))
        if not lon.shape == lat.shape == alt.shape:
            raise ValueError(f"lon, lat, alt_amsl lengths differ: {lon.size}, {lat.size}, {alt.size}")
        horizontal = np.zeros((lon.size, len(self.zones)), dtype=bool)
        for j, zone in enumerate(self.zones):
            x0, y0, x1, y1 = self._bounds[j]
            near = np.flatnonzero((lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1))
            if near.size:
                horizontal[near, j] = shapely.intersects_xy(zone.geometry, lon[near], lat[near])
        in_band = (alt[:, None] >= self.lower_amsl) & (alt[:, None] <= self.upper_amsl)
        return horizontal, horizontal & in_band
