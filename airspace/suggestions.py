"""Suggestions for a denied route, each resubmittable as is and then approved: a constant altitude inside
a clear band, and the earliest later departure (1 s resolution) that clears every reason.

The search re-runs the route check (a RouteCheck from airspace.clearance, carrying the route's outline
pieces, which altering altitudes or times does not change) on altered copies of the route.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from protocol.times import parse_rfc3339, rfc3339

from .events import from_epoch
from .reasons import round3
from .route import Route
from .zones import ZoneSet

if TYPE_CHECKING:
    from .clearance import ClearanceResult, RouteCheck

TIME_CODES = ("separation_conflict", "corridor_capacity")  # cleared by departing later


def suggestions_for(check: RouteCheck, r: Route, result: ClearanceResult) -> list[dict]:
    """The suggestions for route r, denied with `result` (check.outline set)."""
    zs = check.zones
    suggestions = suggest_altitude(check, r)
    if r.t is not None and all(x["code"] in TIME_CODES or time_bound(zs, x) for x in result.reasons):
        suggestions += suggest_departure(check, r)
    return suggestions


def time_bound(zs: ZoneSet, reason: dict) -> bool:
    """A zone reason that a later departure may clear: the zone has a schedule."""
    zone = zs.get(reason["zone_id"]) if reason.get("zone_id") else None
    return zone is not None and reason["code"] in ("restricted_zone", "above_ceiling") and \
        zone.schedule is not None


def _resubmit(zs: ZoneSet, r: Route) -> list[dict]:
    out = []
    for k in range(r.lon.size):
        wp = {"lon": float(r.lon[k]), "lat": float(r.lat[k]),
              "alt_m": round3(zs.vertical.from_amsl(float(r.alt[k]), r.alt_ref))}
        if r.t is not None:
            wp["t"] = rfc3339(from_epoch(r.t[k]))
        out.append(wp)
    return out


def suggest_altitude(check: RouteCheck, r: Route) -> list[dict]:
    """A constant altitude inside a band clear of every limit the route's outline meets."""
    zs = check.zones
    zones_met = np.unique(check.outline[1])
    ground = float(zs.vertical.to_amsl(0.0, "AGL"))
    rule = zs.vertical.ceiling_agl_m
    top = float(zs.vertical.to_amsl(rule, "AGL")) if rule is not None else ground + 500.0
    limits = {ground + 10.0, top}
    for j in zones_met.tolist():
        for v in (zs.lower_amsl[j], zs.upper_amsl[j]):
            if np.isfinite(v) and ground + 10.0 < v < top:
                limits.add(float(v))
    edges = sorted(limits)
    mean = float(r.alt.mean())
    gaps = sorted(((a + b) / 2.0, a, b) for a, b in zip(edges[:-1], edges[1:]) if b - a > 2.0)
    for h, a, b in sorted(gaps, key=lambda g: abs(g[0] - mean))[:8]:
        h_ref = round3(zs.vertical.from_amsl(h, r.alt_ref))
        h = float(zs.vertical.to_amsl(h_ref, r.alt_ref))
        trial = replace(r, alt=np.full_like(r.alt, h))
        if check.run(trial).approved:
            band = [round3(zs.vertical.from_amsl(a, r.alt_ref)), round3(zs.vertical.from_amsl(b, r.alt_ref))]
            return [{"kind": "altitude", "alt_m": h_ref, "alt_ref": r.alt_ref, "band": band,
                     "message": f"fly at {h_ref:g} m {r.alt_ref} (clear band {band[0]:g}-{band[1]:g} m)",
                     "waypoints": _resubmit(zs, trial)}]
    return []


def suggest_departure(check: RouteCheck, r: Route, horizon_s: float = 86_400.0) -> list[dict]:
    """The earliest later departure (1 s resolution) found that clears every reason."""
    zs = check.zones

    def run(delay: float) -> ClearanceResult:
        return check.run(replace(r, t=r.t + delay, schedules={}))

    lo, hi = 0.0, None
    delay = 0.0
    for _ in range(40):
        res = run(delay)
        if res.approved:
            hi = delay
            break
        if any(x["code"] not in TIME_CODES and not time_bound(zs, x) for x in res.reasons):
            return []
        lo = delay
        delay = max(delay + 1.0, max(_needed_delay(check, r, x) + delay for x in res.reasons))
        if delay > horizon_s:
            return []
    if hi is None:
        return []
    while hi - lo > 1.0:  # an earlier departure between the last refused and the first approved
        mid = math.floor((lo + hi) / 2.0)
        if mid <= lo:
            break
        if run(mid).approved:
            hi = float(mid)
        else:
            lo = float(mid)
    trial = replace(r, t=r.t + hi, schedules={})
    dep = rfc3339(from_epoch(trial.t[0]))
    return [{"kind": "departure", "departure": dep, "delay_s": hi,
             "message": f"depart at {dep} ({hi:g} s later)", "waypoints": _resubmit(zs, trial)}]


def _needed_delay(check: RouteCheck, r: Route, reason: dict) -> float:
    """A delay after which this reason no longer holds at its place (sufficient, not minimal): a time code,
    or a zone reason of a scheduled zone (time_bound)."""
    code = reason["code"]
    entry_t = parse_rfc3339(reason["entry"]["t"]).timestamp() if (
        reason.get("entry") and reason["entry"].get("t")) else float(r.t[0])
    if code == "separation_conflict":
        other = next(c for c in check.index.clearances if c.clearance_id == reason["conflict"]["clearance_id"])
        k = reason["segment"]
        return other.end + check.minima.time_s - float(r.t[k]) + 1.0
    if code == "corridor_capacity":
        legs = check.index.legs.get(reason["zone_id"], [])
        ends = [b for a, b, _ in legs if b >= entry_t]
        return (min(ends) - entry_t + 1.0) if ends else 1.0
    iv = check.zones.get(reason["zone_id"]).schedule.intervals(entry_t, entry_t + 8 * 86_400.0)
    return iv[0][1] - entry_t + 1.0 if iv else 1.0
