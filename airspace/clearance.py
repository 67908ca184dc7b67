"""Pre-flight route clearance: does a planned polyline respect the zone set?

First cut, deliberately conservative: a segment is treated as occupying its whole altitude
range along its whole length, so a climb that would clear a restricted zone in reality is
still denied here. Segment-level ceiling and corridor-adherence checks come later.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from .coords import position_problem
from .zones import CEILING_KINDS, Zone, ZoneSet


@dataclass(frozen=True)
class Waypoint:
    lon: float
    lat: float
    alt_m: float


@dataclass(frozen=True)
class ClearanceResult:
    decision: str  # "approved" | "denied"
    reasons: list[dict] = field(default_factory=list, hash=False)


def _reason(code: str, message: str, zone: Zone | None, segment: int | None = None,
            waypoint: int | None = None) -> dict:
    return {"code": code, "message": message, "zone_id": zone and zone.id,
            "zone_name": zone and zone.name, "segment": segment, "waypoint": waypoint}


def check_route(zones: ZoneSet, waypoints: Sequence[Waypoint], alt_ref: str = "AGL") -> ClearanceResult:
    """Approve the route, or deny it with one reason per offending segment/waypoint and zone.

    ValueError (not a denial) for a malformed request: fewer than two waypoints, a
    non-finite or out-of-range coordinate, or an unknown alt_ref.
    """
    if len(waypoints) < 2:
        raise ValueError(f"a route needs at least 2 waypoints, got {len(waypoints)}")
    for k, wp in enumerate(waypoints):
        if problem := position_problem(wp.lon, wp.lat, wp.alt_m):
            raise ValueError(f"waypoint {k}: {problem}")
    xy = np.array([(wp.lon, wp.lat) for wp in waypoints], dtype=float)
    alt = zones.vertical.to_amsl(np.array([wp.alt_m for wp in waypoints], dtype=float), alt_ref)
    segments = shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1))
    seg_low, seg_high = np.minimum(alt[:-1], alt[1:]), np.maximum(alt[:-1], alt[1:])
    reasons: list[dict] = []

    hits = []  # (segment, zone index) pairs of restricted zones the segment flies through
    for j in np.flatnonzero(zones.kinds == "restricted"):
        crosses = shapely.intersects(zones.zones[j].geometry, segments)
        in_band = (seg_low <= zones.upper_amsl[j]) & (seg_high >= zones.lower_amsl[j])
        hits += [(int(s), int(j)) for s in np.flatnonzero(crosses & in_band)]
    for s, j in sorted(hits):
        zone = zones.zones[j]
        reasons.append(_reason("restricted_zone", f"segment {s} crosses restricted zone {zone.id} "
                               f"({zone.name}) within its band {zone.lower_m:g}-{zone.upper_m:g} m "
                               f"{zone.alt_ref}", zone, segment=s))

    horizontal, _ = zones.classify(xy[:, 0], xy[:, 1], alt)
    areas = np.flatnonzero(zones.kinds == "area")
    above = horizontal & np.isin(zones.kinds, CEILING_KINDS) & (alt[:, None] > zones.upper_amsl)
    for k in range(len(waypoints)):
        if areas.size and not horizontal[k, areas].any():
            only = zones.zones[areas[0]] if areas.size == 1 else None
            reasons.append(_reason("outside_area", f"waypoint {k} is outside the operating area",
                                   only, waypoint=k))
        for j in np.flatnonzero(above[k]):
            zone = zones.zones[j]
            reasons.append(_reason("above_ceiling", f"waypoint {k} at {waypoints[k].alt_m:g} m "
                                   f"{alt_ref} is above the {zone.upper_m:g} m {zone.alt_ref} "
                                   f"ceiling of {zone.id} ({zone.name})", zone, waypoint=k))
    return ClearanceResult("denied" if reasons else "approved", reasons)
