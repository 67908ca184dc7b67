"""The reasons of a route check, from drafts to what the caller reads.

A Draft is a reason before its points are computed: a code, a zone and where it starts and ends along
the route (first/last segment and parameter). Zone reasons are drafted from the route's pieces in the
zones (airspace.route_pieces): restricted_zone, zone_suspended, above_ceiling (a corridor/area top or the
true-height ceiling), outside_area; then every draft gets its entry and exit points (lon, lat, alt_m in the
request's reference, alt_amsl, t RFC 3339) and its message in one vectorized pass.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .route import Route
from .route_pieces import RouteIndex, in_force_pieces
from .segments import merge_intervals
from .zones import ZoneSet


def round3(x: float) -> float:
    """Metres or seconds as reported: to the millimetre or millisecond."""
    return float(round(x, 3))


@dataclass
class Draft:
    """A reason before its points are computed: code, zone index (-1: none), first/last segment."""

    code: str
    zone: int
    k0: int
    s0: float
    k1: int
    s1: float
    extra: dict = field(default_factory=dict)


def _runs(code: str, seg, zone, s0, s1, extra=None) -> list[Draft]:
    """Drafts for pieces, one per continuous run of the same zone over consecutive segments."""
    if not len(seg):
        return []
    seg, zone, s0, s1 = (np.asarray(a) for a in (seg, zone, s0, s1))
    order = np.lexsort((s0, seg, zone))
    k, j, a, b = seg[order], zone[order], s0[order], s1[order]
    start = np.ones(k.size, bool)
    start[1:] = ~((j[1:] == j[:-1]) & (k[1:] == k[:-1] + 1) & (b[:-1] >= 1.0 - 1e-12) & (a[1:] <= 1e-12))
    first = np.flatnonzero(start)
    last = np.append(first[1:], k.size) - 1
    drafts = [Draft(code, int(j[f]), int(k[f]), float(a[f]), int(k[e]), float(b[e]), dict(extra or {}))
              for f, e in zip(first.tolist(), last.tolist())]
    drafts.sort(key=lambda d: (d.k0, d.s0, d.zone))
    return drafts


_GAP_SLACK = 1e-9  # of a segment (the crossings' parameter slack): a waypoint on a boundary leaves no gap


def _gap_drafts(code: str, r: Route, covered_seg, covered_s0, covered_s1, only: int,
                want=None, merge: bool = True) -> list[Draft]:
    """Drafts for the parts of segments not covered by the given pieces (`want(k)` filters)."""
    n = r.n_seg
    full = np.zeros(n, bool)
    f = (covered_s0 <= 0.0) & (covered_s1 >= 1.0)
    full[covered_seg[f]] = True
    by: dict[int, list[tuple[float, float]]] = {}
    for k, a, b in zip(covered_seg.tolist(), covered_s0.tolist(), covered_s1.tolist()):
        by.setdefault(k, []).append((a, b))
    segs, s0, s1 = [], [], []
    for k in np.flatnonzero(~full).tolist():
        if want is not None and not want(k):
            continue
        cur = 0.0
        for a, b in merge_intervals(by.get(k, [])):
            if a > cur + _GAP_SLACK:
                segs.append(k), s0.append(cur), s1.append(a)
            cur = max(cur, b)
        if cur < 1.0 - _GAP_SLACK:
            segs.append(k), s0.append(cur), s1.append(1.0)
    if not merge:
        return [Draft(code, only, k, a, k, b) for k, a, b in zip(segs, s0, s1)]
    return _runs(code, np.array(segs, np.int64), np.full(len(segs), only, np.int64), np.array(s0), np.array(s1))


def _above(r: Route, seg, zone, s0, s1, level):
    """Sub-pieces strictly above `level` (per piece), as closed intervals."""
    a0, a1 = r.alt[seg], r.alt[seg + 1]
    da = a1 - a0
    safe = np.where(da == 0, 1.0, da)
    u = (level - a0) / safe
    lo = np.where(da > 0, np.maximum(s0, u), s0)
    hi = np.where(da < 0, np.minimum(s1, u), s1)
    ok = np.where(da == 0, a0 > level, (lo < hi) | ((lo == hi) & (a0 + da * lo > level)))
    return seg[ok], zone[ok], lo[ok], hi[ok]


def route_points(zs: ZoneSet, r: Route, k: np.ndarray, s: np.ndarray) -> list[dict]:
    """Points at parameter s of segments k, vectorized (times RFC 3339, ms, UTC)."""
    lon = r.lon[k] + (r.lon[k + 1] - r.lon[k]) * s
    lat = r.lat[k] + (r.lat[k + 1] - r.lat[k]) * s
    alt = r.alt[k] + (r.alt[k + 1] - r.alt[k]) * s
    alt_m = np.round(np.asarray(zs.vertical.from_amsl(alt, r.alt_ref), float), 3)
    if r.t is None:
        t = [None] * k.size
        ep = [None] * k.size
    else:
        tt = r.t[k] + (r.t[k + 1] - r.t[k]) * s
        ep = tt.tolist()
        t = [x + "Z" for x in np.datetime_as_string(np.round(tt * 1000).astype("datetime64[ms]"), unit="ms")]
    return [{"lon": a, "lat": b, "alt_m": c, "alt_amsl": d, "t": e, "epoch": f}
            for a, b, c, d, e, f in zip(lon.tolist(), lat.tolist(), alt_m.tolist(), alt.tolist(), t, ep)]


MESSAGES = {
    "restricted_zone": "segment {k} enters restricted zone {zid} ({zname}) within its band {band} from {entry} "
                       "to {exit}",
    "zone_suspended": "segment {k} uses {zid} ({zname}), suspended{why} from {entry} to {exit}",
    "above_ceiling": "segment {k} is above the {top} ceiling of {zid} ({zname}) from {entry} to {exit}",
    "true_height": "segment {k} is above the {top} true-height ceiling from {entry} to {exit}",
    "outside_area": "segment {k} leaves the operating area from {entry} to {exit}",
}


def materialize(zs: ZoneSet, r: Route, drafts: list[Draft]) -> list[dict]:
    if not drafts:
        return []
    pts = route_points(zs, r, np.array([d.k0 for d in drafts] + [d.k1 for d in drafts], np.int64),
                  np.array([d.s0 for d in drafts] + [d.s1 for d in drafts], float))
    n = len(drafts)
    out = []
    for i, d in enumerate(drafts):
        zone = zs.zones[d.zone] if d.zone >= 0 else None
        entry, exit_ = pts[i], pts[n + i]
        for p in (entry, exit_):
            p.pop("epoch")
        rs = {"code": d.code, "message": "", "zone_id": zone.id if zone else None,
              "zone_name": zone.name if zone else None, "segment": d.k0, "waypoint": None,
              "entry": entry, "exit": exit_,
              "altitude": {"route_m": sorted((entry["alt_m"], exit_["alt_m"])), "route_alt_ref": r.alt_ref}}
        if d.k1 != d.k0:
            rs["segments"] = [d.k0, d.k1]
        if zone is not None:
            rs["altitude"].update(zone_m=[zone.lower_m, zone.upper_m], zone_alt_ref=zone.alt_ref)
        rs.update(d.extra)
        key = "true_height" if d.extra.get("rule") == "true_height_ceiling" else d.code
        k = f"{d.k0}" if d.k1 == d.k0 else f"{d.k0}-{d.k1}"
        rs["message"] = MESSAGES[key].format(
            k=k, zid=rs["zone_id"], zname=rs["zone_name"], entry=where(entry), exit=where(exit_),
            band=f"{zone.lower_m:g}-{zone.upper_m:g} m {zone.alt_ref}" if zone else "",
            top=(f"{zone.upper_m:g} m {zone.alt_ref}" if zone else f"{d.extra.get('upper_m', 0):g} m AGL"),
            why=d.extra.get("why", ""))
        rs.pop("why", None)
        out.append(rs)
    return out


def where(p: dict) -> str:
    at = f" at {p['t']}" if p.get("t") else ""
    return f"({p['lon']:.6f}, {p['lat']:.6f}, {p['alt_m']:g} m){at}"


def _state_detail(state: Mapping) -> dict:
    detail = {x: state.get(x) for x in ("reason", "by", "at", "sensor_id", "metric", "value", "reading_ts")
              if state.get(x) is not None}
    why = f": {detail['reason']}" if detail.get("reason") else ""
    if detail.get("sensor_id"):
        why += (f" ({detail['sensor_id']} {detail.get('metric')}={detail.get('value')} "
                f"at {detail.get('reading_ts')})")
    return {"state": detail, "why": why}


def zone_drafts(zs: ZoneSet, ix: RouteIndex, r: Route, p3: tuple, hp: tuple,
                zone_states: Mapping[str, Mapping] | None) -> tuple[list[Draft], tuple]:
    """Drafts of every zone reason, and the pieces the flight is cleared through: `p3` the route's 3D
    pieces in force, `hp` its horizontal pieces; `zone_states` zone id -> {"state", "reason", ...}."""
    seg, zone, s0, s1 = p3
    suspended = zs.suspended(zone_states)
    drafts: list[Draft] = []
    m = zs.prohibited[zone] & ~suspended[zone]
    drafts += _runs("restricted_zone", seg[m], zone[m], s0[m], s1[m])
    m = zs.needs_clearance[zone] & ~zs.prohibited[zone] & suspended[zone]
    for j in np.unique(zone[m]).tolist():
        mj = m & (zone == j)
        drafts += _runs("zone_suspended", seg[mj], zone[mj], s0[mj], s1[mj],
                       _state_detail(zone_states[zs.zones[j].id]))
    m = zs.needs_clearance[zone] & ~zs.prohibited[zone] & ~suspended[zone]
    cleared = (seg[m], zone[m], s0[m], s1[m])
    hs, hz, h0, h1 = hp
    c = zs.ceiling[hz]
    above = in_force_pieces(zs, r, *_above(r, hs[c], hz[c], h0[c], h1[c], zs.upper_amsl[hz[c]]))
    drafts += _runs("above_ceiling", *above)
    rule = zs.vertical.ceiling_agl_m
    if rule is not None:
        level = float(zs.vertical.to_amsl(rule, "AGL"))
        high = set(np.flatnonzero(np.maximum(r.alt[:-1], r.alt[1:]) > level).tolist())
        if high:  # the true-height rule binds where no corridor/area band sets the ceiling (as the monitor)
            cs, _, c0, c1 = in_force_pieces(zs, r, hs[c], hz[c], h0[c], h1[c])  # the bands in force then
            gaps = _gap_drafts("above_ceiling", r, cs, c0, c1, -1, want=high.__contains__, merge=False)
            gs = np.array([g.k0 for g in gaps], np.int64)
            sub = _above(r, gs, np.full(gs.size, -1), np.array([g.s0 for g in gaps]),
                         np.array([g.s1 for g in gaps]), level)
            drafts += _runs("above_ceiling", *sub, extra={"rule": "true_height_ceiling", "upper_m": rule})
    areas = np.flatnonzero(ix.area)
    if areas.size:
        a = ix.area[hz]
        drafts += _gap_drafts("outside_area", r, hs[a], h0[a], h1[a], int(areas[0]) if areas.size == 1 else -1)
    return drafts, cleared


def corridor_legs(zs: ZoneSet, r: Route, cleared: tuple) -> list[dict]:
    """Corridor legs: 3D pieces of corridors merged across consecutive segments."""
    seg, zone, s0, s1 = cleared
    m = zs.corridor[zone]
    drafts = _runs("leg", seg[m], zone[m], s0[m], s1[m])
    if not drafts:
        return []
    drafts.sort(key=lambda d: (d.k0, d.s0, d.zone))
    pts = route_points(zs, r, np.array([d.k0 for d in drafts] + [d.k1 for d in drafts], np.int64),
                  np.array([d.s0 for d in drafts] + [d.s1 for d in drafts], float))
    n = len(drafts)
    return [{"zone_id": zs.zones[d.zone].id, "zone_name": zs.zones[d.zone].name, "segments": [d.k0, d.k1],
             "entry": pts[i], "exit": pts[n + i]} for i, d in enumerate(drafts)]

