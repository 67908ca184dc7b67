"""4D route clearance: is a planned flight allowed, and if not, exactly why and what would be.

    check_route(zones: ZoneSet, waypoints: Sequence[Waypoint], alt_ref: str = "AGL", *,
                departure: datetime | float | None = None, speed_mps: float | None = None,
                uav_id: str | None = None, ua_class: str | None = None,
                approved: ApprovedIndex | Sequence[ApprovedClearance] | None = None,
                minima: SeparationMinima = SeparationMinima(), capacity: int | None = None,
                zone_states: Mapping[str, Mapping] | None = None,
                suggest: bool = True) -> ClearanceResult

Times: every Waypoint has `t` (epoch seconds or aware datetime, strictly increasing), or none
has and `departure` + `speed_mps` give them (3D distance / speed), or neither: an untimed 3D
check (schedules taken as always in force, no deconfliction); airspace.route plans them.

Each segment is intersected exactly with every zone outline it meets (bounding-box prefilter on
an STRtree, altitude-envelope prefilter, then only segments that cross a boundary are cut with
GEOS), the pieces are clipped to the zone's band with the altitude interpolated along the
segment, and to the zone's schedule with the interpolated time (airspace.route_pieces); what a zone
means (prohibited, needs clearance, ceiling, suspended) is ZoneSet's. Reason codes:
  restricted_zone   a PROHIBITED zone in force is entered (entry/exit point and time, altitudes)
  zone_suspended    a zone needing clearance (corridor, ...) is suspended (state, sensor reading)
  above_ceiling     above a corridor/area top, or the true-height ceiling (zone_id None)
  outside_area      part of the route lies outside every operating area
  separation_conflict  closer than the 4D minima to another approved clearance (exact, per
                    segment pair; airspace.deconfliction, airspace.separation)
  corridor_capacity the corridor already holds `capacity` approved flights at some time of the leg
Each reason: code, message, zone_id, zone_name, segment, waypoint, entry, exit (lon, lat,
alt_m in the request's reference, alt_amsl, t RFC 3339 or None), altitude ({"route_m", "zone_m",
"zone_alt_ref"}), plus `conflict` / `state` / `capacity` where relevant (airspace.reasons).
Suggestions (denials only, each resubmittable as is and then approved): {"kind": "altitude",
"alt_m", "alt_ref", "band": [lo, hi], "waypoints": [...]} (a constant altitude inside a clear
band) and {"kind": "departure", "departure": RFC 3339, "delay_s", "waypoints": [...]} (the
earliest later departure found that clears, 1 s resolution; airspace.suggestions).
A malformed request (fewer than 2 waypoints, bad coordinates or times, unknown alt_ref) is a
ValueError, not a denial.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from .deconfliction import capacity_reasons, separation_reasons
from .reasons import corridor_legs, materialize, route_points, zone_drafts
from .route import Route, plan
from .route_pieces import band_pieces, horizontal_pieces, in_force_pieces, outline_pieces, route_index
from .separation import ApprovedClearance, ApprovedIndex, SeparationMinima, Tolerances
from .suggestions import suggestions_for
from .zones import ZoneSet


@dataclass(frozen=True)
class Waypoint:
    lon: float
    lat: float
    alt_m: float
    t: float | datetime | None = None  # epoch seconds or aware datetime


@dataclass(frozen=True)
class ClearanceResult:
    decision: str  # "approved" | "denied"
    reasons: list[dict] = field(default_factory=list, hash=False)
    suggestions: list[dict] = field(default_factory=list, hash=False)
    route: list[dict] = field(default_factory=list, hash=False)      # waypoints with alt_amsl and t
    corridors: list[dict] = field(default_factory=list, hash=False)  # legs inside corridors
    zones: list[str] = field(default_factory=list, hash=False)       # zones needing clearance crossed

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def to_dict(self) -> dict:
        return {"decision": self.decision, "approved": self.approved, "reasons": self.reasons,
                "suggestions": self.suggestions, "route": self.route, "corridors": self.corridors,
                "zones": self.zones}

    def clearance(self, clearance_id: str, uav_id: str, tolerances: Tolerances = Tolerances()) -> ApprovedClearance:
        """The approved clearance to store and publish (timed routes only)."""
        if not self.approved or any(p["t"] is None for p in self.route):
            raise ValueError("only an approved, timed route becomes a clearance")
        legs = tuple({"zone_id": c["zone_id"], "entry": _raw(c["entry"]), "exit": _raw(c["exit"])}
                     for c in self.corridors)
        return ApprovedClearance(clearance_id, uav_id, tuple(p["lon"] for p in self.route),
                                 tuple(p["lat"] for p in self.route), tuple(p["alt_amsl"] for p in self.route),
                                 tuple(p["epoch"] for p in self.route), legs, tuple(self.zones), tolerances)


def _raw(p: dict) -> dict:
    return {"lon": p["lon"], "lat": p["lat"], "alt_amsl": p["alt_amsl"], "t": p["epoch"]}


@dataclass(frozen=True)
class RouteCheck:
    """Everything a route is checked against besides its waypoints. `outline` (the route's outline pieces,
    which depend on its ground track only) is given when the suggestion search re-checks altered copies."""

    zones: ZoneSet
    uav_id: str | None
    ua_class: str | None
    index: ApprovedIndex
    minima: SeparationMinima
    capacity: int | None
    zone_states: Mapping[str, Mapping] | None
    outline: tuple | None = None

    def run(self, r: Route) -> ClearanceResult:
        """The decision on route r with every reason, without suggestions."""
        zs = self.zones
        ix = route_index(zs)
        hp = horizontal_pieces(zs, ix, r, self.ua_class, outline=self.outline)
        p3 = in_force_pieces(zs, r, *band_pieces(zs, r, *hp))
        drafts, cleared = zone_drafts(zs, ix, r, p3, hp, self.zone_states)
        reasons = materialize(zs, r, drafts)
        legs = corridor_legs(zs, r, cleared)
        reasons += separation_reasons(zs, r, self.index, self.minima, self.uav_id)
        reasons += capacity_reasons(zs, legs, self.index, self.capacity)
        n = r.lon.size
        route = route_points(zs, r, np.minimum(np.arange(n), n - 2), np.where(np.arange(n) == n - 1, 1.0, 0.0))
        zones_crossed = sorted({zs.zones[j].id for j in np.unique(cleared[1]).tolist()})
        return ClearanceResult("denied" if reasons else "approved", reasons, [], route, legs, zones_crossed)


def check_route(zones: ZoneSet, waypoints: Sequence[Waypoint], alt_ref: str = "AGL", *, departure=None,
                speed_mps: float | None = None, uav_id: str | None = None, ua_class: str | None = None,
                approved: ApprovedIndex | Sequence[ApprovedClearance] | None = None,
                minima: SeparationMinima = SeparationMinima(), capacity: int | None = None,
                zone_states: Mapping[str, Mapping] | None = None, suggest: bool = True) -> ClearanceResult:
    """Approve the 4D route, or deny it with every reason (see the module docstring)."""
    r = plan(zones, waypoints, alt_ref, departure, speed_mps)
    index = approved if isinstance(approved, ApprovedIndex) else ApprovedIndex(approved or ())
    check = RouteCheck(zones, uav_id, ua_class, index, minima, capacity, zone_states)
    result = check.run(r)
    if result.approved or not suggest:
        return result
    search = replace(check, outline=outline_pieces(zones, route_index(zones), r, ua_class))
    return replace(result, suggestions=suggestions_for(search, r, result))
